#!/usr/bin/env python3
"""The same API over `cocoon serve`: its unix socket ($COCOON_SOCKET, else
$COCOON_HOME/cocoon.sock), or COCOON_URL + COCOON_TOKEN for TCP."""
import os

import cocoon

client = cocoon.Client(url=os.environ["COCOON_URL"]) if os.environ.get("COCOON_URL") else cocoon.Client.remote(
    os.environ.get("COCOON_SOCKET"))
print("transport:", client.transport)
with client.create_box(memory="512M") as box:
    print(box.exec(["uname", "-sr"]).stdout, end="")
    ex = box.spawn(["cat"], stdin=True)
    ex.write("through the server\n")
    ex.close_stdin()
    print(ex.wait().stdout, end="")
print("images:", [i.reference or i.id for i in client.images.list()])

#!/usr/bin/python3
"""Run a command in a box over cocoon's HTTP API with a WebSocket attach: POST /exec,
then GET .../attach streams stdout/stderr (binary frames 0x01/0x02 + bytes) while this
program's stdin goes to the command; exits with the command's exit code.

  attach.py [--url URL | --socket PATH] [--token TOKEN] BOX -- CMD [ARG...]

Defaults: --socket $COCOON_HOME/cocoon.sock (or ~/.local/share/cocoon/cocoon.sock);
with --url http://127.0.0.1:8100 the token comes from --token or $COCOON_TOKEN.
Needs Debian's python3-websockets.
"""
import argparse
import asyncio
import http.client
import json
import os
import socket
import sys

import websockets


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("cocoon")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def start_exec(args, headers):
    if args.url:
        u = args.url.split("://", 1)[1].rstrip("/")
        conn = http.client.HTTPConnection(u) if args.url.startswith("http:") else http.client.HTTPSConnection(u)
    else:
        conn = UnixHTTP(args.socket)
    body = json.dumps({"command": args.cmd[0], "args": args.cmd[1:], "tty": False})
    conn.request("POST", f"/v1/boxes/{args.box}/exec", body=body,
                 headers={**headers, "Content-Type": "application/json"})
    r = conn.getresponse()
    answer = json.loads(r.read() or b"{}")
    if r.status >= 300:
        sys.exit(f"attach.py: {answer.get('error', {}).get('message', r.status)}")
    return answer["execution_id"]


async def attach(args, headers, eid):
    path = f"/v1/boxes/{args.box}/executions/{eid}/attach"
    if args.url:
        ws_url = args.url.replace("http", "ws", 1).rstrip("/") + path
        conn = websockets.connect(ws_url, extra_headers=headers, max_size=None)
    else:
        conn = websockets.unix_connect(args.socket, "ws://cocoon" + path, max_size=None)
    async with conn as ws:
        loop = asyncio.get_running_loop()

        async def pump_stdin():
            while True:
                data = await loop.run_in_executor(None, sys.stdin.buffer.read1, 65536)
                if not data:
                    await ws.send(json.dumps({"type": "stdin_eof"}))
                    return
                await ws.send(data)

        feeder = asyncio.create_task(pump_stdin()) if not sys.stdin.isatty() else None
        code = 1
        async for m in ws:
            if isinstance(m, bytes):
                out = sys.stdout.buffer if m[:1] == b"\x01" else sys.stderr.buffer
                out.write(m[1:])
                out.flush()
            else:
                msg = json.loads(m)
                if msg.get("type") == "exit":
                    code = msg["exit_code"]
                    break
                if msg.get("type") == "error":
                    print(f"attach.py: {msg.get('message')}", file=sys.stderr)
        if feeder:
            feeder.cancel()
        return code


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("--url")
    ap.add_argument("--socket")
    ap.add_argument("--token", default=os.environ.get("COCOON_TOKEN"))
    ap.add_argument("box")
    ap.add_argument("cmd", nargs="+")
    args = ap.parse_args()
    if not args.url and not args.socket:
        home = os.environ.get("COCOON_HOME") or os.path.expanduser("~/.local/share/cocoon")
        args.socket = os.path.join(home, "cocoon.sock")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    eid = start_exec(args, headers)
    sys.exit(asyncio.run(attach(args, headers, eid)))


if __name__ == "__main__":
    main()

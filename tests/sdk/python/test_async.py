"""The asyncio flavour and the peers' aliases, on both transports."""
import asyncio

import pytest

import cocoon
from cocoon import AsyncBox, Sandbox


def test_async_box(client):
    async def main():
        async with AsyncBox.create(client=client, memory="512M", ephemeral=True) as box:
            r = await box.exec(["sh", "-c", "echo async; exit 2"])
            assert (r.stdout, r.exit_code) == ("async\n", 2)
            results = await asyncio.gather(*(box.exec(["sh", "-c", f"echo {i}"]) for i in range(6)))
            assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]
            ex = await box.spawn(["sh", "-c", "echo one; sleep 0.1; echo two"])
            got = b"".join([c.data async for c in ex])
            assert got == b"one\ntwo\n" and (await ex.wait()).exit_code == 0
            chunks = [c.text async for c in box.stream(["echo", "streamed"])]
            assert chunks == ["streamed\n"]
            p = await box.spawn(["cat"], stdin=True)
            await p.write("fed\n")
            await p.close_stdin()
            assert (await p.wait()).stdout == "fed\n"
            await box.files.write("/tmp/a", "async file")
            assert await box.files.read_text("/tmp/a") == "async file"
            assert (await box.stats()).memory_total > 0
            with pytest.raises(cocoon.Timeout):
                await box.exec(["sleep", "10"], timeout=0.5)
            box_id = box.id
        with pytest.raises(cocoon.NotFound):
            await AsyncBox.get(box_id, client=client)
        box = await AsyncBox.create(client=client, start=False, ephemeral=True)
        await box.start()
        assert (await box.run("echo awaited")).stdout == "awaited\n"
        await box.stop()
    asyncio.run(main())


def test_sandbox_alias(client):
    async def main():
        async with Sandbox.create("default", client=client) as sb:
            r = await sb.run("print(sum(range(10)))")
            assert r.stdout == "45\n"
            assert (await sb.command("echo $((1+1))")).stdout == "2\n"
    asyncio.run(main())

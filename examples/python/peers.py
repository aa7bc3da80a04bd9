#!/usr/bin/env python3
"""Code written for the peers' SDKs, with only the import changed (thin aliases)."""
import asyncio

from cocoon import Box, Sandbox

code = "print('hello from', __import__('platform').python_implementation())"


async def main():
    async with Sandbox.create("default") as sb:
        r = await sb.run(code)
        print(r.stdout, end="")


asyncio.run(main())

box = Box(image="default", cpus=2, memory="512m")
box.start()
print(box.run("echo $(nproc) cpus").stdout, end="")
box.stop()

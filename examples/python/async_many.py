#!/usr/bin/env python3
"""asyncio: one box, many commands at once, output streamed as it comes."""
import asyncio

from cocoon import AsyncBox


async def main():
    async with AsyncBox.create(memory="512M", ephemeral=True) as box:
        results = await asyncio.gather(*(box.exec(["sh", "-c", f"echo job {i}: $(( {i} * {i} ))"])
                                         for i in range(8)))
        for r in results:
            print(r.stdout, end="")
        async for chunk in box.stream(["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done"]):
            print("streamed:", chunk.text, end="")


asyncio.run(main())

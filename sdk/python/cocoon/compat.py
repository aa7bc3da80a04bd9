"""Thin aliases for code written against the peers' SDKs, so their snippets run with
only the import changed. They add nothing: each is a name for what AsyncBox and Box do.

    async with Sandbox.create("python:3.12-slim") as sb:   # = AsyncBox.create(image=...)
        r = await sb.run(code)                              # = run_code(code): a CodeExecution

    box = Box(image="python:3.12-slim", cpus=2, memory="512m")   # cocoon.Box itself
    box.start(); box.run("echo hi"); box.stop()                  # run: a shell command line
"""
from __future__ import annotations

from typing import Any, Optional

from .aio import AsyncBox, _Creating
from .code import CodeExecution
from .types import ExecResult


class Sandbox(AsyncBox):
    """AsyncBox under the peers' name; ``run(code)`` is run_code: Python code in the
    box's stateful context (``language="shell"`` runs it in the bash context), as their
    code sandboxes do."""

    @classmethod
    def create(cls, image: Optional[str] = None, **options: Any) -> _Creating:  # type: ignore[override]
        """As AsyncBox.create, but ephemeral unless told otherwise: the peers' sandboxes
        are gone once they end."""
        options.setdefault("ephemeral", True)
        return super().create(image, **options)

    async def run(self, code: str, *, language: str = "python", **kw: Any) -> CodeExecution:  # type: ignore[override]
        return await self.run_code(code, language, **kw)

    async def command(self, command: Any, **kw: Any) -> ExecResult:
        """A shell command line (string) or an argv list."""
        return await AsyncBox.run(self, command, **kw)


PythonSandbox = Sandbox

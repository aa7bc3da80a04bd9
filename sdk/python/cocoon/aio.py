"""AsyncBox: the asyncio flavour of Box. Every call is the synchronous one run in a
worker thread (asyncio.to_thread), so the event loop never blocks; streamed output is
an async iterator. ``async with AsyncBox.create(...) as box`` and
``box = await AsyncBox.create(...)`` both work."""
from __future__ import annotations

import asyncio
import functools
import os
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Generator, List, Optional, TypeVar, Union

from .box import Attachment, Box, Execution
from .client import Client
from .code import CodeContext, CodeExecution
from .types import BoxInfo, ExecInfo, ExecResult, FileInfo, HealthStatus, LogLine, MainStatus, NetworkStats, OutputChunk, Snapshot, Stats

T = TypeVar("T")


async def _run(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await asyncio.to_thread(functools.partial(fn, *args, **kw))


async def _aiter(it: Any) -> AsyncIterator[Any]:
    """A blocking iterator's items, each fetched in a worker thread; leaving early
    closes it (a log follower then stops)."""
    end = object()
    try:
        while True:
            item = await asyncio.to_thread(next, it, end)
            if item is end:
                return
            yield item
    finally:
        close = getattr(it, "close", None)
        if close:
            await asyncio.to_thread(close)


class _Creating:
    """What AsyncBox.create returns: awaitable (the box) and an async context manager
    (the box, stopped at the end)."""

    def __init__(self, make: Callable[[], Awaitable["AsyncBox"]]):
        self._make = make
        self._box: Optional[AsyncBox] = None

    def __await__(self) -> Generator[Any, None, "AsyncBox"]:
        return self._make().__await__()

    async def __aenter__(self) -> "AsyncBox":
        self._box = await self._make()
        return self._box

    async def __aexit__(self, *exc: Any) -> None:
        if self._box is not None:
            await self._box.__aexit__(*exc)


class AsyncExecution:
    """A running command (AsyncBox.spawn): ``async for chunk in ex``, ``await ex.wait()``."""

    def __init__(self, ex: Execution):
        self.sync = ex

    @property
    def id(self) -> Any:
        return self.sync.id

    @property
    def running(self) -> bool:
        return self.sync.running

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[OutputChunk]:
        it = iter(self.sync)
        end = object()
        while True:
            chunk = await asyncio.to_thread(next, it, end)
            if chunk is end:
                return
            yield chunk  # type: ignore[misc]

    async def write(self, data: Union[bytes, str]) -> None:
        await _run(self.sync.write, data)

    async def close_stdin(self) -> None:
        await _run(self.sync.close_stdin)

    async def signal(self, signo: int) -> None:
        await _run(self.sync.signal, signo)

    async def kill(self) -> None:
        await _run(self.sync.kill)

    async def resize(self, rows: int, cols: int) -> None:
        await _run(self.sync.resize, rows, cols)

    async def wait(self, *, check: bool = False) -> ExecResult:
        return await _run(self.sync.wait, check=check)

    async def __aenter__(self) -> "AsyncExecution":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await _run(self.sync.__exit__, *exc)


class AsyncAttachment:
    """An attachment to the main process (AsyncBox.attach): ``async for chunk in a``,
    ``await a.write(...)``, ``await a.detach()``, ``await a.wait()``."""

    def __init__(self, a: Attachment):
        self.sync = a

    @property
    def attached(self) -> bool:
        return self.sync.attached

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        return _aiter(iter(self.sync))

    async def write(self, data: Union[bytes, str]) -> None:
        await _run(self.sync.write, data)

    async def close_stdin(self) -> None:
        await _run(self.sync.close_stdin)

    async def resize(self, rows: int, cols: int) -> None:
        await _run(self.sync.resize, rows, cols)

    async def signal(self, signo: int) -> None:
        await _run(self.sync.signal, signo)

    async def detach(self) -> None:
        await _run(self.sync.detach)

    async def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        return await _run(self.sync.wait, timeout)

    async def __aenter__(self) -> "AsyncAttachment":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await _run(self.sync.__exit__, *exc)


class AsyncFiles:
    """box.files of an AsyncBox: the methods of cocoon.box.Files, awaitable."""

    def __init__(self, box: Box):
        self._f = box.files

    async def read(self, path: str, **kw: Any) -> bytes:
        return await _run(self._f.read, path, **kw)

    async def read_text(self, path: str, **kw: Any) -> str:
        return await _run(self._f.read_text, path, **kw)

    async def write(self, path: str, data: Union[bytes, str], **kw: Any) -> None:
        await _run(self._f.write, path, data, **kw)

    async def write_text(self, path: str, text: str, **kw: Any) -> None:
        await _run(self._f.write_text, path, text, **kw)

    async def upload(self, local_path: Union[str, os.PathLike], box_path: str) -> None:
        await _run(self._f.upload, local_path, box_path)

    async def download(self, box_path: str, local_path: Union[str, os.PathLike]) -> None:
        await _run(self._f.download, box_path, local_path)

    async def put_archive(self, box_dir: str, archive: Any, **kw: Any) -> None:
        await _run(self._f.put_archive, box_dir, archive, **kw)

    async def get_archive(self, box_path: str, **kw: Any) -> bytes:
        return await _run(self._f.get_archive, box_path, **kw)

    async def stat(self, path: str) -> FileInfo:
        return await _run(self._f.stat, path)

    async def exists(self, path: str) -> bool:
        return await _run(self._f.exists, path)

    async def list(self, path: str) -> List[FileInfo]:
        return await _run(self._f.list, path)

    async def mkdir(self, path: str, **kw: Any) -> None:
        await _run(self._f.mkdir, path, **kw)

    async def remove(self, path: str, **kw: Any) -> None:
        await _run(self._f.remove, path, **kw)

    async def move(self, src: str, dst: str, **kw: Any) -> None:
        await _run(self._f.move, src, dst, **kw)


class AsyncBox:
    """The asyncio Box: the same methods as cocoon.Box, awaitable (see there for each
    one's arguments). ``AsyncBox(sync_box)`` wraps a Box; ``box.sync`` is the Box."""

    def __init__(self, box: Box):
        self.sync = box
        self.files = AsyncFiles(box)

    @classmethod
    def create(cls, image: Optional[str] = None, **options: Any) -> _Creating:
        """Box.create in a thread: ``await AsyncBox.create(...)`` or
        ``async with AsyncBox.create(...) as box``."""
        async def make() -> "AsyncBox":
            return cls(await _run(Box.create, image, **options))
        return _Creating(make)

    @classmethod
    async def get(cls, id_or_name: str, *, client: Optional[Client] = None) -> "AsyncBox":
        return cls(await _run(Box.get, id_or_name, client=client))

    @classmethod
    async def list(cls, *, client: Optional[Client] = None) -> List[BoxInfo]:
        return await _run(Box.list, client=client)

    @property
    def id(self) -> str:
        return self.sync.id

    async def info(self) -> BoxInfo:
        return await _run(self.sync.info)

    async def start(self) -> "AsyncBox":
        await _run(self.sync.start)
        return self

    async def stop(self, timeout: Optional[float] = None) -> None:
        await _run(self.sync.stop, timeout)

    async def restart(self, timeout: Optional[float] = None) -> None:
        await _run(self.sync.restart, timeout)

    async def remove(self, *, force: bool = True) -> None:
        await _run(self.sync.remove, force=force)

    async def close(self) -> None:
        await _run(self.sync.close)

    async def snapshot(self, name: Optional[str] = None) -> Snapshot:
        return await _run(self.sync.snapshot, name)

    async def snapshots(self) -> List[Snapshot]:
        return await _run(self.sync.snapshots)

    async def restore(self, snapshot: Union[str, Snapshot]) -> Snapshot:
        return await _run(self.sync.restore, snapshot)

    async def compact(self) -> Dict[str, Any]:
        return await _run(self.sync.compact)

    async def export(self, path: Union[str, os.PathLike], **kw: Any) -> None:
        await _run(self.sync.export, path, **kw)

    async def clone(self, name: Optional[str] = None, **kw: Any) -> "AsyncBox":
        return AsyncBox(await _run(self.sync.clone, name, **kw))

    async def __aenter__(self) -> "AsyncBox":
        if self.sync._h is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await _run(self.sync.__exit__, *exc)

    async def exec(self, cmd: Any, **kw: Any) -> ExecResult:
        """Box.exec; callbacks (on_stdout/on_stderr) are called from a worker thread."""
        return await _run(self.sync.exec, cmd, **kw)

    async def spawn(self, cmd: Any, **kw: Any) -> AsyncExecution:
        return AsyncExecution(await _run(self.sync.spawn, cmd, **kw))

    async def stream(self, cmd: Any, **kw: Any) -> AsyncIterator[OutputChunk]:
        ex = await self.spawn(cmd, **kw)
        async with ex:
            async for chunk in ex:
                yield chunk
            await ex.wait()

    async def run(self, command: Any, **kw: Any) -> ExecResult:
        return await _run(self.sync.run, command, **kw)

    async def run_code(self, code: str, language: str = "python", **kw: Any) -> CodeExecution:
        """Box.run_code; callbacks are called from a worker thread."""
        return await _run(self.sync.run_code, code, language, **kw)

    async def create_code_context(self, language: str = "python", cwd: Optional[str] = None) -> CodeContext:
        return await _run(self.sync.create_code_context, language, cwd)

    async def list_code_contexts(self) -> List[CodeContext]:
        return await _run(self.sync.list_code_contexts)

    async def restart_code_context(self, context: Any) -> None:
        await _run(self.sync.restart_code_context, context)

    async def remove_code_context(self, context: Any) -> None:
        await _run(self.sync.remove_code_context, context)

    async def execs(self) -> List[ExecInfo]:
        return await _run(self.sync.execs)

    async def signal_execs(self, signo: int, exec_id: Any = 0) -> int:
        return await _run(self.sync.signal_execs, signo, exec_id)

    async def stats(self) -> Stats:
        return await _run(self.sync.stats)

    async def network_stats(self) -> NetworkStats:
        return await _run(self.sync.network_stats)

    async def logs(self) -> str:
        """The console log (use main_logs for a main process's output)."""
        return await _run(self.sync.logs, console=True)  # type: ignore[return-value]

    async def main_status(self) -> Optional[MainStatus]:
        return await _run(self.sync.main_status)

    async def main_logs(self, **kw: Any) -> AsyncIterator[LogLine]:
        """As Box.main_logs (follow, tail, since, stream), an async iterator."""
        async for line in _aiter(await _run(self.sync.main_logs, **kw)):
            yield line

    async def health(self) -> Optional[HealthStatus]:
        return await _run(self.sync.health)

    async def wait(self, condition: str = "exited", timeout: Optional[float] = None) -> Optional[int]:
        """As Box.wait, in a worker thread (cancelling the await leaves that thread
        waiting until the condition or the timeout)."""
        return await _run(self.sync.wait, condition, timeout)

    async def exec_detached(self, cmd: Any, **kw: Any) -> int:
        return await _run(self.sync.exec_detached, cmd, **kw)

    async def attach(self, **kw: Any) -> AsyncAttachment:
        """Box.attach: the main process's output, stdin, terminal, signals and end."""
        return AsyncAttachment(await _run(self.sync.attach, **kw))

    async def detached_status(self, exec_id: int) -> MainStatus:
        return await _run(self.sync.detached_status, exec_id)

    async def detached_logs(self, exec_id: int, **kw: Any) -> AsyncIterator[LogLine]:
        async for line in _aiter(await _run(self.sync.detached_logs, exec_id, **kw)):
            yield line

    async def kill_detached(self, exec_id: int, signo: int = 9) -> None:
        await _run(self.sync.kill_detached, exec_id, signo)

    async def network_log(self) -> str:
        return await _run(self.sync.network_log)  # type: ignore[return-value]

    @classmethod
    def from_config(cls, path: Any, name: str, **kw: Any) -> _Creating:
        async def make() -> "AsyncBox":
            return cls(await _run(Box.from_config, path, name, **kw))
        return _Creating(make)

    async def script(self, name: str, *args: str, **kw: Any) -> ExecResult:
        return await _run(self.sync.script, name, *args, **kw)

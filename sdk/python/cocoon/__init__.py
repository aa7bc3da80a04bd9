"""cocoon: microVM sandboxes for code nobody has read.

    import cocoon
    with cocoon.Box.create(image="default", memory="512M") as box:
        r = box.exec(["python3", "-c", "print(6 * 7)"])
        print(r.stdout, r.exit_code)

Two transports behind one API (cocoon.Client): embedded (libcocoon in this process,
the default) and remote (`cocoon serve` over its unix socket or a URL + token).
AsyncBox is the asyncio flavour. See docs/sdk-python.md.
"""
from ._version import __version__
from .aio import AsyncAttachment, AsyncBox, AsyncExecution, AsyncFiles
from .box import Attachment, Box, Execution, Files
from .client import Client, Images, Snapshots, default_client, set_default_client
from .code import CodeContext, CodeError, CodeExecution, CodeFailed, Logs, Result
from .compat import PythonSandbox, Sandbox
from .config import load_config
from .errors import (AlreadyExists, BootError, BoxRunning, CocoonError, CommandFailed, ExecError, HostIOError,
                     ImageError, InvalidArgument, InvalidState, NotFound, PermissionDenied, ProtocolError,
                     ResourceExhausted, SnapshotInUse, SnapshotNotFound, Timeout, Unsupported, VMMError)
from .types import (BoxInfo, BoxSpec, Config, ExecInfo, ExecResult, FileInfo, ImageInfo, HealthStatus, LogLine, MainStatus,
                    Network, NetworkStats, OutputChunk, PullProgress, Snapshot, Stats, parse_memory_mib,
                    parse_size)


def images() -> Images:
    """The default client's images (cocoon.images().pull("python:3.12-slim"))."""
    return default_client().images


__all__ = [
    "__version__", "AsyncAttachment", "AsyncBox", "AsyncExecution", "AsyncFiles", "Attachment", "Box", "Execution",
    "Files", "Client", "Images", "Snapshots",
    "CodeContext", "CodeError", "CodeExecution", "CodeFailed", "Logs", "Result",
    "default_client", "set_default_client", "images", "Sandbox", "PythonSandbox", "load_config",
    "AlreadyExists", "BootError", "CocoonError", "CommandFailed", "ExecError", "HostIOError", "ImageError",
    "InvalidArgument", "InvalidState", "NotFound", "PermissionDenied", "ProtocolError", "ResourceExhausted",
    "Timeout", "Unsupported", "VMMError", "BoxRunning", "SnapshotInUse", "SnapshotNotFound", "Snapshot", "BoxInfo", "BoxSpec", "Config", "ExecInfo", "ExecResult", "FileInfo",
    "ImageInfo", "HealthStatus", "LogLine", "MainStatus", "Network", "NetworkStats", "OutputChunk", "PullProgress", "Stats", "parse_memory_mib", "parse_size",
]

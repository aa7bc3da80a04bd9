"""The exceptions of the SDK: one class per cocoon error code, the same for both
transports (libcocoon's COCOON_E_* codes and the REST API's error codes map here)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .types import ExecResult


class CocoonError(Exception):
    """Any failure cocoon reports. `code` is the machine-readable reason (the REST API's
    code: "not_found", "invalid_state"...), `message` the text for people."""

    code: str = "internal"

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(CocoonError, ValueError):
    """A bad argument or option (COCOON_E_INVALID, 400 invalid_argument)."""

    code = "invalid_argument"


class NotFound(CocoonError, LookupError):
    """A box, image, execution or file that does not exist (COCOON_E_NOT_FOUND, 404)."""

    code = "not_found"


class InvalidState(CocoonError):
    """The wrong state for the call: box not running, execution ended... (COCOON_E_STATE, 409)."""

    code = "invalid_state"


class SnapshotNotFound(NotFound):
    """No snapshot with that id, name or id prefix (among the box's, for a box's call)."""


class AlreadyExists(InvalidState):
    """A name already taken (409 already_exists; libcocoon says it as COCOON_E_STATE)."""

    code = "already_exists"


class BoxRunning(InvalidState):
    """The box runs and the call needs it stopped: snapshot, restore, export
    (COCOON_E_STATE / 409 invalid_state saying "is running")."""


class SnapshotInUse(InvalidState):
    """A snapshot a box or another snapshot stands on cannot be removed (409)."""


class Unsupported(CocoonError):
    """Not possible on this host or not supported (COCOON_E_UNSUPPORTED, 501)."""

    code = "unsupported"


class BootError(CocoonError):
    """The guest did not come up (COCOON_E_BOOT, boot_failed)."""

    code = "boot_failed"


class VMMError(CocoonError):
    """The box's monitor or hypervisor failed or died (COCOON_E_VMM)."""

    code = "internal"


class ProtocolError(CocoonError):
    """The peer sent something malformed (COCOON_E_PROTOCOL)."""

    code = "internal"


class HostIOError(CocoonError, OSError):
    """A host file or socket operation failed (COCOON_E_IO, storage_error)."""

    code = "storage_error"


class ResourceExhausted(CocoonError):
    """Out of memory or another bounded resource (COCOON_E_NOMEM, 429/503)."""

    code = "resource_exhausted"


class ImageError(CocoonError):
    """An image pull failed (422 image_pull_failed)."""

    code = "image_pull_failed"


class PermissionDenied(CocoonError, PermissionError):
    """The server refused the caller (401 unauthenticated, 403 permission_denied)."""

    code = "permission_denied"


class ExecError(CocoonError):
    """The command could not be started in the box (COCOON_E_EXEC; the REST API reports
    it as exit code 127 or 126 with an error_message). `exit_code` is what a shell
    would have said: 127 for a program not found, 126 otherwise."""

    code = "execution_failed"

    def __init__(self, message: str, exit_code: int = 126, code: Optional[str] = None):
        super().__init__(message, code)
        self.exit_code = exit_code


class Timeout(CocoonError, TimeoutError):
    """The command ran longer than its timeout and was killed. `result` holds what it
    wrote until then."""

    code = "timed_out"

    def __init__(self, message: str, result: "Optional[ExecResult]" = None):
        super().__init__(message)
        self.result = result


class CommandFailed(CocoonError):
    """`check=True` was given and the command exited non-zero (or was killed by a
    signal). `result` is its ExecResult."""

    code = "command_failed"

    def __init__(self, message: str, result: "ExecResult"):
        super().__init__(message)
        self.result = result


# libcocoon's enum cocoon_error_code -> class
_BY_C_CODE = {
    1: InvalidArgument,
    2: NotFound,
    3: HostIOError,
    4: BootError,
    5: VMMError,
    6: ProtocolError,
    7: InvalidState,
    8: Unsupported,
    9: ResourceExhausted,
    10: ExecError,
}

# The REST API's ErrorModel.code -> class
_BY_REST_CODE = {
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "invalid_state": InvalidState,
    "already_exists": AlreadyExists,
    "unsupported": Unsupported,
    "boot_failed": BootError,
    "storage_error": HostIOError,
    "resource_exhausted": ResourceExhausted,
    "image_pull_failed": ImageError,
    "execution_failed": ExecError,
    "unauthenticated": PermissionDenied,
    "permission_denied": PermissionDenied,
    "method_not_allowed": InvalidArgument,
}


def exec_exit_code(message: str) -> int:
    """127 for a program that was not found, else 126 (the shell's convention)."""
    return 127 if "No such file or directory" in message or "not found" in message else 126


def _refined(cls: type, message: str) -> type:
    """The narrower class a message names (the C API and the REST API say these
    refusals with the same words)."""
    if cls is InvalidState:
        if "already in use" in message:
            return AlreadyExists
        if message.startswith("snapshot ") and " is in use by " in message:
            return SnapshotInUse
        if re.match(r"box \S.*\bis running\b", message):
            return BoxRunning
    if cls is NotFound and re.search(r"\bno snapshot\b", message):
        return SnapshotNotFound
    return cls


def from_c(code: int, message: str) -> CocoonError:
    """The exception for a libcocoon error."""
    cls = _refined(_BY_C_CODE.get(code, CocoonError), message)
    if cls is ExecError:
        return ExecError(message, exec_exit_code(message))
    return cls(message)


def from_rest(status: int, code: str, message: str) -> CocoonError:
    """The exception for a REST error answer."""
    cls = _BY_REST_CODE.get(code)
    if cls is None:
        cls = {400: InvalidArgument, 404: NotFound, 409: InvalidState, 501: Unsupported,
               401: PermissionDenied, 403: PermissionDenied, 429: ResourceExhausted,
               503: ResourceExhausted, 507: HostIOError}.get(status, CocoonError)
    if cls in (InvalidState, NotFound):
        cls = _refined(cls, message)
    if cls is ExecError:
        return ExecError(message, exec_exit_code(message), code)
    return cls(message, code or None)

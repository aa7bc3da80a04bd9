"""Client: which cocoon the SDK talks to. Embedded (libcocoon in this process, the
default) or remote (a `cocoon serve` over its unix socket or a URL with a token)."""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Callable, List, Optional, Union

from ._transport import Transport
from .errors import InvalidArgument
from .types import BoxInfo, ImageInfo, PullProgress, Snapshot

if TYPE_CHECKING:  # pragma: no cover
    from .box import Box


def default_home() -> str:
    """$COCOON_HOME, else ~/.local/share/cocoon (where cocoon keeps its state)."""
    return os.environ.get("COCOON_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share", "cocoon")


class Client:
    """A connection to cocoon.

    - ``Client()``: embedded, libcocoon loaded in this process (found through
      $COCOON_LIB, a build tree around the package, or the system's loader); ``home``,
      ``share_dir`` and ``vmm`` are libcocoon's runtime options.
    - ``Client(socket="/path/cocoon.sock")`` or ``Client.remote()``: a `cocoon serve`
      on its unix socket (default $COCOON_HOME/cocoon.sock).
    - ``Client(url="http://127.0.0.1:8100", token=...)``: a `cocoon serve` over TCP
      (the token defaults to $COCOON_TOKEN).

    ``$COCOON_URL`` (with ``$COCOON_TOKEN``) or ``$COCOON_SOCKET`` make ``Client()``
    remote, so a program can be pointed at a server without a change.
    """

    def __init__(self, *, socket: Optional[str] = None, url: Optional[str] = None, token: Optional[str] = None,
                 home: Optional[str] = None, share_dir: Optional[str] = None, vmm: Optional[str] = None,
                 lib: Optional[str] = None, timeout: Optional[float] = None, transport: Optional[str] = None):
        if transport not in (None, "embedded", "remote"):
            raise InvalidArgument(f"transport {transport!r}: \"embedded\" or \"remote\"")
        if transport is None and socket is None and url is None:
            url = os.environ.get("COCOON_URL") or None
            socket = os.environ.get("COCOON_SOCKET") or None
        if transport == "embedded" and (socket or url):
            raise InvalidArgument("an embedded client takes no socket or url")
        self._transport: Transport
        if transport == "remote" or socket or url:
            from ._remote import RemoteTransport
            if url is None and socket is None:
                socket = os.path.join(home or default_home(), "cocoon.sock")
            if url is not None and token is None:
                token = os.environ.get("COCOON_TOKEN") or None
            self._transport = RemoteTransport(socket_path=socket, url=url, token=token, timeout=timeout)
        else:
            from ._embedded import EmbeddedTransport
            self._transport = EmbeddedTransport(home=home, share_dir=share_dir, vmm=vmm, lib_path=lib)
        self.images = Images(self)
        self.snapshots = Snapshots(self)

    @classmethod
    def remote(cls, socket: Optional[str] = None, *, url: Optional[str] = None, token: Optional[str] = None,
               home: Optional[str] = None) -> "Client":
        """A client of `cocoon serve` (its unix socket by default)."""
        return cls(socket=socket, url=url, token=token, home=home, transport="remote")

    @classmethod
    def embedded(cls, **kw) -> "Client":
        """A client with libcocoon in this process."""
        return cls(transport="embedded", **kw)

    @property
    def transport(self) -> str:
        """"embedded" or "remote"."""
        return self._transport.kind

    def create_box(self, image: Optional[str] = None, **kw) -> "Box":
        """Box.create with this client (see there)."""
        from .box import Box
        return Box.create(image, client=self, **kw)

    def box(self, id_or_name: str) -> "Box":
        """An existing box by id, name or unique id prefix (NotFound otherwise)."""
        from .box import Box
        return Box.get(id_or_name, client=self)

    def boxes(self) -> List[BoxInfo]:
        """Every box, oldest first."""
        return self._transport.list_boxes()

    def import_box(self, path: Union[str, os.PathLike], name: Optional[str] = None) -> "Box":
        """A new, stopped box made from a file of Box.export (or `cocoon export`), with
        name (default none). The archive is verified whole first: a corrupt,
        truncated or foreign one raises InvalidArgument and leaves nothing behind."""
        from .box import Box
        return Box._wrap(self, self._transport.import_box(os.fspath(path), name))

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<cocoon.Client {self.transport}>"


class Images:
    """The images a client has: ``client.images.pull("python:3.12-slim")``."""

    def __init__(self, client: Client):
        self._client = client

    def pull(self, ref: str, *, progress: Optional[Callable[[PullProgress], None]] = None,
             insecure: bool = False) -> ImageInfo:
        """Fetches an image from its registry (only the layers not here yet) and makes
        its base. ``progress`` is called with a PullProgress per layer as bytes arrive."""
        return self._client._transport.pull(ref, insecure, progress)

    def load(self, path: str) -> List[ImageInfo]:
        """Every image of a `docker save` tarball or an OCI layout (tarball or directory;
        remote: a tarball, uploaded)."""
        return self._client._transport.load(os.fspath(path))

    def list(self) -> List[ImageInfo]:
        """Every image here (pulled, loaded, built-in ones used so far), oldest first."""
        return self._client._transport.list_images()

    def get(self, ref: str) -> ImageInfo:
        """One image by reference, id or unique id prefix (NotFound otherwise)."""
        return self._client._transport.get_image(ref)[0]

    def config(self, ref: str) -> Optional[dict]:
        """The image's OCI config (None for a built-in image)."""
        return self._client._transport.get_image(ref)[1]

    def exists(self, ref: str) -> bool:
        from .errors import NotFound
        try:
            self.get(ref)
            return True
        except NotFound:
            return False

    def remove(self, ref: str) -> None:
        """Forgets the image and deletes its base (InvalidState while a box uses it)."""
        self._client._transport.remove_image(ref)


class Snapshots:
    """The disk snapshots a client sees: ``client.snapshots.list()``. A box takes and
    restores its own (Box.snapshot, Box.restore); these find, export and remove them.
    Remote: the REST API names snapshots under their box, so only snapshots of boxes
    that still exist are reachable."""

    def __init__(self, client: Client):
        self._client = client

    def list(self, box: Optional[str] = None) -> List[Snapshot]:
        """Every snapshot (of one box: its id, name or id prefix), oldest first."""
        return self._client._transport.list_snapshots(box)

    def get(self, snapshot: str) -> Snapshot:
        """One snapshot by id, name or unique id prefix (SnapshotNotFound otherwise)."""
        return self._client._transport.get_snapshot(snapshot)

    def remove(self, snapshot: Union[str, Snapshot]) -> None:
        """Deletes a snapshot (SnapshotInUse while a box or snapshot stands on it)."""
        self._client._transport.remove_snapshot(snapshot.id if isinstance(snapshot, Snapshot) else snapshot)

    def export(self, snapshot: Union[str, Snapshot], path: Union[str, os.PathLike]) -> None:
        """Writes a snapshot to one file, as Box.export does a box (Client.import_box
        makes a new box of it)."""
        self._client._transport.export_snapshot(snapshot.id if isinstance(snapshot, Snapshot) else snapshot,
                                                os.fspath(path))


_default: Optional[Client] = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The client Box.create and friends use when given none: made on first use
    (embedded unless $COCOON_URL or $COCOON_SOCKET say otherwise)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def set_default_client(client: Optional[Client]) -> None:
    """Makes client the one used when none is given (None: make a new one on next use)."""
    global _default
    with _default_lock:
        _default = client

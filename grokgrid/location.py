"""Where results live: a local (or NFS) folder, or a folder under a pyarrow filesystem URI.

A sweep's results folder (docs/architecture.md, "Results folder") may be ``results/quickstart`` on a disk every node
mounts, or ``s3://bucket/results/quickstart`` / ``gs://...`` / ``file:///...`` that every node
reaches through pyarrow's filesystems. ``Location`` is one file or folder in either, with the small
part of ``pathlib`` that grokgrid needs (``/``, ``name``, ``exists``, ``iterdir``, ``read_bytes``,
``unlink``, ...), so the rest of the code never asks which kind it has.

Writes are atomic in both: a hidden temp file (its name starts with "." and does not end in
.parquet, so readers skip it) is moved into place. On a local folder that is ``fsync`` +
``os.replace``; on a filesystem URI it is ``FileSystem.move`` (a rename locally; on an object store
the object appears whole or not at all).

A URI travels as text: each Ray worker opens it with ``FileSystem.from_uri`` and so uses its own
credentials (environment, instance role), never ones pickled by the driver.

Standard library and pyarrow only (no torch, no Ray).
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

import pyarrow.fs as pafs


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once, at import: os.umask can only be read by setting it


class StorageError(ValueError):
    """A storage location that cannot be opened (unknown scheme, bad URI, missing driver)."""


def is_uri(text: str) -> bool:
    """``s3://...``, ``gs://...``, ``file:///...``: a pyarrow filesystem URI (not a plain path)."""
    return "://" in text


class Location:
    """One file or folder, local (``fs`` None) or under a pyarrow filesystem URI."""

    __slots__ = ("fs", "path", "_uri", "_query")

    def __init__(self, fs: pafs.FileSystem | None, path: str, uri: str | None = None, query: str = ""):
        self.fs = fs
        self.path = path  # an absolute local path, or the filesystem's path (e.g. "bucket/a/b")
        self._uri = uri  # the URI text of this location (None: local)
        self._query = query  # a URI's "?region=..." part, kept for the URIs of children

    # -------------------------------------------------------------- making and naming

    @classmethod
    def parse(cls, text: str | os.PathLike) -> "Location":
        """A location from a command line's text: a URI, else a local path (made absolute)."""
        text = os.fspath(text)
        if not is_uri(text):
            return cls(None, str(Path(text).expanduser().resolve()))
        base, _, query = text.partition("?")
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError, ImportError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise StorageError(f"{text}: cannot open this storage URI ({' '.join(str(exc).split())})") from exc
        return cls(fs, path.rstrip("/") or path, base.rstrip("/"), query)

    @property
    def local(self) -> Path | None:
        """The local path (None for a filesystem URI)."""
        return Path(self.path) if self.fs is None else None

    @property
    def uri(self) -> str:
        """The text that names this location anywhere: a URI, or the absolute local path."""
        return self.path if self._uri is None else self._uri + (f"?{self._query}" if self._query else "")

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def parent(self) -> "Location":
        if self.fs is None:
            return Location(None, str(Path(self.path).parent))
        return Location(self.fs, posixpath.dirname(self.path.rstrip("/")), posixpath.dirname(self._uri), self._query)

    def __truediv__(self, name: str) -> "Location":
        name = str(name).strip("/")
        if self.fs is None:
            return Location(None, str(Path(self.path) / name))
        return Location(self.fs, posixpath.join(self.path, name), f"{self._uri}/{name}", self._query)

    def __str__(self) -> str:
        return self.uri

    def __fspath__(self) -> str:
        # A local location is a path for open(), pathlib and pyarrow; a URI is not.
        if self.fs is not None:
            raise TypeError(f"{self.uri} is not a local path")
        return self.path

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Location):
            return other.uri == self.uri
        # A local location equals the same path given as a pathlib.Path.
        return self.fs is None and isinstance(other, os.PathLike) and Path(self.path) == Path(other)

    def __hash__(self) -> int:
        return hash(Path(self.path)) if self.fs is None else hash(self.uri)

    def __reduce__(self):
        # Pickled (Ray configs, Tune state) as its text: the receiving process opens it itself.
        return (Location.parse, (self.uri,))

    # -------------------------------------------------------------- reading

    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        if self.fs is None:
            return Path(self.path).exists()
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        if self.fs is None:
            return Path(self.path).is_file()
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        if self.fs is None:
            return Path(self.path).is_dir()
        return self._info().type == pafs.FileType.Directory

    def iterdir(self) -> list["Location"]:
        """The folder's entries, sorted by name (empty when it does not exist)."""
        if self.fs is None:
            folder = Path(self.path)
            return [Location(None, str(p)) for p in sorted(folder.iterdir())] if folder.is_dir() else []
        return [self / posixpath.basename(i.path) for i in self._list(recursive=False)]

    def files(self) -> list["Location"]:
        """Every file below this folder, at any depth, sorted by path (one listing call on an
        object store, however many sub-folders there are)."""
        if self.fs is None:
            folder = Path(self.path)
            if not folder.is_dir():
                return []
            return [Location(None, str(p)) for p in sorted(folder.rglob("*")) if p.is_file()]
        prefix = self.path.rstrip("/") + "/"
        return [self / i.path[len(prefix):] for i in self._list(recursive=True) if i.type == pafs.FileType.File]

    def _list(self, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        return sorted(self.fs.get_file_info(selector), key=lambda i: i.path)

    def read_bytes(self) -> bytes:
        if self.fs is None:
            return Path(self.path).read_bytes()
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    # -------------------------------------------------------------- writing

    def mkdir(self) -> None:
        """Create the folder and its parents (no-op if it exists)."""
        if self.fs is None:
            Path(self.path).mkdir(parents=True, exist_ok=True)
        else:
            self.fs.create_dir(self.path, recursive=True)

    def _open_new_temp(self) -> tuple["Location", BinaryIO]:
        """A fresh hidden file beside this one, open for writing."""
        if self.fs is None:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.parent.path)
            # mkstemp makes the file private (0600); results on a shared disk are for everyone
            # the umask lets read them, as a plain open() would have made them.
            os.fchmod(fd, 0o666 & ~_UMASK)
            return Location(None, tmp), os.fdopen(fd, "wb")
        tmp = self.parent / f".{self.name}.{secrets.token_hex(6)}.tmp"
        return tmp, self.fs.open_output_stream(tmp.path)

    def _open_temp(self) -> tuple["Location", BinaryIO]:
        # The folder is created only when the open finds it missing: most writes go to an
        # existing folder, and on an object store a create_dir is requests per write.
        try:
            return self._open_new_temp()
        except FileNotFoundError:
            self.parent.mkdir()
            return self._open_new_temp()

    def write_with(self, write: Callable[[BinaryIO], object], *, durable: bool = True) -> None:
        """Call ``write(stream)`` on a hidden temp file beside this one, then move it onto this
        name: readers see the old file or the whole new one, never a part. ``durable``: fsync a
        local file before the move (a filesystem URI's stream is complete once closed)."""
        tmp, stream = self._open_temp()
        try:
            with stream:
                write(stream)
                if durable and self.fs is None:
                    stream.flush()
                    os.fsync(stream.fileno())
            if self.fs is None:
                os.replace(tmp.path, self.path)
            else:
                self.fs.move(tmp.path, self.path)
        except BaseException:
            tmp.unlink()
            raise

    def write_bytes(self, data: bytes) -> None:
        """Write ``data`` atomically (``write_with``), fsynced when local."""
        self.write_with(lambda stream: stream.write(data))

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def unlink(self) -> None:
        """Delete the file (no error if it is gone)."""
        try:
            if self.fs is None:
                Path(self.path).unlink(missing_ok=True)
            else:
                self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass

    def rmtree(self) -> None:
        """Delete the folder and everything in it (no error if it is gone)."""
        if self.fs is None:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.is_dir():
            self.fs.delete_dir(self.path)

    def remove(self) -> None:
        """Delete whatever is here, file or folder (a local symlink itself, never its target)."""
        if self.is_dir() and not (self.fs is None and Path(self.path).is_symlink()):
            self.rmtree()
        else:
            self.unlink()


PathLike = Union[Location, str, os.PathLike]


def as_location(where: PathLike) -> Location:
    """A Location from a Location, a local path or a URI's text."""
    return where if isinstance(where, Location) else Location.parse(where)


"""Files that hold secrets or user data: made private when written, checked when read.

Writing: everything the platform creates under its data folder (SQLite databases and their
``-wal``/``-shm`` siblings, signing keys, credentials, logs, mail) is a 0600 file in a 0700
folder, whatever the process umask. A new file or folder is *created* with that mode
(``os.open``/``mkdir`` with a mode), so it never exists, not even for a moment, with more access:
a chmod after creation would leave a window in which another user could open it and keep the
descriptor. The umask can only remove bits from that mode, never add them. An existing one that we
own (left by an older version, or a wider umask) loses its group and other bits; one owned by
somebody else (a mounted volume) is left as it is, since we could not change it anyway.

Replacing: ``write_atomic`` writes a temporary file in the same folder (0600 from its first byte,
then given its final mode), syncs it, renames it over the old one and syncs the folder, so a
reader sees the old file or the new one, never half of one, even across a crash.

Reading: a secret file that others may read (``mode & 0o007``) is refused in production. Group
access stays allowed, because Kubernetes mounts secret volumes as ``0440`` with ``fsGroup``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "open_private",
    "others_access_problem",
    "private_directory",
    "private_file",
    "read_secret_file",
    "write_atomic",
]

_GROUP_AND_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def others_access_problem(path: Path) -> str | None:
    """Why ``path`` is too open to hold a production secret (others may access it), or ``None``.

    ``OSError`` (missing, unreadable) is the caller's to report.
    """
    mode = path.stat().st_mode
    if mode & stat.S_IRWXO:
        return (
            f"{path} is accessible by others (mode {stat.S_IMODE(mode):04o}); production "
            "allows owner and group only (chmod o-rwx)"
        )
    return None


def read_secret_file(path: Path) -> str:
    """The content of ``path`` without one trailing newline (the ``<VAR>_FILE`` convention).

    Raises ``ValueError`` when the file is empty and ``OSError`` when it cannot be read.
    """
    text = path.read_text(encoding="utf-8")
    # Exactly one newline, as `echo value > file` and most secret stores write it; anything
    # else (spaces, a second newline) is part of the value.
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def private_directory(path: Path, *, restrict_existing: bool = True) -> Path:
    """``path`` as a folder only its owner can enter: created 0700 with any missing parents,
    or, when it existed, is ours and ``restrict_existing``, stripped of group and other access.
    Returns ``path``."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    if missing[:1] != [path] and not restrict_existing:
        return path
    for folder in reversed(missing):  # parents first; each one we create is ours to make private
        # Another process may make it between the check and here: then it is there, as wanted.
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    _restrict(os.stat(path), lambda mode: os.chmod(path, mode))
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)`` as a private file: a new one is created 0600, an
    existing one of ours loses group and other access. Returns the descriptor."""
    descriptor = os.open(path, flags | os.O_CREAT, 0o600)
    try:
        # fchmod on the descriptor we hold, not on the path: the path may have been replaced.
        _restrict(os.fstat(descriptor), lambda mode: os.fchmod(descriptor, mode))
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def private_file(path: Path) -> Path:
    """Create ``path`` empty (0600) when missing, or restrict it when it is ours. Returns it.

    An existing file is never opened: closing a descriptor of a file drops every POSIX lock the
    process holds on that file, through any descriptor. SQLite's are such locks, and this runs
    before each new connection to a database the process already has open (``meshcore.db``):
    without its locks, another process closing its connection believes it is the file's last
    user and deletes the -wal and -shm files under ours, which then never see its commits.
    """
    try:
        # O_EXCL: only a file made here is opened, and no connection can have locked it yet.
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        # By path, as private_directory does (a descriptor is what must not be opened).
        _restrict(os.stat(path), lambda mode: os.chmod(path, mode))
    return path


def _restrict(status: os.stat_result, chmod: Callable[[int], None]) -> None:
    mode = stat.S_IMODE(status.st_mode)
    if mode & _GROUP_AND_OTHERS and status.st_uid == os.geteuid():
        chmod(mode & ~_GROUP_AND_OTHERS)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file has ``mode`` from its first byte."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(stream.fileno(), mode)  # mkstemp made it 0600; public files widen here
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)

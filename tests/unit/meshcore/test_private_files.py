"""meshcore.private_files and its users: what the platform writes is 0600 in 0700 folders."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.private_files import (
    others_access_problem,
    private_directory,
    private_file,
    read_secret_file,
)
from sqlalchemy import text

pytestmark = pytest.mark.usefixtures("usual_umask")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_sqlite_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    """A real write through Database: folders 0700, the file and its -wal/-shm 0600."""
    path = tmp_path / "data" / "nested" / "auth.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE users (hash TEXT)"))
            await session.execute(text("INSERT INTO users VALUES ('$argon2id$...')"))
        async with database.session() as session:  # a second transaction while the WAL lives
            await session.execute(text("INSERT INTO users VALUES ('$argon2id$...')"))
            siblings = [Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(sibling.exists() for sibling in siblings)
            assert [_mode(sibling) for sibling in siblings] == [0o600, 0o600]
        assert _mode(path) == 0o600
        assert _mode(path.parent) == _mode(path.parent.parent) == 0o700
    finally:
        await database.dispose()


async def test_an_existing_database_file_is_restricted_on_first_connect(tmp_path: Path) -> None:
    """A 0644 file left by an older version becomes 0600; its existing folder is left alone."""
    path = tmp_path / "billing.db"
    path.touch(mode=0o644)
    folder_mode = _mode(tmp_path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await database.ping()
    finally:
        await database.dispose()
    assert _mode(path) == 0o600
    assert _mode(tmp_path) == folder_mode


def test_private_directory_creates_parents_and_restricts_an_existing_one(tmp_path: Path) -> None:
    """Every folder it creates is 0700; an existing one of ours loses group and other access."""
    assert _mode(private_directory(tmp_path / "a" / "b")) == 0o700
    assert _mode(tmp_path / "a") == 0o700
    existing = tmp_path / "old"
    existing.mkdir(mode=0o755)
    assert _mode(private_directory(existing)) == 0o700


def test_private_file_creates_0600_and_restricts_an_existing_one(tmp_path: Path) -> None:
    """New files are born 0600; an old 0664 one loses group and other bits, keeping the rest."""
    assert _mode(private_file(tmp_path / "new")) == 0o600
    old = tmp_path / "old"
    old.write_text("kept")
    old.chmod(0o664)
    assert _mode(private_file(old)) == 0o600
    assert old.read_text() == "kept"


_TRY_EXCLUSIVE_LOCK = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(3)
"""


def test_private_file_keeps_the_locks_this_process_holds_on_an_existing_file(
    tmp_path: Path,
) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    included (meshcore.db calls private_file before each new pooled connection): an existing
    file must be restricted without being opened."""
    path = tmp_path / "auth.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    held = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(held, fcntl.LOCK_SH)  # as an open SQLite connection holds it
        assert _mode(private_file(path)) == 0o600
        other = subprocess.run(
            [sys.executable, "-c", _TRY_EXCLUSIVE_LOCK, str(path)], check=False, timeout=60
        )
        assert other.returncode == 3, "another process could lock the file exclusively"
    finally:
        os.close(held)


def test_others_access_is_a_problem_and_group_access_is_not(tmp_path: Path) -> None:
    """mode & 0o007 is refused; 0640 and 0440 (Kubernetes fsGroup secret volumes) are not."""
    path = tmp_path / "secret"
    path.write_text("value\n")
    for mode, refused in ((0o644, True), (0o604, True), (0o640, False), (0o440, False)):
        path.chmod(mode)
        assert (others_access_problem(path) is not None) is refused, oct(mode)
    assert read_secret_file(path) == "value"

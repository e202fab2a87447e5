"""What the launcher and the embedded pieces write under the data folder is private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from zoptal_notification.celery_app import create_celery_app
from zoptal_notification.settings import NotificationSettings
from zoptal_platform.catalogue import SERVICES
from zoptal_platform.launcher import PlatformLayout, _spawn, prepare_folders
from zoptal_platform.mail_sink import _SaveToFolder

pytestmark = pytest.mark.usefixtures("usual_umask")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_and_its_subfolders_are_0700(tmp_path: Path) -> None:
    """Created 0700 under umask 022; a 0755 data folder left by an older run is restricted."""
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    for data_dir in (tmp_path / "new" / "data", old):
        layout = PlatformLayout(data_dir, services=SERVICES)
        prepare_folders(layout)
        for folder in (data_dir, layout.log_dir, layout.mail_dir):
            assert _mode(folder) == 0o700, folder


async def test_service_logs_are_0600(tmp_path: Path) -> None:
    """A service's log file (tracebacks, request data) is readable by its owner only."""
    running = await _spawn("echo", ["/bin/echo", "hello"], {}, tmp_path)
    await running.process.wait()
    assert _mode(running.log_path) == 0o600
    assert running.log_path.read_text() == "hello\n"


async def test_stored_mail_is_0600(tmp_path: Path) -> None:
    """Messages carry password-reset links."""

    class Envelope:
        original_content = b"Subject: reset\r\n\r\nhttps://example.invalid/reset?t=x\r\n"

    await _SaveToFolder(tmp_path).handle_DATA(None, None, Envelope())
    [name] = [name for name in os.listdir(tmp_path) if name.endswith(".eml")]
    assert _mode(tmp_path / name) == 0o600


def test_the_sqlite_celery_broker_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    """The embedded broker file holds queued notifications (addresses, message bodies)."""
    create_celery_app(NotificationSettings(data_dir=tmp_path / "data"))
    assert _mode(tmp_path / "data" / "celery-broker.db") == 0o600
    assert _mode(tmp_path / "data") == 0o700

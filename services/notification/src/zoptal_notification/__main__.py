"""``python -m zoptal_notification [serve|migrate]``: the Notification service's command line.

The worker is separate: ``celery -A zoptal_notification.worker worker``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from meshcore.cli import ServiceCli

if TYPE_CHECKING:
    from zoptal_notification.settings import NotificationSettings

__all__ = ["main"]


def _settings() -> NotificationSettings:
    from zoptal_notification.settings import NotificationSettings

    return NotificationSettings.from_env()


def _migrations_dir() -> Path:
    from zoptal_notification.app import MIGRATIONS_DIR

    return MIGRATIONS_DIR


async def _serve(settings: NotificationSettings) -> None:
    from zoptal_notification.app import NotificationApp

    app = NotificationApp(settings)
    server = app.build_server(app.interceptors())
    app.start_background()
    await server.serve()


CLI = ServiceCli(
    "zoptal_notification",
    __doc__,
    _settings,
    _migrations_dir,
    _serve,
    serve_help="serve gRPC and run the outbox relay (the default)",
)


def main(argv: list[str] | None = None) -> int:
    return CLI.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

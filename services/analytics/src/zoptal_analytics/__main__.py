"""``python -m zoptal_analytics [serve|migrate]``: the Analytics service's command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from meshcore.cli import ServiceCli

if TYPE_CHECKING:
    from zoptal_analytics.settings import AnalyticsSettings

__all__ = ["main"]


def _settings() -> AnalyticsSettings:
    from zoptal_analytics.settings import AnalyticsSettings

    return AnalyticsSettings.from_env()


def _migrations_dir() -> Path:
    from zoptal_analytics.app import MIGRATIONS_DIR

    return MIGRATIONS_DIR


async def _serve(settings: AnalyticsSettings) -> None:
    from zoptal_analytics.app import AnalyticsApp

    app = AnalyticsApp(settings)
    server = app.build_server(app.interceptors())
    app.start_background()
    await server.serve()


CLI = ServiceCli(
    "zoptal_analytics",
    __doc__,
    _settings,
    _migrations_dir,
    _serve,
    serve_help="serve gRPC and flush event batches (the default)",
)


def main(argv: list[str] | None = None) -> int:
    return CLI.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

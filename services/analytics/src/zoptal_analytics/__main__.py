"""``python -m zoptal_analytics [serve|migrate]``: the Analytics service's command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoptal_analytics.settings import AnalyticsSettings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoptal_analytics", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve gRPC (the default)")
    commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    args = parser.parse_args(argv)

    from meshcore.settings import SettingsError, redact_url

    from zoptal_analytics.settings import AnalyticsSettings

    try:
        settings = AnalyticsSettings.from_env()
    except SettingsError as error:
        print(f"zoptal_analytics: {error}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from meshcore.migrations import run_migrations

        from zoptal_analytics.app import MIGRATIONS_DIR

        run_migrations(settings.database_url, MIGRATIONS_DIR)
        print(f"zoptal_analytics: {redact_url(settings.database_url)} is at head")
        return 0
    return _serve(settings)


def _serve(settings: AnalyticsSettings) -> int:
    from meshcore.interceptors.chain import build_server_chain
    from meshcore.observability.logs import configure_logging
    from meshcore.observability.tracing import shutdown_tracing
    from meshcore.server import run

    from zoptal_analytics.app import AnalyticsApp

    configure_logging(settings.log_level, service="analytics")

    async def serve() -> None:
        app = AnalyticsApp(settings)
        server = app.build_server(build_server_chain(settings))
        server.on_shutdown(shutdown_tracing)
        app.start_background()
        await server.serve()

    return run(serve())


if __name__ == "__main__":
    raise SystemExit(main())

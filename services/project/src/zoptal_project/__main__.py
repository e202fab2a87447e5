"""``python -m zoptal_project [serve|migrate]``: the Project service's command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoptal_project.settings import ProjectSettings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoptal_project", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve ProjectService (the default)")
    commands.add_parser("migrate", help="apply the database migrations")
    args = parser.parse_args(argv)

    from meshcore.settings import SettingsError

    from zoptal_project.settings import ProjectSettings

    try:
        settings = ProjectSettings.from_env()
    except SettingsError as error:
        print(f"zoptal_project: {error}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from meshcore.migrations import run_migrations
        from meshcore.settings import redact_url

        from zoptal_project.app import MIGRATIONS_DIR

        run_migrations(settings.database_url, MIGRATIONS_DIR)
        print(f"zoptal_project: {redact_url(settings.database_url)} is at head")
        return 0
    return _serve(settings)


def _serve(settings: ProjectSettings) -> int:
    from meshcore.observability.logs import configure_logging
    from meshcore.server import run

    from zoptal_project.app import ProjectApp

    configure_logging(settings.log_level, service="project")

    async def serve() -> None:
        await ProjectApp(settings).serve()

    return run(serve())


if __name__ == "__main__":
    raise SystemExit(main())

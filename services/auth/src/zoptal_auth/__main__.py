"""``python -m zoptal_auth [serve|migrate|generate-key]``: the Auth service's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoptal_auth.settings import AuthSettings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoptal_auth", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve gRPC and /.well-known/jwks.json (the default)")
    commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    generate = commands.add_parser(
        "generate-key", help="write a new private signing key (PEM, mode 0600) for rotation"
    )
    generate.add_argument("folder", type=Path, help="folder to write <time>-<kid>.pem into")
    generate.add_argument("--algorithm", choices=("ES256", "EdDSA"), default="ES256")
    args = parser.parse_args(argv)

    if args.command == "generate-key":
        from zoptal_auth.keys import generate_key_file

        print(generate_key_file(args.folder, args.algorithm))
        return 0

    from meshcore.settings import SettingsError

    from zoptal_auth.settings import AuthSettings

    try:
        settings = AuthSettings.from_env()
    except SettingsError as error:
        print(f"zoptal_auth: {error}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from meshcore.migrations import run_migrations
        from meshcore.settings import redact_url

        from zoptal_auth.app import MIGRATIONS_DIR

        run_migrations(settings.database_url, MIGRATIONS_DIR)
        print(f"zoptal_auth: {redact_url(settings.database_url)} is at head")
        return 0
    return _serve(settings)


def _serve(settings: AuthSettings) -> int:
    from meshcore.observability.logs import configure_logging
    from meshcore.server import run

    from zoptal_auth.app import build_app

    configure_logging(settings.log_level, service="auth")

    async def main() -> None:
        app = await build_app(settings)
        await app.serve()

    return run(main())


if __name__ == "__main__":
    raise SystemExit(main())

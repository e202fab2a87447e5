"""``python -m zoptal_billing [serve|migrate]``: the Billing service's command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoptal_billing.settings import BillingSettings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoptal_billing", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve BillingService (the default)")
    commands.add_parser("migrate", help="apply the database migrations and seed the plans")
    args = parser.parse_args(argv)

    from meshcore.settings import SettingsError

    from zoptal_billing.settings import BillingSettings

    try:
        settings = BillingSettings.from_env()
    except SettingsError as error:
        print(f"zoptal_billing: {error}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from meshcore.migrations import run_migrations
        from meshcore.settings import redact_url

        from zoptal_billing.app import MIGRATIONS_DIR

        run_migrations(settings.database_url, MIGRATIONS_DIR)
        print(f"zoptal_billing: {redact_url(settings.database_url)} is at head")
        return 0
    return _serve(settings)


def _serve(settings: BillingSettings) -> int:
    from meshcore.observability.logs import configure_logging
    from meshcore.server import run

    from zoptal_billing.app import BillingApp

    configure_logging(settings.log_level, service="billing")

    async def serve() -> None:
        await BillingApp(settings).serve()

    return run(serve())


if __name__ == "__main__":
    raise SystemExit(main())

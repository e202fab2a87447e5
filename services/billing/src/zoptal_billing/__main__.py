"""``python -m zoptal_billing [serve|migrate]``: the Billing service's command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from meshcore.cli import ServiceCli

if TYPE_CHECKING:
    from zoptal_billing.settings import BillingSettings

__all__ = ["main"]


def _settings() -> BillingSettings:
    from zoptal_billing.settings import BillingSettings

    return BillingSettings.from_env()


def _migrations_dir() -> Path:
    from zoptal_billing.app import MIGRATIONS_DIR

    return MIGRATIONS_DIR


async def _serve(settings: BillingSettings) -> None:
    from zoptal_billing.app import BillingApp

    await BillingApp(settings).serve()


CLI = ServiceCli("zoptal_billing", __doc__, _settings, _migrations_dir, _serve)


def main(argv: list[str] | None = None) -> int:
    return CLI.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

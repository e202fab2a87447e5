"""``python -m zoptal_billing [serve|migrate]``: the Billing service's command line."""

from meshcore.cli import ServiceCli

from zoptal_billing import MIGRATIONS_DIR
from zoptal_billing.settings import BillingSettings

CLI = ServiceCli(
    "zoptal_billing",
    __doc__,
    BillingSettings,
    MIGRATIONS_DIR,
    "zoptal_billing.app:BillingApp",
)
main = CLI.main

if __name__ == "__main__":
    raise SystemExit(main())

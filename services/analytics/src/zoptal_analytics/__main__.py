"""``python -m zoptal_analytics [serve|migrate]``: the Analytics service's command line."""

from meshcore.cli import ServiceCli

from zoptal_analytics import MIGRATIONS_DIR
from zoptal_analytics.settings import AnalyticsSettings

CLI = ServiceCli(
    "zoptal_analytics",
    __doc__,
    AnalyticsSettings,
    MIGRATIONS_DIR,
    "zoptal_analytics.app:AnalyticsApp",
    serve_help="serve gRPC and flush event batches (the default)",
)
main = CLI.main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m zoptal_notification [serve|migrate]``: the Notification service's command line.

The worker is separate: ``celery -A zoptal_notification.worker worker``."""

from meshcore.cli import ServiceCli

from zoptal_notification import MIGRATIONS_DIR
from zoptal_notification.settings import NotificationSettings

CLI = ServiceCli(
    "zoptal_notification",
    __doc__,
    NotificationSettings,
    MIGRATIONS_DIR,
    "zoptal_notification.app:NotificationApp",
    serve_help="serve gRPC and run the outbox relay (the default)",
)
main = CLI.main

if __name__ == "__main__":
    raise SystemExit(main())

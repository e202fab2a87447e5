"""``python -m zoptal_project [serve|migrate]``: the Project service's command line."""

from meshcore.cli import ServiceCli

from zoptal_project import MIGRATIONS_DIR
from zoptal_project.settings import ProjectSettings

CLI = ServiceCli(
    "zoptal_project",
    __doc__,
    ProjectSettings,
    MIGRATIONS_DIR,
    "zoptal_project.app:ProjectApp",
)
main = CLI.main

if __name__ == "__main__":
    raise SystemExit(main())

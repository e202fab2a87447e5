"""``python -m zoptal_project [serve|migrate]``: the Project service's command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from meshcore.cli import ServiceCli

if TYPE_CHECKING:
    from zoptal_project.settings import ProjectSettings

__all__ = ["main"]


def _settings() -> ProjectSettings:
    from zoptal_project.settings import ProjectSettings

    return ProjectSettings.from_env()


def _migrations_dir() -> Path:
    from zoptal_project.app import MIGRATIONS_DIR

    return MIGRATIONS_DIR


async def _serve(settings: ProjectSettings) -> None:
    from zoptal_project.app import ProjectApp

    await ProjectApp(settings).serve()


CLI = ServiceCli("zoptal_project", __doc__, _settings, _migrations_dir, _serve)


def main(argv: list[str] | None = None) -> int:
    return CLI.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

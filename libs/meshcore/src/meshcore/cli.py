"""The command line every service shares: ``python -m <service> [serve|migrate|...]``.

A service's ``__main__`` names its settings class, migrations folder and app (``ServiceApp``);
this module does the rest the same way everywhere: settings errors as one line and exit code 2,
``migrate`` to head, JSON logging, uvloop, serving the app, and flushing trace exporters after
the server has stopped. The app is named as ``"module:factory"`` and imported only to serve, so
``migrate`` and ``--help`` stay quick and nothing opens at import time.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from meshcore.settings import ServiceSettings

__all__ = ["ExtraCommand", "ServiceCli"]

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class ExtraCommand:
    """A service-specific command that needs no settings (for example Auth's ``generate-key``)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class ServiceCli(Generic[S]):
    prog: str
    description: str | None
    settings: type[S]
    migrations: Path
    app: str
    """``"module:factory"``: the factory takes the settings and returns a ``ServiceApp`` (or an
    awaitable of one, for an app whose parts are loaded off the event loop)."""
    serve_help: str = "serve gRPC (the default)"
    extra_commands: Mapping[str, ExtraCommand] = field(default_factory=dict)

    def main(self, argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(
            prog=f"python -m {self.prog}", description=self.description
        )
        commands = parser.add_subparsers(dest="command")
        commands.add_parser("serve", help=self.serve_help)
        commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
        for name, extra in self.extra_commands.items():
            extra.configure(commands.add_parser(name, help=extra.help))
        args = parser.parse_args(argv)

        if args.command in self.extra_commands:
            return self.extra_commands[args.command].run(args)

        from meshcore.settings import SettingsError

        try:
            settings = self.settings.from_env()
        except SettingsError as error:
            print(f"{self.prog}: {error}", file=sys.stderr)
            return 2
        if args.command == "migrate":
            return self._migrate(settings)
        return self._serve(settings)

    def _migrate(self, settings: S) -> int:
        from meshcore.migrations import run_migrations
        from meshcore.settings import redact_url

        run_migrations(settings.database_url, self.migrations)
        print(f"{self.prog}: {redact_url(settings.database_url)} is at head")
        return 0

    def _serve(self, settings: S) -> int:
        from meshcore.observability.logs import configure_logging
        from meshcore.observability.tracing import shutdown_tracing
        from meshcore.server import run

        configure_logging(settings.log_level, service=settings.service_name)
        try:
            return run(self._serve_app(settings))
        finally:
            # After the server has drained: flush the spans still buffered for export.
            shutdown_tracing()

    async def _serve_app(self, settings: S) -> None:
        from meshcore.service_app import ServiceApp

        module, _, name = self.app.partition(":")
        made = getattr(importlib.import_module(module), name)(settings)
        app = await made if inspect.isawaitable(made) else made
        if not isinstance(app, ServiceApp):
            raise TypeError(f"{self.app} made {type(app).__name__}, not a ServiceApp")
        await app.serve()

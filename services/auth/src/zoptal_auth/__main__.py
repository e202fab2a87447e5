"""``python -m zoptal_auth [serve|migrate|generate-key]``: the Auth service's command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from meshcore.cli import ExtraCommand, ServiceCli

if TYPE_CHECKING:
    from zoptal_auth.settings import AuthSettings

__all__ = ["main"]


def _settings() -> AuthSettings:
    from zoptal_auth.settings import AuthSettings

    return AuthSettings.from_env()


def _migrations_dir() -> Path:
    from zoptal_auth.app import MIGRATIONS_DIR

    return MIGRATIONS_DIR


async def _serve(settings: AuthSettings) -> None:
    from zoptal_auth.app import build_app

    app = await build_app(settings)
    await app.serve()


def _configure_generate_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="folder to write <time>-<kid>.pem into")
    parser.add_argument("--algorithm", choices=("ES256", "EdDSA"), default="ES256")


def _generate_key(args: argparse.Namespace) -> int:
    from zoptal_auth.keys import generate_key_file

    print(generate_key_file(args.folder, args.algorithm))
    return 0


CLI = ServiceCli(
    "zoptal_auth",
    __doc__,
    _settings,
    _migrations_dir,
    _serve,
    serve_help="serve gRPC and /.well-known/jwks.json (the default)",
    extra_commands={
        "generate-key": ExtraCommand(
            "write a new private signing key (PEM, mode 0600) for rotation",
            _configure_generate_key,
            _generate_key,
        )
    },
)


def main(argv: list[str] | None = None) -> int:
    return CLI.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

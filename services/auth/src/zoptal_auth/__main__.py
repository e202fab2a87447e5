"""``python -m zoptal_auth [serve|migrate|generate-key|service-identity]``: Auth's command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from meshcore.cli import ExtraCommand, ServiceCli

from zoptal_auth import MIGRATIONS_DIR
from zoptal_auth.settings import AuthSettings


def _configure_generate_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="folder to write <time>-<kid>.pem into")
    parser.add_argument("--algorithm", choices=("ES256", "EdDSA"), default="ES256")
    parser.add_argument(
        "--publish-seconds",
        type=float,
        default=None,
        help="publish the key this long before it signs (default: 0 for the first key of the "
        "folder, else 1800, longer than every verifier's JWKS cache)",
    )


def _generate_key(args: argparse.Namespace) -> int:
    import sys
    import time

    from zoptal_auth.keys import DEFAULT_PUBLISH_SECONDS, generate_key_file, signs_from

    publish = args.publish_seconds
    if publish is None:
        # The folder's first key: nobody can hold an older key set, so it signs at once.
        first = not any(Path(args.folder).glob("*.pem"))
        publish = 0.0 if first else DEFAULT_PUBLISH_SECONDS
    if publish < 0:
        print("generate-key: --publish-seconds must be >= 0", file=sys.stderr)
        return 2
    path = generate_key_file(args.folder, args.algorithm, publish_seconds=publish)
    print(path)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(signs_from(path)))
    print(f"published once Auth restarts; signs from {start}", file=sys.stderr)
    return 0


def _configure_service_identity(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    ensure = actions.add_parser(
        "ensure", help="give every platform service an account and a credential file"
    )
    ensure.add_argument("--credentials-dir", type=Path, required=True)
    ensure.add_argument("services", nargs="*", help="default: every platform service")
    rotate = actions.add_parser(
        "rotate", help="write a new credential; the old one works for a grace period"
    )
    rotate.add_argument("--credentials-dir", type=Path, required=True)
    rotate.add_argument("service")
    rotate.add_argument("--grace-seconds", type=float, default=600.0)
    revoke = actions.add_parser("revoke", help="end a service's credentials and their tokens")
    revoke.add_argument("service")


def _service_identity(args: argparse.Namespace) -> int:
    """Run with Auth's environment: the accounts live in Auth's database."""
    import asyncio
    import sys

    from zoptal_auth.service_identity import IdentityError, run_identity_command

    try:
        outcomes = asyncio.run(run_identity_command(AuthSettings.from_env(), args))
    except IdentityError as error:
        print(f"service-identity: {error}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        print(f"{outcome.service}: {outcome.action}")
    return 0


CLI = ServiceCli(
    "zoptal_auth",
    __doc__,
    AuthSettings,
    MIGRATIONS_DIR,
    "zoptal_auth.app:build_app",
    serve_help="serve gRPC and /.well-known/jwks.json (the default)",
    extra_commands={
        "generate-key": ExtraCommand(
            "write a new private signing key (PEM, mode 0600) for rotation",
            _configure_generate_key,
            _generate_key,
        ),
        "service-identity": ExtraCommand(
            "ensure, rotate or revoke the platform services' credentials (Auth's environment)",
            _configure_service_identity,
            _service_identity,
        ),
    },
)

main = CLI.main


if __name__ == "__main__":
    raise SystemExit(main())

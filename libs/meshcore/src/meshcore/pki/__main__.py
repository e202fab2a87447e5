"""``python -m meshcore.pki``: the command line of ``meshcore.pki`` (exit 2 on bad input)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from meshcore.pki import (
    DEFAULT_CA_DAYS,
    DEFAULT_LEAF_DAYS,
    CertificateAuthority,
    CertificateRequest,
    PkiError,
    ensure,
    ensure_ca,
    issue,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m meshcore.pki", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ca = commands.add_parser("ensure-ca", help="make the CA in --dir unless one is there")
    ca.add_argument("--dir", type=Path, required=True)
    ca.add_argument("--days", type=int, default=DEFAULT_CA_DAYS)
    for name, text in (
        ("issue", "write a new key and certificate for a service"),
        ("ensure", "issue only when missing, from another CA, or in its last third of life"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--ca-dir", type=Path, required=True)
        command.add_argument("--out", type=Path, required=True)
        command.add_argument("--service", required=True)
        command.add_argument("--dns", action="append", default=[], metavar="HOST")
        command.add_argument("--ip", action="append", default=[], metavar="ADDRESS")
        command.add_argument("--trust-domain", default="zoptal.local")
        command.add_argument("--days", type=int, default=DEFAULT_LEAF_DAYS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on a usage error
    try:
        return _run(args)
    except PkiError as error:
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")


def _run(args: argparse.Namespace) -> int:
    if args.command == "ensure-ca":
        ca, made = ensure_ca(args.dir, days=args.days)
        serial = ca.certificate.serial_number
        print(f"{'created' if made else 'kept'} CA {args.dir} (serial {serial:x})")
        return 0
    ca = CertificateAuthority.load(args.ca_dir)
    request = CertificateRequest(
        service=args.service,
        dns_names=tuple(args.dns),
        ip_addresses=tuple(args.ip),
        trust_domain=args.trust_domain,
        days=args.days,
    )
    request.subject_alternative_names()  # every name checked before anything is written
    if args.command == "issue":
        certificate = issue(ca, args.out, request)
        print(f"issued {args.out} for {args.service} (serial {certificate.serial_number:x})")
        return 0
    reason = ensure(ca, args.out, request)
    print(f"{args.out} for {args.service}: " + (f"issued, {reason}" if reason else "current"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

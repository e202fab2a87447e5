"""``python -m zoptal_platform run|migrate``: the embedded platform from one command."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from zoptal_platform.launcher import (
    PlatformError,
    PlatformLayout,
    migrate_all,
    migrate_databases,
    start_all,
    start_worker,
    stop_all,
    wait_until_serving,
)
from zoptal_platform.mail_sink import MailSink
from zoptal_platform.stores import (
    ENVIRONMENT_VARIABLES as STORE_VARIABLES,
    ExternalStores,
    StoreConfigError,
)

DATA_DIR_VARIABLE = "ZOPTAL_DATA_DIR"
PORT_OFFSET_VARIABLE = "ZOPTAL_PORT_OFFSET"
ENVIRONMENT_VARIABLES = (DATA_DIR_VARIABLE, PORT_OFFSET_VARIABLE, *STORE_VARIABLES)
"""Every variable the launcher itself reads (docs/operations.md documents each one).

The services' own variables pass through it to every process and are not listed here.
"""


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m zoptal_platform", description=__doc__)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "migrate"])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(DATA_DIR_VARIABLE, "data")),
        help=f"SQLite files, keys and logs (env {DATA_DIR_VARIABLE}; default ./data)",
    )
    raw_offset = os.environ.get(PORT_OFFSET_VARIABLE, "").strip() or "0"
    try:
        default_offset = int(raw_offset)
    except ValueError:
        parser.error(f"{PORT_OFFSET_VARIABLE}: expected an integer, got {raw_offset!r}")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=default_offset,
        help=f"added to every port, to run two platforms side by side (env {PORT_OFFSET_VARIABLE})",
    )
    return parser.parse_args(argv)


def _banner(layout: PlatformLayout) -> str:
    rows = [f"  {spec.name:<13} {layout.grpc_address(spec)}" for spec in layout.services]
    auth = next((s for s in layout.services if s.name == "auth"), None)
    lines = ["Zoptal mesh is SERVING (embedded mode):", *rows]
    if auth is not None:
        lines += [
            f"  jwks          http://127.0.0.1:{8080 + layout.port_offset}/.well-known/jwks.json",
            "",
            "Try it (server reflection is on, so grpcurl needs no proto files):",
            '  grpcurl -plaintext -d \'{"email": "ada@example.com", "password": '
            '"correct-horse-battery-9", "display_name": "Ada"}\' \\',
            f"    {layout.grpc_address(auth)} zoptal.auth.v1.AuthService/RegisterUser",
        ]
    stores = layout.stores.describe(spec.name for spec in layout.services)
    lines += ["", *(f"Data: {line}" for line in stores)] if stores else []
    lines += [
        "",
        f"Email is delivered over SMTP to 127.0.0.1:{layout.smtp_port} and kept in "
        f"{layout.mail_dir}/ (one .eml file per message).",
        f"Logs and data: {layout.data_dir}/   Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


async def _run(layout: PlatformLayout) -> int:
    if not layout.services:
        print("no service is installed yet; nothing to run", file=sys.stderr)
        return 1
    await migrate_databases(layout)
    mail = MailSink(layout.mail_dir, layout.smtp_port)
    mail.start()
    running = await start_all(layout)
    try:
        await wait_until_serving(layout, running)
        worker = await start_worker(layout)
        if worker is not None:
            running.append(worker)
        print(_banner(layout), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        died = [asyncio.create_task(item.process.wait()) for item in running]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *died], return_when=asyncio.FIRST_COMPLETED)
        for task in [stopper, *died]:
            task.cancel()
        if stopper not in done:
            dead = next(item for item in running if item.process.returncode is not None)
            raise PlatformError(f"{dead.label} exited with {dead.process.returncode}", dead)
        print("stopping...", flush=True)
        return 0
    finally:
        await stop_all(running)
        mail.stop()
        print("stopped.", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        stores = ExternalStores.from_env(os.environ)
    except StoreConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    layout = PlatformLayout(
        data_dir=args.data_dir.resolve(), port_offset=args.port_offset, stores=stores
    )
    try:
        if args.command == "migrate":
            asyncio.run(migrate_all(layout))
            return 0
        return asyncio.run(_run(layout))
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Re-issued certificates are used without a restart and without one failed call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meshcore.client_manager import GrpcClientManager
from meshcore.testing import FakeClock, TokenMint

from tests.support import free_port

from .tls_harness import (
    WHO,
    BillingSettings,
    Pki,
    ProjectSettings,
    identity,
    server_certificate_serial,
    start_server,
)


async def test_server_and_client_certificates_rotate_under_a_stream_of_calls(
    tmp_path: Path,
) -> None:
    pki, tokens = Pki(tmp_path), TokenMint()
    billing_files = pki.issue("billing")
    project_files = pki.issue("project")
    server = await start_server(
        pki.settings(BillingSettings, billing_files, grpc_port=0, mtls_port=free_port()), tokens
    )
    clock = FakeClock()
    settings = pki.settings(
        ProjectSettings, project_files, peers={"billing": (server.mtls_address,)}
    )
    manager = GrpcClientManager.from_settings(
        settings, service_token=tokens.service_token("project"), clock=clock
    )
    who = manager.service("billing").unary(WHO, identity, identity, idempotent=False)
    replies: list[bytes] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()
    progress = asyncio.Condition()  # notified after every call: waits count calls, not time

    async def caller() -> None:
        while not stop.is_set():
            try:
                replies.append(await who(b""))
            except Exception as error:  # counted, not raised: the assertion names them all
                failures.append(error)
            async with progress:
                progress.notify_all()

    async def calls_made(count: int) -> None:
        target = len(replies) + len(failures) + count
        async with progress:
            await progress.wait_for(lambda: len(replies) + len(failures) >= target)

    try:
        async with manager:
            callers = [asyncio.create_task(caller()) for _ in range(4)]
            await calls_made(50)
            old_client_serial = pki.serial("project")
            assert replies[-1].endswith(f"|{old_client_serial}".encode())

            # Server side: re-issued files are served from the next handshake on.
            old_server_serial = pki.serial("billing")
            pki.issue("billing")
            new_server_serial = pki.serial("billing")
            assert new_server_serial != old_server_serial
            presented = await asyncio.to_thread(
                server_certificate_serial, server.mtls_address, project_files
            )
            assert presented == new_server_serial
            await calls_made(50)

            # Client side: the watcher looks after its interval (a fake clock: no waiting) and
            # moves new calls to channels made with the new certificate.
            pki.issue("project")
            new_client_serial = pki.serial("project")
            clock.advance(manager.tls_reload_seconds)
            reloading = manager.pool.reloading
            assert reloading is not None
            async with progress:
                await progress.wait_for(lambda: reloading.serial == new_client_serial)
            await calls_made(50)
            assert replies[-1].endswith(f"|{new_client_serial}".encode())
            assert await manager.reload_certificates() is False  # nothing changed since

            stop.set()
            await asyncio.gather(*callers)
    finally:
        stop.set()
        await server.stop()
    assert failures == []
    assert len(replies) >= 150

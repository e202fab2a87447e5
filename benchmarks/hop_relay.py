"""Project's side of the two-hop measurement (run by ``platform_footprint.py``).

A server built the way Project builds itself: ``ProjectSettings`` from the environment, Project's
server interceptor chain, and Project's own Billing gateway over the typed client (discovery,
breaker, service token, deadline). Its one method, ``/bench.v1.Relay/CheckLimit``, asks Billing
whether the authenticated caller may create one more project: the first call CreateProject makes,
without CreateProject's database write, so the second hop is the only difference from calling
Billing directly. Prints ``READY <port>`` once serving.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import loop_runner

SERVICE, METHOD = "bench.v1.Relay", "CheckLimit"


def _identity(value: bytes) -> bytes:
    return value


async def serve() -> None:
    import grpc
    from meshcore.context import require_principal
    from zoptal.clients import BillingServiceClient
    from zoptal_project.app import ProjectApp
    from zoptal_project.gateways import GrpcBillingGateway
    from zoptal_project.ports import BilledMetric
    from zoptal_project.settings import ProjectSettings

    settings = ProjectSettings.from_env()
    project = ProjectApp(settings)
    billing = GrpcBillingGateway(
        BillingServiceClient(project.clients), timeout_ms=settings.billing_timeout_ms
    )

    async def check_limit(request: bytes, context: Any) -> bytes:
        answer = await billing.check_limit(require_principal().subject, BilledMetric.PROJECTS, 1)
        return b"allowed" if answer.allowed else b"denied"

    handler = grpc.unary_unary_rpc_method_handler(
        check_limit, request_deserializer=_identity, response_serializer=_identity
    )
    server = grpc.aio.server(interceptors=project.interceptors())
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    peers = project.peers
    assert peers is not None
    peers.start()  # as in production: Project's own token, revoked tokens polled from Auth
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1.0)
    await peers.stop()
    await peers.clients.close()


if __name__ == "__main__":
    with loop_runner() as runner:
        runner.run(serve())

"""MeshServer's mutual-TLS port and the peer-binding rule, over real channels on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from meshcore.client_manager import GrpcClientManager
from meshcore.mesh import create_service_mesh
from meshcore.pki import CertificateRequest, ensure_ca, issue
from meshcore.server import MeshServer
from meshcore.testing import TokenMint
from meshcore.tls import TlsFiles, server_credentials

from tests.support import free_port

from .tls_harness import (
    WHO,
    BillingSettings,
    Pki,
    ProjectSettings,
    channel_credentials,
    identity,
    serial_of,
    start_server,
)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def tokens() -> TokenMint:
    return TokenMint()


@pytest.fixture
async def billing(pki: Pki, tokens: TokenMint) -> AsyncIterator[MeshServer]:
    """Billing with GRPC_PORT (plaintext) and MTLS_PORT, verifying ES256 tokens of ``tokens``."""
    settings = pki.settings(
        BillingSettings, pki.issue("billing"), grpc_port=0, mtls_port=free_port()
    )
    server = await start_server(settings, tokens)
    try:
        yield server
    finally:
        await server.stop()


async def _call(
    address: str, credentials: grpc.ChannelCredentials | None, metadata: tuple[tuple[str, str], ...]
) -> bytes:
    channel = (
        grpc.aio.insecure_channel(address)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials)
    )
    async with channel:
        who = channel.unary_unary(WHO, request_serializer=identity, response_deserializer=identity)
        reply: bytes = await who(b"", metadata=metadata, timeout=10)
        return reply


def _service(tokens: TokenMint, name: str) -> tuple[tuple[str, str], ...]:
    return (("x-service-token", tokens.service_token(name)),)


def _user(tokens: TokenMint) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {tokens.user_token('user-1')}"),)


async def test_tls_end_to_end_verifies_the_server_against_the_ca(pki: Pki) -> None:
    """A TLS-only port (no client certificate asked) serves a client that trusts the CA."""
    files = pki.issue("billing")

    async def hello(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"hello over " + context.auth_context()["transport_security_type"][0]

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(hello)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("meshtest.Who", {"Who": handler})]
    )
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(files, require_client_auth=False)
    )
    await server.start()
    try:
        assert files.ca_file is not None
        trust_only = grpc.ssl_channel_credentials(files.ca_file.read_bytes())
        for host in ("127.0.0.1", "localhost"):  # IP SAN and DNS SAN
            assert await _call(f"{host}:{port}", trust_only, ()) == b"hello over ssl"
    finally:
        await server.stop(None)


async def test_mtls_end_to_end_with_a_matching_service_token(
    billing: MeshServer, pki: Pki, tokens: TokenMint
) -> None:
    """project's certificate and project's service token: accepted, the cert seen by billing."""
    project = pki.issue("project")
    assert project.cert_file is not None
    reply = await _call(
        billing.mtls_address, channel_credentials(project), _service(tokens, "project")
    )
    assert reply == f"service:project|{serial_of(project.cert_file.read_bytes())}".encode()


async def test_a_client_without_a_certificate_is_refused_at_the_handshake(
    billing: MeshServer, pki: Pki, tokens: TokenMint
) -> None:
    credentials = channel_credentials(pki.issue("project"), client_cert=False)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(billing.mtls_address, credentials, _user(tokens))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_refused(
    billing: MeshServer, pki: Pki, tmp_path: Path, tokens: TokenMint
) -> None:
    other_ca = ensure_ca(tmp_path / "other-ca")[0]
    issue(other_ca, tmp_path / "intruder", CertificateRequest("project"))
    # Our CA to verify the server; the other CA's certificate and key to present.
    credentials = grpc.ssl_channel_credentials(
        (pki.root / "ca" / "ca.crt").read_bytes(),
        (tmp_path / "intruder" / "tls.key").read_bytes(),
        (tmp_path / "intruder" / "tls.crt").read_bytes(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(billing.mtls_address, credentials, _service(tokens, "project"))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_service_token_with_another_services_certificate_is_unauthenticated(
    billing: MeshServer, pki: Pki, tokens: TokenMint
) -> None:
    """analytics' certificate cannot carry project's token."""
    credentials = channel_credentials(pki.issue("analytics"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(billing.mtls_address, credentials, _service(tokens, "project"))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "service token does not match the client certificate"


async def test_a_service_token_on_the_plaintext_port_of_an_mtls_server_is_unauthenticated(
    billing: MeshServer, tokens: TokenMint
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(billing.address, None, _service(tokens, "project"))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "service tokens are accepted only over mTLS"


async def test_a_user_token_is_accepted_on_both_ports(
    billing: MeshServer, pki: Pki, tokens: TokenMint
) -> None:
    assert await _call(billing.address, None, _user(tokens)) == b"user:user-1|-"
    project = channel_credentials(pki.issue("project"))
    reply = await _call(billing.mtls_address, project, _user(tokens))
    assert reply.startswith(b"user:user-1|")


async def test_health_stays_plaintext_on_grpc_port(billing: MeshServer) -> None:
    """Probes need no certificate: GRPC_PORT is unchanged by MTLS_PORT."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(billing.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_from_settings_calls_the_peers_mtls_port_with_the_services_certificate(
    billing: MeshServer, pki: Pki, tokens: TokenMint
) -> None:
    """TLS_*_FILE in standalone mode: the client manager speaks mTLS with its own certificate."""
    settings = pki.settings(
        ProjectSettings, pki.issue("project"), peers={"billing": (billing.mtls_address,)}
    )
    manager = GrpcClientManager.from_settings(
        settings, service_token=tokens.service_token("project")
    )
    async with manager:
        who = manager.service("billing").unary(WHO, identity, identity, idempotent=True)
        assert (await who(b"")).startswith(b"service:project|")


async def test_istio_mode_keeps_plaintext_even_with_certificate_files(pki: Pki) -> None:
    settings = pki.settings(ProjectSettings, pki.issue("project"), mesh_mode="istio")
    manager = GrpcClientManager.from_settings(settings)
    assert manager.pool.reloading is None
    await manager.close()


async def test_the_seed_security_section_reaches_the_mtls_port(
    billing: MeshServer, pki: Pki, tokens: TokenMint
) -> None:
    """create_service_mesh({... security: {tls, mtls, ca_file, cert_file, key_file}})."""
    project = pki.issue("project")
    mesh = create_service_mesh(
        {
            "services": {"billing": billing.mtls_address},
            "discovery": {"enabled": False},
            "security": {
                "tls": True,
                "mtls": True,
                "ca_file": str(project.ca_file),
                "cert_file": str(project.cert_file),
                "key_file": str(project.key_file),
                "service_token": tokens.service_token("project"),
            },
        },
        environ={},
    )
    async with mesh:
        who = mesh.manager.service("billing").unary(WHO, identity, identity, idempotent=True)
        assert (await who(b"")).startswith(b"service:project|")


def test_certificate_files_give_tls_files(pki: Pki) -> None:
    files = pki.issue("project")
    settings = pki.settings(ProjectSettings, files)
    assert TlsFiles.from_settings(settings) == files
    assert TlsFiles.from_settings(ProjectSettings()) is None

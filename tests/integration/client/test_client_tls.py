"""The mesh's security section against a real TLS server that demands client certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from meshcore.mesh import create_service_mesh

from tests.replicas import ECHO, SERVICE, identity


def _issue(
    subject: str, issuer_key: ec.EllipticCurvePrivateKey | None, issuer: x509.Name | None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
    certificate = builder.sign(issuer_key or key, hashes.SHA256())
    return key, certificate


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An echo server on TLS requiring client certificates; yields (address, cert folder)."""
    ca_key, ca = _issue("test-ca", None, None)
    server_key, server_cert = _issue("echo-server", ca_key, ca.subject)
    client_key, client_cert = _issue("echo-client", ca_key, ca.subject)
    (tmp_path / "ca.pem").write_bytes(_pem_cert(ca))
    (tmp_path / "client.pem").write_bytes(_pem_cert(client_cert))
    (tmp_path / "client-key.pem").write_bytes(_pem_key(client_key))

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"tls:" + request

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        echo, request_deserializer=identity, response_serializer=identity
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler})]
    )
    credentials = grpc.ssl_server_credentials(
        [(_pem_key(server_key), _pem_cert(server_cert))],
        root_certificates=_pem_cert(ca),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"127.0.0.1:{port}", tmp_path
    finally:
        await server.stop(None)


async def test_mtls_with_certificate_files_reaches_the_server(
    tls_server: tuple[str, Path],
) -> None:
    """security.mtls with ca_file, cert_file and key_file makes a verified mutual-TLS call."""
    address, certs = tls_server
    mesh = create_service_mesh(
        {
            "services": {"echo": address},
            "discovery": {"enabled": False},
            "security": {
                "tls": True,
                "mtls": True,
                "caFile": str(certs / "ca.pem"),
                "certFile": str(certs / "client.pem"),
                "keyFile": str(certs / "client-key.pem"),
            },
        },
        environ={},
        interceptors=(),
    )
    async with mesh:
        echo = mesh.manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
        assert await echo(b"hi") == b"tls:hi"


async def test_tls_without_a_client_certificate_is_refused(
    tls_server: tuple[str, Path],
) -> None:
    """Server-authenticated TLS alone cannot call a server that demands client certificates."""
    address, certs = tls_server
    mesh = create_service_mesh(
        {
            "services": {"echo": {"endpoints": [address], "maxRetries": 0}},
            "discovery": {"enabled": False},
            "security": {"tls": True, "ca_file": str(certs / "ca.pem")},
        },
        environ={},
        interceptors=(),
    )
    async with mesh:
        echo = mesh.manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await echo(b"hi", timeout_ms=3_000)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE

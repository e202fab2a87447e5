"""A meshcore server with a mutual-TLS port, its certificates issued by meshcore.pki into a
temporary folder, and ES256 tokens signed with a key made for the test."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import grpc
from cryptography import x509
from meshcore.context import current_principal
from meshcore.interceptors import AuthOptions, build_server_chain
from meshcore.pki import CertificateAuthority, CertificateRequest, ensure_ca, issue
from meshcore.server import MeshServer, ServiceRegistration
from meshcore.settings import ServiceSettings
from meshcore.testing import TokenMint
from meshcore.tls import TlsFiles
from prometheus_client import CollectorRegistry

SERVICE = "meshtest.Who"
WHO = f"/{SERVICE}/Who"
_KID = "tls-test"


def identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True, kw_only=True)
class BillingSettings(ServiceSettings):
    service_name: ClassVar[str] = "billing"


@dataclass(frozen=True, kw_only=True)
class ProjectSettings(ServiceSettings):
    service_name: ClassVar[str] = "project"


class Pki:
    """A CA in ``root/ca`` and service folders ``root/<service>`` issued from it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca: CertificateAuthority = ensure_ca(root / "ca")[0]

    def issue(self, service: str, **request: Any) -> TlsFiles:
        folder = self.root / service
        issue(self.ca, folder, CertificateRequest(service, **request))
        return self.files(service)

    def serial(self, service: str) -> int:
        """Serial of ``service``'s certificate on disk now."""
        return serial_of((self.root / service / "tls.crt").read_bytes())

    def files(self, service: str) -> TlsFiles:
        folder = self.root / service
        return TlsFiles(folder / "tls.crt", folder / "tls.key", folder / "ca.crt")

    def settings(self, cls: type[ServiceSettings], files: TlsFiles, **values: Any) -> Any:
        return cls(
            tls_cert_file=files.cert_file,
            tls_key_file=files.key_file,
            tls_ca_file=files.ca_file,
            **values,
        )


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


async def _who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    """``<kind>:<subject>|<client certificate serial or ->``."""
    principal = current_principal()
    who = f"{principal.kind}:{principal.subject}" if principal else "-"
    pem = context.auth_context().get("x509_pem_cert")
    return f"{who}|{serial_of(pem[0]) if pem else '-'}".encode()


def _add_who(servicer: object, server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        _who, request_deserializer=identity, response_serializer=identity
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Who": handler})]
    )


async def start_server(settings: ServiceSettings, tokens: TokenMint) -> MeshServer:
    chain = build_server_chain(
        settings,
        auth=AuthOptions(key_source=tokens.keys, jwt_secret=None),
        rate_limit=None,
        metrics_registry=CollectorRegistry(),
        tracer_provider=None,
    )
    server = MeshServer(
        settings,
        [ServiceRegistration(object(), _add_who, SERVICE)],
        interceptors=chain,
        metrics_registry=CollectorRegistry(),
    )
    await server.start()
    return server


def channel_credentials(files: TlsFiles, *, client_cert: bool = True) -> grpc.ChannelCredentials:
    assert files.ca_file
    assert files.cert_file
    assert files.key_file
    return grpc.ssl_channel_credentials(
        files.ca_file.read_bytes(),
        files.key_file.read_bytes() if client_cert else None,
        files.cert_file.read_bytes() if client_cert else None,
    )


def server_certificate_serial(address: str, files: TlsFiles) -> int:
    """Open a new TLS connection (HTTP/2 ALPN, with ``files``' client certificate) and return
    the serial of the certificate the server presents on it."""
    assert files.ca_file
    assert files.cert_file
    assert files.key_file
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(files.ca_file))
    context.load_cert_chain(str(files.cert_file), str(files.key_file))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number

"""Helpers for the Kubernetes discovery integration tests: slice builders, kubeconfigs, certificates
(the replicas: tests/replicas.py)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.replicas import Replica

TOKEN = "integration-sa-token"
NAMESPACE = "zoptal"


def ready_endpoint(replica: Replica, *, ready: bool = True) -> dict[str, Any]:
    return {
        "addresses": ["127.0.0.1"],
        "conditions": {"ready": ready, "serving": ready, "terminating": False},
        "nodeName": f"node-{replica.name}",
        "zone": "local-a",
        "targetRef": {"kind": "Pod", "name": f"auth-{replica.name}", "namespace": NAMESPACE},
    }


def endpoint_slice(
    name: str, endpoints: list[dict[str, Any]], *, port: int, service: str = "auth-service"
) -> dict[str, Any]:
    """An EndpointSlice as the controller writes it; all replicas share 127.0.0.1, so each
    slice carries one replica and its own grpc port (slices group endpoints by port set)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"name": "grpc", "port": port, "protocol": "TCP", "appProtocol": "grpc"},
            {"name": "metrics", "port": 9400, "protocol": "TCP"},
        ],
    }


async def eventually(predicate: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Wait (real time: these are real sockets) until ``predicate`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {within}s")
        await asyncio.sleep(0.01)


def kubeconfig_for(server: str, *, token: str = TOKEN, **cluster: Any) -> dict[str, Any]:
    return {
        "current-context": "test",
        "contexts": [
            {"name": "test", "context": {"cluster": "c", "user": "u", "namespace": NAMESPACE}}
        ],
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": {"token": token}}],
    }


def server_certificate(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for 127.0.0.1 (written to ``tmp_path``): the server's TLS
    context, and the PEM a client trusts as the cluster CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "apiserver.crt").write_bytes(cert_pem)
    (tmp_path / "apiserver.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "apiserver.crt", tmp_path / "apiserver.key")
    return context, cert_pem.decode()

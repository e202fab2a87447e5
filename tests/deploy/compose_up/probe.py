"""Runs INSIDE a container of the compose stack (piped to the image's ``python -``), to show that
calls between services are mutual TLS and bound to the caller's identity.

It is started as the Project service's image, with Project's own identity at
/var/lib/zoptal/identity and Analytics' identity mounted read-only at /other-identity (as only an
operator could), and prints one JSON object: for each attempt, "ok" or the gRPC status code.

  no_client_cert     Billing's mTLS port, TLS with the install's CA but no client certificate
  tls_no_cert        the same with the ssl module, sending HTTP/2's preface: what comes back
  tls_own_cert       the same with Project's certificate (the server's HTTP/2 SETTINGS come back)
  own_cert_and_token Billing's mTLS port, Project's certificate + Project's service token
  other_cert         Billing's mTLS port, Analytics' certificate + Project's service token
  plaintext_token    Billing's plaintext port, Project's service token (contract B: refused)
  cert_no_token      Billing's mTLS port, Project's certificate and no token at all
  billing_serial     serial of the certificate Billing's mTLS port presents (hex)
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
from pathlib import Path

import grpc
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2, billing_pb2_grpc

OWN = Path("/var/lib/zoptal/identity")
OTHER = Path("/other-identity")
BILLING_MTLS = "billing:5003"
BILLING_PLAIN = "billing:4003"
AUTH_MTLS = "auth:5000"
TIMEOUT = 10.0


def credentials(identity: Path | None) -> grpc.ChannelCredentials:
    ca = (OWN / "tls" / "ca.crt").read_bytes()
    if identity is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(identity / "tls" / "tls.key").read_bytes(),
        certificate_chain=(identity / "tls" / "tls.crt").read_bytes(),
    )


def attempt(call) -> str:
    try:
        call()
    except grpc.RpcError as error:
        return error.code().name
    return "ok"


def project_token() -> str:
    credential = json.loads((OWN / "credentials.json").read_text())
    with grpc.secure_channel(AUTH_MTLS, credentials(OWN)) as channel:
        reply = auth_pb2_grpc.AuthServiceStub(channel).IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(
                client_id=credential["client_id"], client_secret=credential["client_secret"]
            ),
            timeout=TIMEOUT,
        )
    return reply.access_token


def check_limits(channel: grpc.Channel, token: str | None, user_id: str) -> None:
    metadata = (("x-service-token", token),) if token else ()
    billing_pb2_grpc.BillingServiceStub(channel).CheckSubscriptionLimits(
        billing_pb2.CheckSubscriptionLimitsRequest(
            user_id=user_id, metric=billing_pb2.METRIC_PROJECTS, quantity=1
        ),
        metadata=metadata,
        timeout=TIMEOUT,
    )


def tls_answer(identity: Path | None) -> str:
    """What a TLS client gets from Billing's mTLS port after sending HTTP/2's preface."""
    context = ssl.create_default_context(cafile=str(OWN / "tls" / "ca.crt"))
    context.set_alpn_protocols(["h2"])
    if identity is not None:
        context.load_cert_chain(
            str(identity / "tls" / "tls.crt"), str(identity / "tls" / "tls.key")
        )
    try:
        with (
            socket.create_connection(("billing", 5003), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="billing") as tls,
        ):
            # TLS 1.3: the server checks the (absent) client certificate after the client's
            # Finished, so its refusal arrives on the first read.
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            data = tls.recv(1024)
            return f"connected, read {len(data)} bytes"
    except (ssl.SSLError, OSError) as error:
        return f"{type(error).__name__}: {error}"


def billing_serial() -> str:
    context = ssl.create_default_context(cafile=str(OWN / "tls" / "ca.crt"))
    context.load_cert_chain(str(OWN / "tls" / "tls.crt"), str(OWN / "tls" / "tls.key"))
    with (
        socket.create_connection(("billing", 5003), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="billing") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509  # the image has it: meshcore.pki uses it

    assert der is not None
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def main() -> None:
    user_id = sys.argv[1] if len(sys.argv) > 1 else "u_probe"
    token = project_token()
    results: dict[str, str] = {}
    with grpc.secure_channel(BILLING_MTLS, credentials(None)) as channel:
        results["no_client_cert"] = attempt(lambda: check_limits(channel, token, user_id))
    results["tls_no_cert"] = tls_answer(None)
    results["tls_own_cert"] = tls_answer(OWN)
    with grpc.secure_channel(BILLING_MTLS, credentials(OWN)) as channel:
        results["own_cert_and_token"] = attempt(lambda: check_limits(channel, token, user_id))
        results["cert_no_token"] = attempt(lambda: check_limits(channel, None, user_id))
    with grpc.secure_channel(BILLING_MTLS, credentials(OTHER)) as channel:
        results["other_cert"] = attempt(lambda: check_limits(channel, token, user_id))
    with grpc.insecure_channel(BILLING_PLAIN) as channel:
        results["plaintext_token"] = attempt(lambda: check_limits(channel, token, user_id))
    results["billing_serial"] = billing_serial()
    print(json.dumps(results))


if __name__ == "__main__":
    main()

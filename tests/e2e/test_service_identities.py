"""``make run`` gives each platform service its own identity: a credential file in the data folder
that Auth exchanges for a short-lived ES256 token carrying exactly that service's grants."""

from __future__ import annotations

import stat
from collections.abc import Iterator

import grpc
import jwt
import pytest
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.clients.service_identity import ServiceCredential
from zoptal_auth.platform_services import PLATFORM_SERVICES
from zoptal_auth.service_identity import credentials_path

from tests.e2e.journey import CALL_TIMEOUT
from tests.e2e.platform import EmbeddedPlatform


@pytest.fixture
def auth(embedded_platform: EmbeddedPlatform) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    with grpc.insecure_channel(embedded_platform.auth) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


@pytest.mark.parametrize("service", sorted(PLATFORM_SERVICES))
def test_each_service_has_its_own_credential_and_gets_exactly_its_grants(
    embedded_platform: EmbeddedPlatform, auth: auth_pb2_grpc.AuthServiceStub, service: str
) -> None:
    path = credentials_path(embedded_platform.identities_dir, service)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credential = ServiceCredential.load(path)
    assert credential.service == service
    issued = auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            client_id=credential.client_id, client_secret=credential.client_secret
        ),
        timeout=CALL_TIMEOUT,
    )
    assert issued.service_name == service
    assert sorted(issued.permissions) == sorted(PLATFORM_SERVICES[service])
    header = jwt.get_unverified_header(issued.access_token)
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert header["alg"] == "ES256"
    assert claims["typ"] == "service"
    assert claims["serviceName"] == service
    assert claims["iss"]
    assert claims["aud"]
    assert claims["sid"]
    assert claims["exp"] - claims["iat"] <= 300
    # Every platform service polls Auth's revocation list with that token.
    auth.ListRevocations(
        auth_pb2.ListRevocationsRequest(),
        metadata=(("x-service-token", issued.access_token),),
        timeout=CALL_TIMEOUT,
    )


def test_credentials_differ_between_services(embedded_platform: EmbeddedPlatform) -> None:
    """No secret is shared: each service's client id and secret are its own."""
    loaded = [
        ServiceCredential.load(credentials_path(embedded_platform.identities_dir, service))
        for service in PLATFORM_SERVICES
    ]
    assert len({c.client_id for c in loaded}) == len(loaded)
    assert len({c.client_secret for c in loaded}) == len(loaded)

"""Service accounts, client credentials and the published keys, checked from outside."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import grpc
import pytest
from meshcore.jwks import RemoteJwks
from meshcore.jwt import StaticKeys, TokenVerifier
from zoptal.auth.v1 import auth_pb2


def _fetch(url: str) -> tuple[dict, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a test URL
        return json.loads(response.read()), dict(response.headers)


async def test_http_jwks_matches_get_jwks_and_verifies_a_login_token(auth):
    """/.well-known/jwks.json equals GetJwks, and its key verifies a freshly issued token."""
    document, headers = await asyncio.to_thread(_fetch, auth.jwks_url)
    assert headers["Content-Type"] == "application/json"
    reply = await auth.stub.GetJwks(auth_pb2.GetJwksRequest())
    assert json.loads(reply.jwks_json) == document
    assert [key.kid for key in reply.keys] == [key["kid"] for key in document["keys"]]
    assert all("d" not in key for key in document["keys"])

    login = await auth.register_and_login()
    verifier = TokenVerifier(
        RemoteJwks(auth.jwks_url),
        issuer=auth.app.settings.jwt_issuer,
        audience=auth.app.settings.jwt_audience,
        algorithms=["ES256"],
    )
    verified = await verifier.verify(login.access_token, expected_type="user")
    assert verified.subject == login.user.id
    assert verified.key_id == document["keys"][0]["kid"]


async def test_service_account_credentials_give_a_verifiable_service_token(auth):
    """Admin creates an account; its credentials buy a service token that meshcore.jwt accepts."""
    created = await auth.stub.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(
            name="project-service",
            description="calls billing",
            permissions=["user:read", "billing:read"],
        ),
        metadata=auth.bearer(auth.admin_token),
    )
    account = created.service_account
    assert created.client_secret
    assert list(account.permissions) == ["billing:read", "user:read"]

    issued = await auth.stub.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            client_id=account.client_id, client_secret=created.client_secret
        )
    )
    assert (issued.service_id, issued.service_name) == (account.id, "project-service")
    published = await auth.stub.GetJwks(auth_pb2.GetJwksRequest())
    keys = StaticKeys(json.loads(published.jwks_json)["keys"])
    verifier = TokenVerifier(
        keys,
        issuer=auth.app.settings.jwt_issuer,
        audience=auth.app.settings.jwt_audience,
        algorithms=["ES256"],
    )
    verified = await verifier.verify(issued.access_token, expected_type="service")
    assert verified.claims["serviceId"] == account.id
    assert verified.claims["serviceName"] == "project-service"
    assert verified.claims["typ"] == "service"
    assert verified.permissions == {"billing:read", "user:read"}

    # The service token is a credential for the Auth service itself (x-service-token).
    user = await auth.register_and_login()
    profile = await auth.stub.GetUser(
        auth_pb2.GetUserRequest(user_id=user.user.id),
        metadata=(("x-service-token", issued.access_token),),
    )
    assert profile.user.email == "alice@example.com"
    verdict = await auth.stub.ValidateToken(  # a service may validate its own token
        auth_pb2.ValidateTokenRequest(token=issued.access_token),
        metadata=(("x-service-token", issued.access_token),),
    )
    assert verdict.valid
    assert verdict.token_type == auth_pb2.TOKEN_TYPE_SERVICE
    assert verdict.service_name == "project-service"


async def test_wrong_client_secret_and_unknown_client_are_unauthenticated(auth):
    """IssueServiceToken refuses wrong secrets and unknown clients alike."""
    created = await auth.stub.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(name="analytics-service"),
        metadata=auth.bearer(auth.admin_token),
    )
    for client_id, secret in (
        (created.service_account.client_id, "wrong-secret"),
        ("sa_unknown", created.client_secret),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await auth.stub.IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(client_id=client_id, client_secret=secret)
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_service_token_cannot_ask_for_permissions_it_was_not_granted(auth):
    """Narrowing works; asking for more than the account holds is PERMISSION_DENIED."""
    created = await auth.stub.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(name="billing-service", permissions=["user:read"]),
        metadata=auth.bearer(auth.admin_token),
    )
    credentials = {
        "client_id": created.service_account.client_id,
        "client_secret": created.client_secret,
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.stub.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(**credentials, permissions=["user:read", "admin:x"])
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    duplicate = auth.stub.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(name="billing-service"),
        metadata=auth.bearer(auth.admin_token),
    )
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await duplicate
    assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS

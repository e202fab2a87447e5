"""ValidateToken needs a caller: one holding user:validate, or the token's own principal."""

from __future__ import annotations

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2


async def _status(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _service_token(auth, name: str, permissions: list[str]) -> str:
    created = await auth.stub.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(name=name, permissions=permissions),
        metadata=auth.bearer(auth.admin_token),
    )
    issued = await auth.stub.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            client_id=created.service_account.client_id, client_secret=created.client_secret
        )
    )
    return issued.access_token


async def test_anonymous_callers_are_unauthenticated(auth):
    alice = await auth.register_and_login()
    request = auth_pb2.ValidateTokenRequest(token=alice.access_token)
    assert await _status(auth.stub.ValidateToken(request)) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_user_validates_their_own_token_and_nobody_elses(auth):
    """Own token: the verdict. Another user's valid token: PERMISSION_DENIED, so nothing about
    that user (email, roles, whether it was revoked) comes back. An invalid token names nobody:
    its verdict is anyone's."""
    alice = await auth.register_and_login()
    bob = await auth.register_and_login("bob@example.com")
    own = await auth.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=alice.access_token),
        metadata=auth.bearer(alice.access_token),
    )
    assert (own.valid, own.email) == (True, "alice@example.com")
    other = auth.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=bob.access_token),
        metadata=auth.bearer(alice.access_token),
    )
    assert await _status(other) == grpc.StatusCode.PERMISSION_DENIED
    await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=bob.access_token), metadata=auth.bearer(bob.access_token)
    )
    revoked = auth.stub.ValidateToken(  # revoked or not, bob's token is none of alice's business
        auth_pb2.ValidateTokenRequest(token=bob.access_token),
        metadata=auth.bearer(alice.access_token),
    )
    assert await _status(revoked) == grpc.StatusCode.PERMISSION_DENIED
    garbage = await auth.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(token="not.a.token"),
        metadata=auth.bearer(alice.access_token),
    )
    assert not garbage.valid
    assert garbage.reason == auth_pb2.INVALID_TOKEN_REASON_MALFORMED
    assert not garbage.email


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [(["user:validate"], grpc.StatusCode.OK), ([], grpc.StatusCode.PERMISSION_DENIED)],
)
async def test_a_service_needs_user_validate(auth, permissions, expected):
    """A service token with user:validate validates any token; one without, only its own."""
    alice = await auth.register_and_login()
    token = await _service_token(auth, "gateway-service", permissions)
    call = auth.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=alice.access_token),
        metadata=(("x-service-token", token),),
    )
    assert await _status(call) == expected
    own = await auth.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=token), metadata=(("x-service-token", token),)
    )
    assert own.valid
    assert own.token_type == auth_pb2.TOKEN_TYPE_SERVICE


async def test_an_admin_validates_any_token(auth):
    alice = await auth.register_and_login()
    verdict = await auth.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=alice.access_token),
        metadata=auth.bearer(auth.admin_token),
    )
    assert (verdict.valid, verdict.email) == (True, "alice@example.com")


async def test_a_service_sees_a_revocation_after_the_same_token_validated_before(auth):
    """The reply to a valid token is built once and reused; a revocation still ends it, and
    each token keeps its own reply."""
    alice = await auth.register_and_login()
    bob = await auth.register_and_login("bob@example.com")
    caller = auth.bearer(auth.admin_token)  # the admin holds user:validate

    async def validate(token: str) -> auth_pb2.ValidateTokenResponse:
        request = auth_pb2.ValidateTokenRequest(token=token)
        return await auth.stub.ValidateToken(request, metadata=caller)

    first, again = await validate(alice.access_token), await validate(alice.access_token)
    assert first == again
    assert (first.valid, first.email, first.user_id) == (True, "alice@example.com", alice.user.id)
    assert (await validate(bob.access_token)).email == "bob@example.com"
    await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=alice.access_token),
        metadata=auth.bearer(alice.access_token),
    )
    revoked = await validate(alice.access_token)
    assert (revoked.valid, revoked.reason) == (False, auth_pb2.INVALID_TOKEN_REASON_REVOKED)
    assert not revoked.email
    assert (await validate(bob.access_token)).valid

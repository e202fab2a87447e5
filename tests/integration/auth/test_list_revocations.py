"""ListRevocations: what other services poll so that a revoked access token stops working."""

from __future__ import annotations

import grpc
import jwt
import pytest
from meshcore.clock import SYSTEM_CLOCK
from zoptal.auth.v1 import auth_pb2
from zoptal_auth.tokens import TokenIssuer

from tests.integration.auth.conftest import AuthUnderTest


def _service(auth: AuthUnderTest, permissions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """A service token as IssueServiceToken signs it, with exactly ``permissions``."""
    settings = auth.app.settings
    issuer = TokenIssuer(
        auth.app.keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=settings.access_token_ttl_seconds,
        service_ttl=settings.service_token_ttl_seconds,
        clock=SYSTEM_CLOCK,
    )
    signed = issuer.service_token(
        service_id="sa-project",
        service_name="project",
        permissions=permissions,
        credential_id="credential-1",
    )
    return (("x-service-token", signed.token),)


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_revocations_are_listed_then_only_new_ones_follow_the_cursor(
    auth: AuthUnderTest,
) -> None:
    """A revoked access token (jti) and a logged-out session (sid) are listed; the cursor moves."""
    reader = _service(auth, ("revocation:read",))
    first = await auth.stub.ListRevocations(auth_pb2.ListRevocationsRequest(), metadata=reader)
    assert first.next_cursor
    assert not first.has_more

    alice = await auth.register_and_login()
    bob = await auth.register_and_login("bob@example.com")
    await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=alice.access_token),
        metadata=auth.bearer(alice.access_token),
    )
    await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=bob.refresh_token), metadata=auth.bearer(bob.access_token)
    )
    listed = await auth.stub.ListRevocations(
        auth_pb2.ListRevocationsRequest(cursor=first.next_cursor), metadata=reader
    )
    token_ids = {entry.token_id for entry in listed.revocations if entry.token_id}
    session_ids = {entry.session_id for entry in listed.revocations if entry.session_id}
    assert _claims(alice.access_token)["jti"] in token_ids
    assert _claims(bob.access_token)["sid"] in session_ids
    bob_session = next(e for e in listed.revocations if e.session_id)
    # A session entry lasts one access-token lifetime (plus leeway), not the family's 30 days.
    lifetime = auth.app.settings.access_token_ttl_seconds + auth.app.settings.jwt_leeway_seconds
    assert bob_session.expires_at.seconds <= _claims(bob.access_token)["exp"] + lifetime


async def test_listing_needs_a_service_token_with_revocation_read(auth: AuthUnderTest) -> None:
    """A user (even an admin) or a service without the permission is PERMISSION_DENIED."""
    for metadata in (auth.bearer(auth.admin_token), _service(auth, ("user:read",))):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await auth.stub.ListRevocations(auth_pb2.ListRevocationsRequest(), metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth.stub.ListRevocations(auth_pb2.ListRevocationsRequest())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "cursor",
    [
        "DROP TABLE",
        "99999999999999999999999.0.0",  # digits, but past year 9999
        "0.99999999999999999999.0",  # a row id past 64 bits
        "0.0.253402300800000",
    ],
)
async def test_a_foreign_cursor_is_invalid_argument(auth: AuthUnderTest, cursor: str) -> None:
    """A cursor this service did not issue is INVALID_ARGUMENT naming the field, never INTERNAL."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth.stub.ListRevocations(
            auth_pb2.ListRevocationsRequest(cursor=cursor),
            metadata=_service(auth, ("revocation:read",)),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cursor" in (raised.value.details() or "")


async def test_auth_itself_refuses_a_revoked_token(auth: AuthUnderTest) -> None:
    """After RevokeToken, Auth's own interceptor chain refuses the token on GetUser."""
    alice = await auth.register_and_login()
    request = auth_pb2.GetUserRequest(user_id=alice.user.id)
    await auth.stub.GetUser(request, metadata=auth.bearer(alice.access_token))
    await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=alice.access_token),
        metadata=auth.bearer(alice.access_token),
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth.stub.GetUser(request, metadata=auth.bearer(alice.access_token))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == "token has been revoked"


async def test_pages_follow_has_more_and_a_later_scan_repeats_only_the_overlap(
    auth: AuthUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one row per page, three revocations take three pages; none is skipped."""
    monkeypatch.setattr("zoptal_auth.revocation_listing.PAGE_SIZE", 1)
    reader = _service(auth, ("revocation:read",))
    revoked = set()
    for name in ("a", "b", "c"):
        login = await auth.register_and_login(f"{name}@example.com")
        await auth.stub.RevokeToken(
            auth_pb2.RevokeTokenRequest(token=login.access_token),
            metadata=auth.bearer(login.access_token),
        )
        revoked.add(_claims(login.access_token)["jti"])
    seen, cursor, pages = set(), "", 0
    while True:
        page = await auth.stub.ListRevocations(
            auth_pb2.ListRevocationsRequest(cursor=cursor), metadata=reader
        )
        pages += 1
        seen |= {entry.token_id for entry in page.revocations}
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert seen == revoked
    assert pages >= 3


async def test_an_admin_can_create_a_service_account_that_lists_revocations(
    auth: AuthUnderTest,
) -> None:
    """revocation:read is in the catalogue: client credentials can carry it (ES256 token)."""
    created = await auth.stub.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(
            name="revocation-reader", permissions=["revocation:read"]
        ),
        metadata=auth.bearer(auth.admin_token),
    )
    issued = await auth.stub.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            client_id=created.service_account.client_id, client_secret=created.client_secret
        )
    )
    reply = await auth.stub.ListRevocations(
        auth_pb2.ListRevocationsRequest(),
        metadata=(("x-service-token", issued.access_token),),
    )
    assert reply.next_cursor

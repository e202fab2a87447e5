"""Users and sessions in the domain: registration, login, rotation, reuse, revocation."""

from __future__ import annotations

from dataclasses import replace

import pytest
from argon2 import Parameters as argon2_parameters, extract_parameters
from meshcore.context import Principal
from meshcore.errors import AlreadyExists, InvalidArgument, PermissionDenied, Unauthenticated
from sqlalchemy import func, select
from zoptal_auth.app import build_app
from zoptal_auth.models import RefreshFamily, Revocation, User

from tests.unit.auth.conftest import VALIDATOR

PASSWORD = "violet tractor harbour"


def _as_user(user_id: str, *roles: str) -> Principal:
    return Principal(subject=user_id, kind="user", roles=frozenset(roles))


async def test_registration_gives_the_user_role_and_its_permissions(app):
    """A new user has exactly the seeded `user` role and its permissions."""
    user = await app.auth.register_user("Alice@Example.com", PASSWORD, "Alice")
    assert user.email == "alice@example.com"
    assert user.roles == ("user",)
    assert {"project:create", "project:read", "billing:read"} <= set(user.permissions)
    assert "user:read" not in user.permissions


async def test_duplicate_email_is_already_exists_whatever_its_case(app):
    """Registering the same email again, in any case, is ALREADY_EXISTS."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    with pytest.raises(AlreadyExists):
        await app.auth.register_user("ALICE@example.COM", PASSWORD)


async def test_wrong_password_and_unknown_user_get_the_same_answer(app):
    """Both are Unauthenticated with the very same message."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    with pytest.raises(Unauthenticated) as wrong:
        await app.auth.login("alice@example.com", PASSWORD + "!")
    with pytest.raises(Unauthenticated) as unknown:
        await app.auth.login("nobody@example.com", PASSWORD)
    assert wrong.value.message == unknown.value.message


async def test_an_unknown_email_costs_the_same_password_verification(app, monkeypatch):
    """Unknown and registered emails each run exactly one Argon2id verification, against hashes
    with the very same parameters (time, memory, lanes), so how long a login takes says
    nothing about whether the email is registered."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    hasher = app.auth._hasher
    verified: list[argon2_parameters] = []
    real_verify = hasher._verify_sync  # what runs on the hashing pool's worker thread

    def recording(stored_hash: str, password: str) -> bool:
        verified.append(extract_parameters(stored_hash))
        return real_verify(stored_hash, password)

    monkeypatch.setattr(hasher, "_verify_sync", recording)
    for email in ("nobody@example.com", "alice@example.com"):
        with pytest.raises(Unauthenticated):
            await app.auth.login(email, PASSWORD + "!")
    assert len(verified) == 2
    assert verified[0] == verified[1]  # the dummy hash costs what alice's costs


async def test_empty_login_fields_are_invalid_argument(app):
    """Login with an empty email or password names the field."""
    with pytest.raises(InvalidArgument) as caught:
        await app.auth.login("", PASSWORD)
    assert caught.value.field == "email"
    with pytest.raises(InvalidArgument) as caught:
        await app.auth.login("alice@example.com", "")
    assert caught.value.field == "password"


async def test_login_rehashes_a_password_hashed_with_old_parameters(app, settings, clock):
    """After the Argon2 cost goes up, the next login stores a hash with the new cost."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    stronger = await build_app(replace(settings, argon2_time_cost=2), clock=clock)
    try:
        await stronger.auth.login("alice@example.com", PASSWORD)
        async with stronger.database.session() as session:
            stored = await session.scalar(select(User.password_hash))
        assert "t=2" in stored
        await stronger.auth.login("alice@example.com", PASSWORD)  # the new hash verifies
    finally:
        await stronger.database.dispose()


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(app):
    """Each refresh spends its token; replaying a spent one kills every token of the login."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    first = await app.auth.login("alice@example.com", PASSWORD)
    second = await app.auth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert (await app.auth.validate(second.access_token, VALIDATOR)).valid

    with pytest.raises(Unauthenticated, match="already used"):
        await app.auth.refresh(first.refresh_token)

    with pytest.raises(Unauthenticated):
        await app.auth.refresh(second.refresh_token)  # the live one died with its family
    assert (await app.auth.validate(second.access_token, VALIDATOR)).reason == "revoked"
    assert (await app.auth.validate(first.access_token, VALIDATOR)).reason == "revoked"


async def test_other_logins_survive_a_family_revocation(app):
    """Revoking one login's family leaves the user's other sessions alone."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    phone = await app.auth.login("alice@example.com", PASSWORD)
    laptop = await app.auth.login("alice@example.com", PASSWORD)
    await app.auth.refresh(phone.refresh_token)
    with pytest.raises(Unauthenticated):
        await app.auth.refresh(phone.refresh_token)
    assert (await app.auth.validate(laptop.access_token, VALIDATOR)).valid
    assert (await app.auth.refresh(laptop.refresh_token)).access_token


async def test_refresh_token_expires_with_its_family(app, clock):
    """Rotation never extends a login: past the family's lifetime, refresh fails."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    tokens = await app.auth.login("alice@example.com", PASSWORD)
    clock.advance(app.settings.refresh_token_ttl_seconds - 10)
    tokens = await app.auth.refresh(tokens.refresh_token)
    clock.advance(11)
    with pytest.raises(Unauthenticated, match="expired"):
        await app.auth.refresh(tokens.refresh_token)


async def test_revoking_an_access_token_invalidates_it_until_it_expires(app):
    """RevokeToken on an access token: True once, then False; the token validates as revoked."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    tokens = await app.auth.login("alice@example.com", PASSWORD)
    owner = _as_user(tokens.user.id)
    assert await app.auth.revoke(tokens.access_token, owner) is True
    assert await app.auth.revoke(tokens.access_token, owner) is False
    assert (await app.auth.validate(tokens.access_token, VALIDATOR)).reason == "revoked"


async def test_revoking_a_refresh_token_revokes_its_family(app):
    """RevokeToken on a refresh token ends the login: refresh fails, its access tokens die."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    tokens = await app.auth.login("alice@example.com", PASSWORD)
    assert await app.auth.revoke(tokens.refresh_token, _as_user(tokens.user.id)) is True
    with pytest.raises(Unauthenticated):
        await app.auth.refresh(tokens.refresh_token)
    assert (await app.auth.validate(tokens.access_token, VALIDATOR)).reason == "revoked"


async def test_only_the_owner_or_an_admin_may_revoke(app):
    """Someone else's token cannot be revoked by a plain user; an admin may."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    tokens = await app.auth.login("alice@example.com", PASSWORD)
    with pytest.raises(PermissionDenied):
        await app.auth.revoke(tokens.access_token, _as_user("mallory"))
    with pytest.raises(Unauthenticated):
        await app.auth.revoke(tokens.access_token, None)
    assert await app.auth.revoke(tokens.access_token, _as_user("root", "admin"))


async def test_unknown_or_invalid_tokens_revoke_as_false(app):
    """RFC 7009: revoking something that is not a live token succeeds with revoked=false."""
    caller = _as_user("u1")
    assert await app.auth.revoke("rt_unknown", caller) is False
    assert await app.auth.revoke("not.a.jwt", caller) is False


async def test_revocations_made_elsewhere_arrive_within_the_sync_interval(app, settings, clock):
    """A second replica learns a revocation from the database after one sync interval."""
    await app.auth.register_user("alice@example.com", PASSWORD)
    tokens = await app.auth.login("alice@example.com", PASSWORD)
    other = await build_app(settings, clock=clock)
    try:
        assert (await other.auth.validate(tokens.access_token, VALIDATOR)).valid
        await app.auth.revoke(tokens.access_token, _as_user(tokens.user.id))
        clock.advance(settings.revocation_sync_seconds)
        await other.auth.validate(tokens.access_token, VALIDATOR)  # due: starts a background poll
        await other.revocations.close()  # let that poll finish
        assert (await other.auth.validate(tokens.access_token, VALIDATOR)).reason == "revoked"
    finally:
        await other.revocations.close()
        await other.database.dispose()


async def test_get_user_is_for_the_user_an_admin_or_a_reading_service(app):
    """GetUser: self, admin or a service with user:read; anyone else is denied."""
    user = await app.auth.register_user("alice@example.com", PASSWORD)
    assert (await app.auth.get_user(user.id, _as_user(user.id))).email == "alice@example.com"
    assert await app.auth.get_user(user.id, _as_user("root", "admin"))
    reader = Principal(subject="svc", kind="service", permissions=frozenset({"user:read"}))
    assert await app.auth.get_user(user.id, reader)
    with pytest.raises(PermissionDenied):
        await app.auth.get_user(user.id, _as_user("mallory"))
    with pytest.raises(PermissionDenied):
        await app.auth.get_user(user.id, Principal(subject="svc", kind="service"))


async def test_expired_revocations_and_families_are_purged(app, clock):
    """Once their tokens are dead, revocation rows and refresh families are deleted."""

    await app.auth.register_user("alice@example.com", PASSWORD)
    tokens = await app.auth.login("alice@example.com", PASSWORD)
    await app.auth.revoke(tokens.access_token, _as_user(tokens.user.id))
    clock.advance(app.settings.refresh_token_ttl_seconds + 3600)
    await app.revocations.sync()
    async with app.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Revocation)) == 0
        assert await session.scalar(select(func.count()).select_from(RefreshFamily)) == 0

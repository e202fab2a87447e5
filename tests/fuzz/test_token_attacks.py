"""Token attacks against every protected RPC of every service.

Each hostile token is a genuine one with exactly one thing wrong (signed by the real Auth key
unless the signature is the attack), claiming the admin role so that nothing but the defect under
test could make the server refuse it. Every protected RPC must answer UNAUTHENTICATED, before
the handler runs (the request is empty, so a handler would answer INVALID_ARGUMENT instead).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from zoptal.analytics.v1 import analytics_pb2
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.notification.v1 import notification_pb2
from zoptal_auth.app import PUBLIC_METHODS as AUTH_PUBLIC_METHODS

from tests.fuzz.calls import Metadata, bearer, call, describe, service_header
from tests.fuzz.catalogue import PROTECTED_RPCS, PUBLIC_METHODS, Rpc
from tests.fuzz.conftest import Identity, Mesh
from tests.fuzz.tokens import (
    forged_es256,
    hand_signed_hs256,
    hs256_service_token,
    public_key_pem,
    service_claims,
    unsigned,
    user_claims,
)

HOUR = 3600
PROPAGATION_SECONDS = 10.0


def _real_user_token(mesh: Mesh, **overrides: Any) -> str:
    """Signed by Auth's real key, as the admin, with ``overrides`` applied to the claims."""
    return mesh.signing_key.sign(user_claims(mesh.admin.user_id, **overrides))


def _tampered(mesh: Mesh) -> str:
    """Bob's genuine token with its payload swapped for one granting admin; signature kept."""
    header, _, signature = mesh.bob.access_token.split(".")
    forged_payload = unsigned(user_claims(mesh.bob.user_id)).split(".")[1]
    return f"{header}.{forged_payload}.{signature}"


def _now() -> int:
    return int(time.time())


# name -> metadata that must not authenticate anyone
ATTACKS: dict[str, Callable[[Mesh], Metadata]] = {
    "no credentials": lambda mesh: (),
    "bearer garbage": lambda mesh: bearer("not-a-jwt"),
    "bearer empty": lambda mesh: (("authorization", "Bearer "),),
    "wrong scheme": lambda mesh: (("authorization", f"Basic {mesh.admin.access_token}"),),
    "oversized token": lambda mesh: bearer("a." * 3_400 + "a"),
    "forged signature (attacker key, real kid)": lambda mesh: bearer(
        forged_es256(user_claims(mesh.admin.user_id), mesh.signing_key.kid)
    ),
    "tampered payload": lambda mesh: bearer(_tampered(mesh)),
    "expired": lambda mesh: bearer(
        _real_user_token(mesh, iat=_now() - 2 * HOUR, nbf=_now() - 2 * HOUR, exp=_now() - HOUR)
    ),
    "not yet valid": lambda mesh: bearer(_real_user_token(mesh, nbf=_now() + HOUR)),
    "wrong audience": lambda mesh: bearer(_real_user_token(mesh, aud="some-other-api")),
    "wrong issuer": lambda mesh: bearer(_real_user_token(mesh, iss="https://evil.example")),
    "no exp": lambda mesh: bearer(
        mesh.signing_key.sign(
            {k: v for k, v in user_claims(mesh.admin.user_id).items() if k != "exp"}
        )
    ),
    "alg none": lambda mesh: bearer(
        unsigned(user_claims(mesh.admin.user_id), kid=mesh.signing_key.kid)
    ),
    "HS256 keyed with the public key": lambda mesh: bearer(
        hand_signed_hs256(
            user_claims(mesh.admin.user_id), public_key_pem(mesh.signing_key), mesh.signing_key.kid
        )
    ),
    "service token as bearer": lambda mesh: bearer(mesh.service_token("project")),
    "user token as service token": lambda mesh: service_header(mesh.admin.access_token),
    "refresh token as bearer": lambda mesh: bearer(mesh.admin.refresh_token),
    "service token HS256 with a guessed secret": lambda mesh: service_header(
        hs256_service_token("guessed-secret-" + "x" * 32)
    ),
    "service token alg none": lambda mesh: service_header(unsigned(service_claims())),
    "expired service token": lambda mesh: service_header(
        mesh.signing_key.sign(
            service_claims(iat=_now() - 2 * HOUR, nbf=_now() - 2 * HOUR, exp=_now() - HOUR)
        )
    ),
    "service token for another audience": lambda mesh: service_header(
        mesh.signing_key.sign(service_claims(aud="some-other-api"))
    ),
    "service token from another issuer": lambda mesh: service_header(
        mesh.signing_key.sign(service_claims(iss="https://evil.example"))
    ),
    "service token signed by an attacker ES256 key": lambda mesh: service_header(
        forged_es256(service_claims(), mesh.signing_key.kid)
    ),
    "service token garbage": lambda mesh: service_header("garbage"),
}


def _refused(mesh: Mesh, metadata: Metadata, rpcs: tuple[Rpc, ...]) -> list[str]:
    """The RPCs that did not answer UNAUTHENTICATED, described."""
    wrong = []
    for rpc in rpcs:
        request: Any = [] if rpc.client_streaming else rpc.request_class()
        outcome = call(mesh.channel(rpc), rpc, request, metadata)
        if outcome.code != grpc.StatusCode.UNAUTHENTICATED:
            wrong.append(describe(rpc, request, outcome))
    return wrong


def test_public_methods_are_exactly_the_pinned_ones() -> None:
    """Auth lets in without credentials exactly the methods pinned in the catalogue.

    Every other RPC is attacked below, so a method made public must be a deliberate edit here.
    """
    assert frozenset(AUTH_PUBLIC_METHODS) == PUBLIC_METHODS


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_token_is_unauthenticated_on_every_protected_rpc(mesh: Mesh, attack: str) -> None:
    """The hostile token gets UNAUTHENTICATED from every protected RPC of every service."""
    wrong = _refused(mesh, ATTACKS[attack](mesh), PROTECTED_RPCS)
    assert not wrong, "\n".join(wrong)


def test_genuine_admin_token_passes_authentication_on_every_protected_rpc(mesh: Mesh) -> None:
    """Control: the admin's real token is accepted, so the refusals above are the attack's."""
    for rpc in PROTECTED_RPCS:
        request: Any = [] if rpc.client_streaming else rpc.request_class()
        outcome = call(mesh.channel(rpc), rpc, request, mesh.admin.metadata)
        assert outcome.code != grpc.StatusCode.UNAUTHENTICATED, describe(rpc, request, outcome)


def test_genuine_token_re_signed_by_hand_passes_authentication(mesh: Mesh) -> None:
    """The control for the claim attacks: the real key with untouched claims is accepted."""
    metadata = bearer(_real_user_token(mesh))
    rpc = next(r for r in PROTECTED_RPCS if r.method.name == "GetSubscriptionPlans")
    outcome = call(mesh.channel(rpc), rpc, rpc.request_class(), metadata)
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, None, outcome)


@pytest.fixture(scope="module")
def revoked(mesh: Mesh) -> Identity:
    """Carol logs in and revokes her own access token through Auth."""
    email, password = "carol@example.com", "violet tractor harbour"
    mesh.ok(
        "auth", "RegisterUser", auth_pb2.RegisterUserRequest(email=email, password=password), ()
    )
    login: Any = mesh.ok("auth", "Login", auth_pb2.LoginRequest(email=email, password=password), ())
    carol = Identity(login.user.id, login.access_token, login.refresh_token)
    reply: Any = mesh.ok(
        "auth", "RevokeToken", auth_pb2.RevokeTokenRequest(token=carol.access_token), carol.metadata
    )
    assert reply.revoked
    validated: Any = mesh.ok(  # as the admin: a revoked token cannot vouch for itself
        "auth",
        "ValidateToken",
        auth_pb2.ValidateTokenRequest(token=carol.access_token),
        mesh.admin.metadata,
    )
    assert not validated.valid
    assert validated.reason == auth_pb2.INVALID_TOKEN_REASON_REVOKED
    _await_revocation_everywhere(mesh, carol.metadata)
    return carol


def _await_revocation_everywhere(mesh: Mesh, metadata: Metadata) -> None:
    """Services poll Auth's ListRevocations every REVOCATION_SYNC_SECONDS (1 s): allow a few."""
    for service in ("auth", "project", "billing", "notification", "analytics"):
        probe = next(rpc for rpc in PROTECTED_RPCS if rpc.service == service)
        deadline = time.monotonic() + PROPAGATION_SECONDS
        while _refused(mesh, metadata, (probe,)) and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.mark.parametrize("service", ["auth", "project", "billing", "notification", "analytics"])
def test_revoked_token_is_unauthenticated_on_every_protected_rpc(
    mesh: Mesh, revoked: Identity, service: str
) -> None:
    """A token Auth says is revoked is refused by every protected RPC of the service."""
    rpcs = tuple(rpc for rpc in PROTECTED_RPCS if rpc.service == service)
    wrong = _refused(mesh, revoked.metadata, rpcs)
    assert not wrong, "\n".join(wrong)


def test_a_refused_token_does_not_leak_the_token_or_a_trace(mesh: Mesh) -> None:
    """The UNAUTHENTICATED message names the reason, never echoes the token or a stack trace."""
    token = jwt.encode(user_claims("x", aud="nope"), "k" * 32, algorithm="HS256")
    rpc = next(r for r in PROTECTED_RPCS if r.method.name == "GetSubscriptionPlans")
    outcome = call(mesh.channel(rpc), rpc, rpc.request_class(), bearer(token))
    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED
    assert token not in outcome.details
    assert token.split(".")[1] not in outcome.details
    assert "Traceback" not in outcome.details


@pytest.fixture(scope="module")
def issued_service_token(mesh: Mesh) -> str:
    """An ES256 service token from Auth's own client-credentials flow (holding user:read)."""
    created: Any = mesh.ok(
        "auth",
        "CreateServiceAccount",
        auth_pb2.CreateServiceAccountRequest(name="fuzz-reporting", permissions=["user:read"]),
        mesh.admin.metadata,
    )
    issued: Any = mesh.ok(
        "auth",
        "IssueServiceToken",
        auth_pb2.IssueServiceTokenRequest(
            client_id=created.service_account.client_id, client_secret=created.client_secret
        ),
        (),
    )
    return str(issued.access_token)


def test_auth_issued_service_token_as_bearer_is_unauthenticated_everywhere(
    mesh: Mesh, issued_service_token: str
) -> None:
    """Auth's own ES256 service token, sent where a user token goes, proves no user."""
    wrong = _refused(mesh, bearer(issued_service_token), PROTECTED_RPCS)
    assert not wrong, "\n".join(wrong)


def test_auth_issued_service_token_is_accepted_as_a_service_token(
    mesh: Mesh, issued_service_token: str
) -> None:
    """Control: in x-service-token the same token reads a user (it holds user:read)."""
    rpc = next(r for r in PROTECTED_RPCS if r.method.name == "GetUser")
    request = auth_pb2.GetUserRequest(user_id=mesh.alice.user_id)
    outcome = call(mesh.channel(rpc), rpc, request, service_header(issued_service_token))
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, request, outcome)


# RPCs only services (or admins) may call, each with a request about the caller themself, so
# that only the kind of token, not whose data it is, can explain a refusal.
SERVICE_ONLY: dict[str, Callable[[str], Any]] = {
    "billing.RecordUsage": lambda me: billing_pb2.RecordUsageRequest(
        user_id=me, metric=billing_pb2.METRIC_API_CALLS, quantity=1, idempotency_key="self-1"
    ),
    "notification.SendEmail": lambda me: notification_pb2.SendEmailRequest(
        to="bob@example.com", user_id=me, subject="hi", body_text="x", idempotency_key="self-1"
    ),
    "notification.SendSMS": lambda me: notification_pb2.SendSMSRequest(
        to="+15555550100", user_id=me, body="x", idempotency_key="self-2"
    ),
    "notification.SendPushNotification": lambda me: notification_pb2.SendPushNotificationRequest(
        user_id=me, device_token="device", title="t", body="x", idempotency_key="self-3"
    ),
    "analytics.TrackEvents": lambda me: analytics_pb2.TrackEventsRequest(
        events=[analytics_pb2.Event(user_id=me, name="self_event")]
    ),
    "analytics.IngestEvents": lambda me: [
        analytics_pb2.IngestEventsRequest(events=[analytics_pb2.Event(user_id=me, name="self")])
    ],
    "analytics.GetRealTimeAnalytics": lambda me: analytics_pb2.GetRealTimeAnalyticsRequest(
        window_minutes=5
    ),
    "auth.CreateServiceAccount": lambda me: auth_pb2.CreateServiceAccountRequest(
        name="bobs-bot", permissions=["user:read"]
    ),
}


@pytest.mark.parametrize("case", sorted(SERVICE_ONLY))
def test_ordinary_user_token_on_a_service_only_rpc_is_permission_denied(
    mesh: Mesh, case: str
) -> None:
    """A user token (Bob's, about Bob) on an RPC reserved to services gets PERMISSION_DENIED."""
    rpc = next(r for r in PROTECTED_RPCS if str(r) == case)
    request = SERVICE_ONLY[case](mesh.bob.user_id)
    outcome = call(mesh.channel(rpc), rpc, request, mesh.bob.metadata)
    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, describe(rpc, request, outcome)


@pytest.mark.parametrize("case", sorted(SERVICE_ONLY))
def test_service_token_with_the_permission_may_call_the_service_only_rpc(
    mesh: Mesh, case: str
) -> None:
    """Control: a service token holding every permission is not refused by the same RPCs."""
    rpc = next(r for r in PROTECTED_RPCS if str(r) == case)
    request = SERVICE_ONLY[case](mesh.bob.user_id)
    outcome = call(mesh.channel(rpc), rpc, request, mesh.service_metadata)
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, request, outcome)

"""Cross-user access: Bob (and service tokens granting nothing relevant) aims at Dave's things.

Every RPC that takes a user, project, notification or token id is called with Dave's ids. The
answer must be PERMISSION_DENIED or NOT_FOUND, and Dave's data must be exactly as before. The
admin reading the same ids gets OK, which proves the requests themselves are well formed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor
from zoptal.auth.v1 import auth_pb2 as auth
from zoptal.notification.v1 import notification_pb2 as notification
from zoptal.project.v1 import project_pb2 as P

from tests.fuzz.calls import Metadata, call, describe, service_header
from tests.fuzz.catalogue import ALL_RPCS, Rpc
from tests.fuzz.conftest import ClientCredentials, Mesh
from tests.fuzz.targets import CASES, Victim
from tests.mesh import PASSWORD

REFUSALS = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND})
ID_FIELDS = frozenset({"user_id", "owner_id", "project_id", "notification_id"})


# Reads the admin may do: the control that shows each request is well formed.
ADMIN_READS = (
    "auth.GetUser",
    "auth.GetUserPermissions",
    "project.GetProject",
    "project.ListUserProjects",
    "project.CheckProjectAccess",
    "project.ListProjectMembers",
    "billing.GetUserSubscription",
    "billing.CheckSubscriptionLimits",
    "notification.GetNotificationHistory",
    "notification.GetNotification",
    "analytics.GetAnalytics",
)
RPCS = {str(rpc): rpc for rpc in ALL_RPCS}


def _takes_an_id(descriptor: Descriptor, depth: int = 0) -> bool:
    for field in descriptor.fields:
        if field.name in ID_FIELDS:
            return True
        if field.message_type is not None and depth < 2 and _takes_an_id(field.message_type, 1):
            return True
    return False


@pytest.fixture(scope="module")
def victim(mesh: Mesh) -> Victim:
    """Dave: registered, logged in twice, owns a project and has one notification."""
    email = "dave@example.com"
    mesh.ok("auth", "RegisterUser", auth.RegisterUserRequest(email=email, password=PASSWORD), ())
    first: Any = mesh.ok("auth", "Login", auth.LoginRequest(email=email, password=PASSWORD), ())
    spare: Any = mesh.ok("auth", "Login", auth.LoginRequest(email=email, password=PASSWORD), ())
    dave = (("authorization", f"Bearer {first.access_token}"),)
    created: Any = mesh.ok(
        "project", "CreateProject", P.CreateProjectRequest(name="dave's plans"), dave
    )
    sent: Any = mesh.ok(
        "notification",
        "SendEmail",
        notification.SendEmailRequest(
            to=email,
            user_id=first.user.id,
            subject="for dave",
            body_text="private",
            idempotency_key="dave-setup",
        ),
        mesh.as_service("billing"),  # Billing is who sends the platform's emails
    )
    return Victim(first.user.id, spare.access_token, created.project.id, sent.notification_id)


_NO_GRANTS: dict[int, ClientCredentials] = {}


def _no_grants(mesh: Mesh) -> Metadata:
    """A service account the admin created with no permissions at all (one per mesh)."""
    if id(mesh) not in _NO_GRANTS:
        name = f"fuzz-no-grants-{uuid.uuid4().hex[:8]}"
        _NO_GRANTS[id(mesh)] = mesh.create_service_account(name, ())
    return service_header(mesh.issue(_NO_GRANTS[id(mesh)]))


ATTACKERS: dict[str, Callable[[Mesh], Metadata]] = {
    "bob": lambda mesh: mesh.bob.metadata,
    "service without permissions": _no_grants,
    # A real platform service whose grants are about none of these RPCs (revocation:read only).
    "analytics service": lambda mesh: mesh.as_service("analytics"),
}


@pytest.mark.parametrize("attacker", sorted(ATTACKERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_cross_user_call_is_refused(mesh: Mesh, victim: Victim, case: str, attacker: str) -> None:
    """Another caller aiming at Dave's id gets PERMISSION_DENIED or NOT_FOUND."""
    rpc = RPCS[case]
    request = CASES[case](victim)
    outcome = call(mesh.channel(rpc), rpc, request, ATTACKERS[attacker](mesh))
    assert outcome.code in REFUSALS, describe(rpc, request, outcome)


@pytest.mark.parametrize("case", ADMIN_READS)
def test_admin_reading_the_same_ids_succeeds(mesh: Mesh, victim: Victim, case: str) -> None:
    """Control: the same request from the admin is OK, so the refusals are about the caller."""
    rpc = RPCS[case]
    request = CASES[case](victim)
    outcome = call(mesh.channel(rpc), rpc, request, mesh.admin.metadata)
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, request, outcome)


def test_every_rpc_that_takes_an_id_has_a_cross_user_case() -> None:
    """A new RPC taking a user, project or notification id must be added to CASES."""
    taking = {str(rpc) for rpc in ALL_RPCS if _takes_an_id(rpc.method.input_type)}
    assert taking - set(CASES) == set()
    assert set(CASES) <= set(RPCS)


def _call(mesh: Mesh, case: str, request: Any, metadata: Metadata) -> Any:
    rpc: Rpc = RPCS[case]
    outcome = call(mesh.channel(rpc), rpc, request, metadata)
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, request, outcome)
    return outcome.response


def test_victims_data_is_unchanged_after_every_cross_user_attempt(
    mesh: Mesh, victim: Victim
) -> None:
    """After all the attempts Dave's project, members, plan, usage, mail and token are intact."""
    admin = mesh.admin.metadata
    usage_before = _call(
        mesh, "billing.GetUserSubscription", CASES["billing.GetUserSubscription"](victim), admin
    )
    for case, build in CASES.items():
        for attacker in ATTACKERS.values():
            rpc = RPCS[case]
            call(mesh.channel(rpc), rpc, build(victim), attacker(mesh))

    got = _call(mesh, "project.GetProject", CASES["project.GetProject"](victim), admin)
    assert (got.project.name, got.project.owner_id) == ("dave's plans", victim.user_id)
    members = _call(
        mesh, "project.ListProjectMembers", CASES["project.ListProjectMembers"](victim), admin
    )
    assert [(m.user_id, m.role) for m in members.members] == [
        (victim.user_id, P.PROJECT_ROLE_OWNER)
    ]
    owned = _call(
        mesh, "project.ListUserProjects", CASES["project.ListUserProjects"](victim), admin
    )
    assert [p.project.id for p in owned.projects] == [victim.project_id]
    usage_after = _call(
        mesh, "billing.GetUserSubscription", CASES["billing.GetUserSubscription"](victim), admin
    )
    assert usage_after.subscription.plan.id == usage_before.subscription.plan.id
    assert list(usage_after.usage) == list(usage_before.usage)
    history = _call(
        mesh,
        "notification.GetNotificationHistory",
        CASES["notification.GetNotificationHistory"](victim),
        admin,
    )
    assert [n.id for n in history.notifications] == [victim.notification_id]
    validated = _call(
        mesh, "auth.ValidateToken", auth.ValidateTokenRequest(token=victim.spare_token), admin
    )
    assert validated.valid

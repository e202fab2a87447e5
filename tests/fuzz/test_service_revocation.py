"""Revoking one platform service's identity with the operator's command cuts off that service,
and only it; rotating gives it a new identity.

On a platform of its own (the session's shared one is never left with a revoked service): a
token is issued for Analytics' real credential, then ``python -m zoptal_auth service-identity
revoke analytics`` runs with Auth's environment for that platform (its ``DATA_DIR`` and
``DATABASE_URL``). Within a bounded wait, well inside the token's lifetime, Analytics can no
longer get a token and its old one is refused by every service that checks revocations, while
Project still gets tokens and a user's CreateProject (Project -> Billing -> Analytics) succeeds.
``service-identity rotate`` then writes a new credential file that works.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.notification.v1 import notification_pb2
from zoptal.project.v1 import project_pb2
from zoptal_auth.service_identity import credentials_path

from tests.fuzz.calls import Metadata, Outcome, call, describe, service_header
from tests.fuzz.catalogue import ALL_RPCS, Rpc
from tests.fuzz.conftest import ClientCredentials, Mesh, running_mesh
from tests.mesh import BackgroundLoop

WITHIN_SECONDS = 30.0
"""Revocations reach every verifier within REVOCATION_SYNC_SECONDS (1 s here); tokens live 300 s."""
RPCS = {str(rpc): rpc for rpc in ALL_RPCS}
# One RPC per service that verifies tokens against its revocation list, each one Analytics' token
# passes authentication on while it is valid (what it answers then does not matter here).
PROBES: dict[str, Any] = {
    "auth.ListRevocations": auth_pb2.ListRevocationsRequest(),
    "project.ListUserProjects": project_pb2.ListUserProjectsRequest(user_id="someone"),
    "billing.GetSubscriptionPlans": billing_pb2.GetSubscriptionPlansRequest(),
    "notification.GetNotification": notification_pb2.GetNotificationRequest(
        notification_id="nothing"
    ),
}


@pytest.fixture(scope="module")
def own_mesh(
    background_loop: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    with running_mesh(background_loop, tmp_path_factory.mktemp("revocation-platform")) as mesh:
        yield mesh


def _identity_command(mesh: Mesh, *arguments: str) -> str:
    """``python -m zoptal_auth service-identity ...`` with Auth's environment for ``mesh``."""
    env = {**os.environ, **mesh.running.auth_environment}
    finished = subprocess.run(
        [sys.executable, "-m", "zoptal_auth", "service-identity", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout


def _issue(mesh: Mesh, credentials: ClientCredentials) -> Outcome:
    """IssueServiceToken, uncached."""
    rpc = RPCS["auth.IssueServiceToken"]
    request = auth_pb2.IssueServiceTokenRequest(
        client_id=credentials.client_id, client_secret=credentials.client_secret
    )
    return call(mesh.channel(rpc), rpc, request)


def _probe(mesh: Mesh, case: str, metadata: Metadata) -> Outcome:
    rpc: Rpc = RPCS[case]
    return call(mesh.channel(rpc), rpc, PROBES[case], metadata)


def _wait_for(what: str, check: Any) -> None:
    deadline = time.monotonic() + WITHIN_SECONDS
    last = check()
    while last is not True:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WITHIN_SECONDS:g}s; last: {last}")
        time.sleep(0.2)
        last = check()


def test_revoking_a_service_cuts_off_it_alone_and_rotating_restores_it(own_mesh: Mesh) -> None:
    mesh = own_mesh
    analytics = mesh.credentials_of("analytics")
    issued = _issue(mesh, analytics)
    assert issued.code == grpc.StatusCode.OK, issued
    old = service_header(issued.response.access_token)
    old_file = credentials_path(mesh.running.identities_dir, "analytics").read_bytes()
    for case in PROBES:  # the control: before the revocation the token authenticates everywhere
        outcome = _probe(mesh, case, old)
        assert outcome.code != grpc.StatusCode.UNAUTHENTICATED, describe(
            RPCS[case], PROBES[case], outcome
        )

    printed = _identity_command(mesh, "revoke", "analytics")
    assert "analytics: revoked 1 credential(s)" in printed, printed

    refused = _issue(mesh, analytics)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED, refused
    for case in PROBES:

        def old_token_refused(case: str = case) -> bool | str:
            outcome = _probe(mesh, case, old)
            return outcome.code == grpc.StatusCode.UNAUTHENTICATED or describe(
                RPCS[case], PROBES[case], outcome
            )

        _wait_for(f"analytics' revoked token refused by {case}", old_token_refused)

    # Everyone else carries on: Project's credential issues, and a user's CreateProject crosses
    # Project -> Billing -> Analytics with Project's own token.
    project = _issue(mesh, mesh.credentials_of("project"))
    assert project.code == grpc.StatusCode.OK, project
    created = call(
        mesh.channel(RPCS["project.CreateProject"]),
        RPCS["project.CreateProject"],
        project_pb2.CreateProjectRequest(name="after the revocation", request_id="revocation-1"),
        mesh.alice.metadata,
    )
    assert created.code == grpc.StatusCode.OK, created

    printed = _identity_command(
        mesh,
        "rotate",
        "--credentials-dir",
        str(mesh.running.identities_dir),
        "analytics",
        "--grace-seconds",
        "0",
    )
    assert "analytics: rotated" in printed, printed
    assert credentials_path(mesh.running.identities_dir, "analytics").read_bytes() != old_file
    rotated = mesh.credentials_of("analytics")
    assert rotated.client_id == analytics.client_id
    assert rotated.client_secret != analytics.client_secret
    # At once: the command committed before it exited, and every transaction of Auth's starts
    # from the latest commit. (A wait here hid Auth's SQLite connections losing their file locks,
    # and with them the rotation's commit: meshcore.private_files.private_file.)
    renewed = _issue(mesh, rotated)
    assert renewed.code == grpc.StatusCode.OK, renewed
    new = service_header(renewed.response.access_token)

    def new_token_accepted() -> bool | str:
        outcome = _probe(mesh, "auth.ListRevocations", new)
        return outcome.code == grpc.StatusCode.OK or str(outcome)

    _wait_for("the rotated credential's token accepted by ListRevocations", new_token_accepted)
    assert _issue(mesh, analytics).code == grpc.StatusCode.UNAUTHENTICATED  # the old stays dead
    assert _probe(mesh, "auth.ListRevocations", old).code == grpc.StatusCode.UNAUTHENTICATED

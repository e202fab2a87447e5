"""Revoking through Auth reaches Project and Billing: they poll ListRevocations (about 1 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.project.v1 import project_pb2 as pb

from tests.mesh import PASSWORD, InProcessMesh

pytestmark = pytest.mark.postgres

# REVOCATION_SYNC_SECONDS is 1 s: a revocation must arrive well within this bound.
PROPAGATION_BOUND_SECONDS = 5.0

Metadata = Sequence[tuple[str, str]]


async def _login(mesh: InProcessMesh, email: str) -> auth_pb2.LoginResponse:
    await mesh.auth.RegisterUser(auth_pb2.RegisterUserRequest(email=email, password=PASSWORD))
    return await mesh.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))


async def _refused_within(call: Callable[[], Awaitable[object]]) -> float:
    """Seconds until ``call`` answers UNAUTHENTICATED 'token has been revoked' (bounded)."""
    started = time.monotonic()
    while True:
        failure: grpc.aio.AioRpcError | None = None
        try:
            await call()
        except grpc.aio.AioRpcError as error:
            failure = error
        if failure is not None:
            assert failure.code() == grpc.StatusCode.UNAUTHENTICATED, failure.details()
            assert failure.details() == "token has been revoked"
            return time.monotonic() - started
        assert time.monotonic() - started < PROPAGATION_BOUND_SECONDS, "revocation never arrived"
        await asyncio.sleep(0.05)


async def test_a_revoked_access_token_is_refused_by_project_and_billing(
    mesh: InProcessMesh,
) -> None:
    """Accepted (and cached) by Project, revoked through Auth, then refused within the bound."""
    login = await _login(mesh, "revoked@example.com")
    bearer = (("authorization", f"Bearer {login.access_token}"),)
    list_projects = pb.ListUserProjectsRequest()
    plans = billing_pb2.GetSubscriptionPlansRequest()
    await mesh.project.ListUserProjects(list_projects, metadata=bearer)
    await mesh.billing.GetSubscriptionPlans(plans, metadata=bearer)

    reply = await mesh.auth.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=login.access_token), metadata=bearer
    )
    assert reply.revoked
    await _refused_within(lambda: mesh.project.ListUserProjects(list_projects, metadata=bearer))
    await _refused_within(lambda: mesh.billing.GetSubscriptionPlans(plans, metadata=bearer))

    other = await _login(mesh, "still-fine@example.com")
    fine = (("authorization", f"Bearer {other.access_token}"),)
    await mesh.project.ListUserProjects(list_projects, metadata=fine)


async def test_logging_out_kills_the_sessions_access_tokens_on_project(mesh: InProcessMesh) -> None:
    """Revoking the refresh token (logout) revokes its family, so Project refuses the sid too."""
    login = await _login(mesh, "logout@example.com")
    bearer = (("authorization", f"Bearer {login.access_token}"),)
    request = pb.ListUserProjectsRequest()
    await mesh.project.ListUserProjects(request, metadata=bearer)
    await mesh.auth.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=login.refresh_token), metadata=bearer
    )
    await _refused_within(lambda: mesh.project.ListUserProjects(request, metadata=bearer))

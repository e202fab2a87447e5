"""Creates and member adds whose client gives up mid-call: the server finishes them, a retry
gets their result, and Billing's counts equal what really exists. Over real gRPC, Auth's real
tokens, Billing and Project on PostgreSQL (issue 17: timed-out creates used to hold names, block
retries with ABORTED for minutes and be counted by Billing)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

import grpc
import pytest
from zoptal.billing.v1 import billing_pb2
from zoptal.project.v1 import project_pb2 as pb

from tests.mesh import InProcessMesh

pytestmark = pytest.mark.postgres

# What a client whose deadline is tiny may be told; never ABORTED ("still in progress"),
# never INTERNAL or UNKNOWN.
ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
PRO_PROJECTS = 50
ATTEMPTS = 200
MEMBERS = 30
IN_FLIGHT = 4


async def on_pro(mesh: InProcessMesh, user_id: str) -> None:
    _, admin = await mesh.admin("root@example.com")
    await mesh.billing.ChangeSubscription(
        billing_pb2.ChangeSubscriptionRequest(user_id=user_id, plan_id="pro", complimentary=True),
        metadata=admin,
    )


async def outcome(call: object) -> tuple[grpc.StatusCode, object]:
    try:
        return grpc.StatusCode.OK, await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details()


async def until_answered(
    attempt: Callable[[], Awaitable[tuple[grpc.StatusCode, object]]],
) -> tuple[grpc.StatusCode, object]:
    """A client's retry loop: UNAVAILABLE (Billing slow on a busy machine) is retried."""
    for _ in range(5):
        code, reply = await attempt()
        if code != grpc.StatusCode.UNAVAILABLE:
            break
        await asyncio.sleep(0.2)
    return code, reply


async def billing_used(
    mesh: InProcessMesh,
    bearer: Sequence[tuple[str, str]],
    user_id: str,
    metric: int,
    scope: str = "",
) -> int:
    reply = await mesh.billing.CheckSubscriptionLimits(
        billing_pb2.CheckSubscriptionLimitsRequest(
            user_id=user_id,
            metric=metric,
            quantity=1,
            scope_id=scope,  # type: ignore[arg-type]
        ),
        metadata=bearer,
    )
    return int(reply.current_usage)


async def settled(mesh: InProcessMesh) -> None:
    """Everything the server still finishes is finished, and the usage outbox is delivered."""
    await mesh.project_app.completions.drain()
    for _ in range(200):
        if await mesh.project_app.outbox.deliver_due() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the usage outbox never drained")


async def test_creates_with_tiny_deadlines_end_counted_once_and_retries_get_them(
    mesh: InProcessMesh,
) -> None:
    ada, bearer = await mesh.user("ada@example.com")
    await on_pro(mesh, ada)
    rng = random.Random(17)

    async def create(index: int, deadline: float) -> tuple[grpc.StatusCode, object]:
        request = pb.CreateProjectRequest(name=f"p-{index}", request_id=f"req-{index}")
        return await outcome(mesh.project.CreateProject(request, metadata=bearer, timeout=deadline))

    # Deadlines that end anywhere inside a create: spread around how long one takes here.
    started = asyncio.get_running_loop().time()
    calibration = await create(-1, 30.0)
    assert calibration[0] == grpc.StatusCode.OK
    typical = asyncio.get_running_loop().time() - started
    firsts = []
    for batch in range(0, ATTEMPTS, IN_FLIGHT):
        firsts += await asyncio.gather(
            *(
                create(i, rng.uniform(0.1, 1.5) * typical)
                for i in range(batch, min(batch + IN_FLIGHT, ATTEMPTS))
            )
        )
    assert {code for code, _ in firsts} <= ACCEPTABLE, firsts
    # The retry, at once (the first attempt may still be running) and with time to spare.
    retries = await asyncio.gather(
        *(until_answered(lambda i=i: create(i, 30.0)) for i in range(ATTEMPTS))
    )
    assert {code for code, _ in retries} <= ACCEPTABLE - {grpc.StatusCode.DEADLINE_EXCEEDED}, [
        (code, details) for code, details in retries if code != grpc.StatusCode.OK
    ][:5]
    for (first_code, first), (retry_code, retry) in zip(firsts, retries, strict=True):
        if first_code == grpc.StatusCode.OK:
            assert retry_code == grpc.StatusCode.OK
            assert retry.project.id == first.project.id  # type: ignore[attr-defined]

    await settled(mesh)
    listed = await mesh.project.ListUserProjects(
        pb.ListUserProjectsRequest(limit=100), metadata=bearer
    )
    created = {
        reply.project.id for code, reply in [calibration, *retries] if code == grpc.StatusCode.OK
    }
    assert {item.project.id for item in listed.projects} == created
    assert listed.total_count == len(created) == PRO_PROJECTS  # the plan's limit, all real
    assert await billing_used(mesh, bearer, ada, billing_pb2.METRIC_PROJECTS) == PRO_PROJECTS
    # Names of refused or abandoned attempts are free again.
    refused = next(i for i, (code, _) in enumerate(retries) if code != grpc.StatusCode.OK)
    await mesh.project.DeleteProject(
        pb.DeleteProjectRequest(project_id=listed.projects[0].project.id), metadata=bearer
    )
    await settled(mesh)  # the deleted project's slot is given back to Billing
    code, _ = await create(refused, 30.0)
    assert code == grpc.StatusCode.OK


async def test_member_adds_with_tiny_deadlines_end_counted_once(mesh: InProcessMesh) -> None:
    ada, bearer = await mesh.user("ada@example.com")
    await on_pro(mesh, ada)
    project = (
        await mesh.project.CreateProject(pb.CreateProjectRequest(name="crew"), metadata=bearer)
    ).project
    users = [(await mesh.user(f"member-{i}@example.com"))[0] for i in range(MEMBERS)]
    rng = random.Random(23)

    async def add(user_id: str, deadline: float) -> tuple[grpc.StatusCode, object]:
        request = pb.AddProjectMemberRequest(
            project_id=project.id, user_id=user_id, role=pb.PROJECT_ROLE_VIEWER
        )
        return await outcome(
            mesh.project.AddProjectMember(request, metadata=bearer, timeout=deadline)
        )

    started = asyncio.get_running_loop().time()
    code, _ = await add(users[0], 30.0)
    assert code == grpc.StatusCode.OK
    typical = asyncio.get_running_loop().time() - started
    firsts = []
    for batch in range(1, MEMBERS, IN_FLIGHT):
        members = users[batch : batch + IN_FLIGHT]
        firsts += await asyncio.gather(
            *(add(user, rng.uniform(0.1, 1.5) * typical) for user in members)
        )
    assert {code for code, _ in firsts} <= ACCEPTABLE, firsts
    retries = await asyncio.gather(*(until_answered(lambda u=u: add(u, 30.0)) for u in users))
    assert {code for code, _ in retries} == {grpc.StatusCode.OK}, retries

    await settled(mesh)
    members = await mesh.project.ListProjectMembers(
        pb.ListProjectMembersRequest(project_id=project.id, limit=100), metadata=bearer
    )
    assert members.total_count == MEMBERS + 1  # and the owner
    seats = await billing_used(
        mesh, bearer, ada, billing_pb2.METRIC_MEMBERS_PER_PROJECT, scope=project.id
    )
    assert seats == MEMBERS + 1
    fetched = await mesh.project.GetProject(
        pb.GetProjectRequest(project_id=project.id), metadata=bearer
    )
    assert fetched.project.member_count == MEMBERS + 1

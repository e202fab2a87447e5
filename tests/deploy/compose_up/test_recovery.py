"""The stack as an operator lives with it: a service restarted, one that crashes, a worker killed
while work is queued for it, and the whole stack taken down and brought up again."""

from __future__ import annotations

import os
import signal
import time
import uuid

from zoptal.auth.v1 import auth_pb2
from zoptal.project.v1 import project_pb2

from tests.deploy.compose_up.stack import (
    Stack,
    answers,
    log_in,
    projects_used,
)
from tests.e2e.journey import (
    CALL_TIMEOUT,
    Stubs,
    User,
    assert_only_the_usage_emails,
    create_project,
    free_project_limit,
    poll,
    register_and_login,
    usage_emails_arrived,
)
from tests.requirements import requirement_missing

WORKER = "notification-worker"


def _token_is_valid(stubs: Stubs, user: User) -> bool:
    reply = stubs.auth.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=user.access_token),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    )
    return bool(reply.valid)


def _project_ids(stubs: Stubs, user: User) -> set[str]:
    reply = stubs.project.ListUserProjects(
        project_pb2.ListUserProjectsRequest(limit=100), metadata=user.metadata, timeout=CALL_TIMEOUT
    )
    return {item.project.id for item in reply.projects}


def _events_of(stack: Stack, user: User) -> int:
    uuid.UUID(user.user_id)  # an id from Auth, safe to quote in SQL
    sql = f"SELECT count(*) FROM events WHERE user_id = '{user.user_id}'"  # noqa: S608
    return int(stack.psql("analytics", sql))


def test_a_restarted_auth_still_accepts_the_tokens_it_issued(stack: Stack, stubs: Stubs) -> None:
    """`docker compose restart auth`: Auth comes back healthy with the signing key of its volume,
    so a token issued before the restart is still valid, and logging in works again."""
    user = register_and_login(stubs.auth, "compose-restart")
    started = stack.container("auth")["State"]["StartedAt"]
    done = stack.compose("restart", "--no-deps", "auth", timeout=120)
    assert done.returncode == 0, done.stderr
    assert stack.wait_healthy("auth")["State"]["StartedAt"] != started
    assert poll(answers(lambda: _token_is_valid(stubs, user)), lambda ok: ok is True,
                what="the pre-restart token valid")  # fmt: skip
    assert log_in(stubs, user.email).user_id == user.user_id


def test_a_crashed_service_is_brought_back_by_its_restart_policy(
    stack: Stack, stubs: Stubs
) -> None:
    """Billing's process killed with SIGKILL from the host, as a crash or the OOM killer would:
    Docker restarts it (`restart: unless-stopped`), it turns healthy, and CreateProject, which
    calls Billing, works again and is counted once."""
    before = stack.container("billing")
    try:
        os.kill(before["State"]["Pid"], signal.SIGKILL)
    except PermissionError:
        requirement_missing("killing a container's process needs the Docker daemon's user (root)")
    poll(
        lambda: stack.container("billing")["RestartCount"],
        lambda count: count > before["RestartCount"],
        what="Docker restarting billing",
    )
    stack.wait_healthy("billing")

    user = register_and_login(stubs.auth, "compose-crash")
    # Project's breaker for Billing may still be open from the calls made while it was down:
    # the first CreateProject that gets through must also be the only one counted.
    request_id = uuid.uuid4().hex

    def create() -> project_pb2.Project:
        request = project_pb2.CreateProjectRequest(name="after the crash", request_id=request_id)
        reply = stubs.project.CreateProject(request, metadata=user.metadata, timeout=CALL_TIMEOUT)
        return reply.project

    created = poll(answers(create), lambda r: isinstance(r, project_pb2.Project),
                   what="CreateProject after Billing's crash")  # fmt: skip
    assert isinstance(created, project_pb2.Project)
    assert _project_ids(stubs, user) == {created.id}
    assert projects_used(stubs, user) == 1


def test_a_killed_worker_loses_no_email(stack: Stack, stubs: Stubs) -> None:
    """`docker compose kill -s SIGKILL notification-worker`: Docker takes a kill it was asked for
    as a stop, so the restart policy leaves the worker down; the usage emails queued meanwhile
    are delivered once `docker compose up` has started it again."""
    done = stack.compose("kill", "-s", "SIGKILL", WORKER, timeout=60)
    assert done.returncode == 0, done.stderr
    time.sleep(3)  # long enough for a restart policy to act, if it would
    assert stack.container(WORKER)["State"]["Status"] == "exited"

    user = register_and_login(stubs.auth, "compose-worker")
    limit = free_project_limit(stubs, user)
    for n in range(1, limit + 1):
        create_project(stubs, user, f"queued {n}")
    time.sleep(3)  # what the worker would need to deliver them, were it running
    assert stack.emails_to(user.email) == []

    # The emails arriving are what shows the worker back; they do not wait for its health check.
    done = stack.compose("up", "--detach", "--no-deps", "--no-build", WORKER)
    assert done.returncode == 0, done.stderr
    subjects = poll(
        lambda: stack.emails_to(user.email),
        lambda found: usage_emails_arrived(found, limit),
        what="the usage emails queued while the worker was down",
        timeout=120,
    )
    assert_only_the_usage_emails(subjects, limit)


def test_data_survives_down_and_up(stack: Stack, stubs: Stubs) -> None:
    """`docker compose down` then `up --wait`: the volumes keep the users, projects, usage,
    events, Auth's signing key and every identity, so the stack serves the same data and the
    tokens issued before."""
    user = register_and_login(stubs.auth, "compose-persist")
    project = create_project(stubs, user, "Kept")
    poll(lambda: _events_of(stack, user), lambda n: n >= 1, what="the project's event stored")
    events = _events_of(stack, user)

    done = stack.compose("down", timeout=300)
    assert done.returncode == 0, done.stderr
    assert stack.compose("ps", "-a", "-q").stdout.split() == []
    stack.timings["up again"] = round(stack.up(), 1)

    assert poll(answers(lambda: _token_is_valid(stubs, user)), lambda ok: ok is True,
                what="the token issued before `down` valid")  # fmt: skip
    assert _project_ids(stubs, user) == {project.id}
    assert projects_used(stubs, user) == 1
    assert _events_of(stack, user) == events
    assert log_in(stubs, user.email).user_id == user.user_id
    print(f"\nup --wait after down: {stack.timings['up again']} s")

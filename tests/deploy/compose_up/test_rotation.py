"""Rotation with the commands of docs/deployment.md ("Rotating secrets (compose)") while
CreateProject calls run: no call fails, Billing serves the re-issued certificate, and the rotated
credential is the one Auth accepts (the old one too, for its grace period)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import grpc
from zoptal.auth.v1 import auth_pb2
from zoptal.project.v1 import project_pb2

from tests.deploy.compose_up.stack import Stack, projects_used
from tests.e2e.journey import (
    CALL_TIMEOUT,
    Stubs,
    User,
    create_project,
    poll,
    register_and_login,
)


# The documented rotation commands (docs/deployment.md, "Rotating secrets (compose)").
def reissue_certificate(service: str) -> list[str]:
    return [
        "run", "--rm", "--entrypoint", "python", "pki-init",
        "-m", "meshcore.pki", "issue", "--ca-dir", "/var/lib/zoptal/ca",
        "--out", f"/var/lib/zoptal/identities/{service}/tls",
        "--service", service, "--dns", service,
    ]  # fmt: skip


def rotate_credential(service: str) -> list[str]:
    return [
        "run", "--rm", "auth-service-identity",
        "service-identity", "rotate", "--credentials-dir", "/var/lib/zoptal/identities", service,
        "--grace-seconds", "600",
    ]  # fmt: skip


class CallLoop:
    """CreateProject then DeleteProject, one pair after another on a thread, counting outcomes,
    until stopped: both go through Project -> Billing (the create's limit check and usage, the
    delete's release), and the user stays within the free plan (compose takes no payments)."""

    def __init__(self, stubs: Stubs, user: User) -> None:
        self.stubs, self.user = stubs, user
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                project = create_project(self.stubs, self.user, f"loop {uuid.uuid4().hex[:8]}")
                self.stubs.project.DeleteProject(
                    project_pb2.DeleteProjectRequest(project_id=project.id),
                    metadata=self.user.metadata,
                    timeout=CALL_TIMEOUT,
                )
                self.ok += 1
            except grpc.RpcError as error:
                self.failed.append(f"{error.code().name}: {error.details()}")
            # Paced to a few pairs a second: the loop is one user, whose budget is
            # RATE_LIMIT_MAX_REQUESTS (1000) a minute; Project's calls to Billing for it count
            # against Project's own service budget (RATE_LIMIT_SERVICE_MAX_REQUESTS).
            time.sleep(0.25)

    def __enter__(self) -> CallLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=CALL_TIMEOUT + 5)


def _credential(stack: Stack, service: str) -> dict[str, str]:
    """<service>-identity/credentials.json, read in that service's own image."""
    done = stack.run_in(
        service, ["/var/lib/zoptal/identity/credentials.json"], "--entrypoint", "cat"
    )
    assert done.returncode == 0, done.stderr
    try:
        credential: dict[str, str] = json.loads(done.stdout)
    except json.JSONDecodeError:
        # Not `from` the error, whose message would quote the file: it holds a secret.
        raise AssertionError(f"{service}'s credentials.json is not JSON (not shown)") from None
    return credential


def test_rotation_with_the_documented_commands_fails_no_call(stack: Stack, stubs: Stubs) -> None:
    """While CreateProject runs in a loop: re-issue Billing's certificate (the server side of
    Project -> Billing) and Project's (the client side), and rotate Project's credential (the
    caller's). Not one call may fail."""
    user = register_and_login(stubs.auth, "compose-rotation")
    before = stack.probe(user.user_id)["billing_serial"]
    old_credential = _credential(stack, "project")

    steps = {
        "reissue billing certificate": reissue_certificate("billing"),
        "reissue project certificate": reissue_certificate("project"),
        "rotate project credential": rotate_credential("project"),
    }
    outputs = {}
    with CallLoop(stubs, user) as loop:
        time.sleep(3)
        for step, command in steps.items():
            started = time.monotonic()
            done = stack.compose(*command, timeout=300)
            stack.timings[step] = round(time.monotonic() - started, 1)
            assert done.returncode == 0, f"{step}: {done.stderr}"
            outputs[step] = done.stdout
        time.sleep(10)  # calls keep going on the re-issued certificates and new credential
    print(
        f"\nrotation: {loop.ok} CreateProject calls ok, {len(loop.failed)} failed; {stack.timings}"
    )
    assert loop.failed == [], loop.failed[:5]
    assert loop.ok >= 10
    # Every create was counted once and every delete given back (the releases go through the
    # usage outbox, a moment later).
    assert (
        poll(
            lambda: projects_used(stubs, user),
            lambda used: used == 0,
            what="Billing's project count back to 0 after the create/delete pairs",
        )
        == 0
    )

    # Billing serves its re-issued certificate (the serial `issue` printed) on new connections.
    after = stack.probe(user.user_id)["billing_serial"]
    assert after != before
    assert f"(serial {after})" in outputs["reissue billing certificate"]

    # The rotated credential is a new secret for the same account; Auth accepts it, and the old
    # one too for its grace period (the service switches when it next renews its token).
    new_credential = _credential(stack, "project")
    assert new_credential["client_id"] == old_credential["client_id"]
    same_secret = new_credential["client_secret"] == old_credential["client_secret"]
    assert not same_secret  # (compared here, so that no secret reaches a failure message)
    for credential in (new_credential, old_credential):
        stubs.auth.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(
                client_id=credential["client_id"], client_secret=credential["client_secret"]
            ),
            timeout=CALL_TIMEOUT,
        )

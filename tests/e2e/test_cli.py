"""The ``zoptal`` command line against the embedded platform, run as a user runs it."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.commands import Done, operator_credentials, platform_env, run_module
from tests.e2e.journey import PASSWORD, Stubs, User, open_stubs, register_and_login
from tests.e2e.platform import EmbeddedPlatform
from tests.support import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def stubs(embedded_platform: EmbeddedPlatform) -> Iterator[Stubs]:
    with open_stubs(embedded_platform) as opened:
        yield opened


@pytest.fixture
def env(embedded_platform: EmbeddedPlatform, tmp_path: Path) -> dict[str, str]:
    return platform_env(embedded_platform, tmp_path / "config")


@pytest.fixture
def user(stubs: Stubs, env: dict[str, str]) -> User:
    """A registered user, logged in through `zoptal login` (its tokens cached in env's dir)."""
    registered = register_and_login(stubs.auth, "cli")
    done = zoptal(env, "login", "--email", registered.email, "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0, done.stderr
    return registered


def zoptal(env: dict[str, str], *args: str, stdin: str | None = None) -> Done:
    return run_module("zoptal_cli", ["--output", "json", *args], env, stdin)


def test_login_caches_the_tokens_privately_and_whoami_reads_them(
    user: User, env: dict[str, str]
) -> None:
    folder = Path(env["XDG_CONFIG_HOME"]) / "zoptal"
    token_file = folder / "token.json"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    whoami = zoptal(env, "whoami")
    assert whoami.returncode == 0, whoami.stderr
    reply = whoami.json()
    assert reply["valid"] is True
    assert (reply["user_id"], reply["email"]) == (user.user_id, user.email)
    assert "project:create" in reply["permissions"]

    logout = zoptal(env, "logout")
    assert logout.returncode == 0, logout.stderr
    assert not token_file.exists()
    again = run_module("zoptal_cli", ["whoami"], env)
    assert again.returncode == 1
    assert "not logged in" in again.stderr


def test_projects_billing_and_events(user: User, env: dict[str, str]) -> None:
    created = zoptal(env, "projects", "create", "CLI project", "--description", "from the CLI")
    assert created.returncode == 0, created.stderr
    project = created.json()
    assert (project["name"], project["owner_id"]) == ("CLI project", user.user_id)

    got = zoptal(env, "projects", "get", project["id"]).json()
    assert (got["id"], got["caller_role"]) == (project["id"], "PROJECT_ROLE_OWNER")
    listed = zoptal(env, "projects", "list").json()
    assert [p["project"]["id"] for p in listed["projects"]] == [project["id"]]
    members = zoptal(env, "projects", "members", project["id"]).json()
    assert [(m["user_id"], m["role"]) for m in members["members"]] == [
        (user.user_id, "PROJECT_ROLE_OWNER")
    ]

    plans = zoptal(env, "billing", "plans").json()
    assert "free" in [plan["id"] for plan in plans]
    subscription = zoptal(env, "billing", "subscription").json()
    assert (subscription["user_id"], subscription["plan"]["id"]) == (user.user_id, "free")
    usage = zoptal(env, "billing", "usage").json()
    projects_used = [u["used"] for u in usage if u["metric"] == "METRIC_PROJECTS"]
    assert projects_used == ["1"]  # int64 is a string in the proto3 JSON mapping

    tracked = zoptal(env, "events", "track", "cli.used", "-p", "command=track")
    assert tracked.returncode == 0, tracked.stderr
    assert tracked.json()["event_id"]

    deleted = zoptal(env, "projects", "delete", project["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert zoptal(env, "projects", "list").json()["total_count"] == 0


def test_a_bad_request_shows_the_status_reason_and_field(user: User, env: dict[str, str]) -> None:
    done = zoptal(env, "projects", "create", "x" * 300)
    assert done.returncode == 1
    assert done.stdout == ""
    error = done.error()
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["reason"]
    assert error["domain"] == "zoptal.project.v1"
    assert [v["field"] for v in error["field_violations"]] == ["name"]

    text = run_module("zoptal_cli", ["projects", "get", "no-such-project"], env)
    assert text.returncode == 1
    assert "NOT_FOUND" in text.stderr
    assert "reason: NOT_FOUND" in text.stderr
    assert "resource: project no-such-project" in text.stderr


def test_operator_commands_say_when_a_user_token_is_not_enough(
    embedded_platform: EmbeddedPlatform, stubs: Stubs, user: User, env: dict[str, str]
) -> None:
    refused = zoptal(env, "notify", "send", "--to", user.email, "--subject", "Hi", "--body", ".")
    assert refused.returncode == 1
    error = refused.error()
    assert error["code"] == "PERMISSION_DENIED"
    assert "your user token is not enough" in error["hint"]

    credentials = Path(env["XDG_CONFIG_HOME"]) / "operator" / "credentials.json"
    operator_credentials(
        embedded_platform, stubs, ["notification:send", "analytics:read"], credentials
    )
    operator_env = {**env, "ZOPTAL_SERVICE_CREDENTIALS": str(credentials)}
    sent = zoptal(
        operator_env, "notify", "send", "--to", user.email, "--user-id", user.user_id,
        "--subject", "Hello from the CLI", "--body", "Sent by an operator.",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert sent.json()["status"] in ("NOTIFICATION_STATUS_QUEUED", "NOTIFICATION_STATUS_SENT")
    history = zoptal(env, "notify", "history").json()  # the user reads their own
    assert sent.json()["notification_id"] in [n["id"] for n in history["notifications"]]

    queried = zoptal(operator_env, "events", "query", "--since", "2h", "--bucket", "hour")
    assert queried.returncode == 0, queried.stderr
    assert int(queried.json()["total_events"]) >= 0


def test_health_reports_every_service_and_fails_for_a_dead_one(env: dict[str, str]) -> None:
    healthy = zoptal(env, "health")
    assert healthy.returncode == 0, healthy.stderr
    rows = healthy.json()
    assert {row["service"] for row in rows} == {
        "auth", "project", "billing", "notification", "analytics",
    }  # fmt: skip
    assert {row["status"] for row in rows} == {"SERVING"}

    dead = zoptal(env, "--timeout", "2", "--addr", f"billing=127.0.0.1:{free_port()}", "health")
    assert dead.returncode == 1
    by_service = {row["service"]: row["status"] for row in dead.json()}
    assert by_service["billing"] == "UNAVAILABLE"
    assert by_service["auth"] == "SERVING"


def test_token_decode_shows_claims_unverified_and_never_echoes_a_token(
    user: User, env: dict[str, str]
) -> None:
    decoded = zoptal(env, "token", "decode").json()
    assert decoded["verified"] is False
    assert decoded["header"]["alg"] == "ES256"
    assert decoded["claims"]["sub"] == user.user_id

    garbage = "not-a-jwt-" + "s3cr3t" * 5
    bad = run_module("zoptal_cli", ["token", "decode", "-"], env, stdin=garbage)
    assert bad.returncode == 1
    assert "not a readable JWT" in bad.stderr
    assert "s3cr3t" not in bad.stderr + bad.stdout


def test_shell_completion_script(env: dict[str, str]) -> None:
    done = run_module("zoptal_cli", ["completion", "bash"], env)
    assert done.returncode == 0, done.stderr
    assert "_ZOPTAL_COMPLETE=bash_complete" in done.stdout
    completed = run_module(
        "zoptal_cli", [], {**env, "_ZOPTAL_COMPLETE": "bash_complete", "COMP_WORDS": "zoptal pro",
                          "COMP_CWORD": "1"},
    )  # fmt: skip
    assert "projects" in completed.stdout

"""The journey over the published ports, and the mTLS evidence from inside the network.

- the journey: register, log in, create projects up to the free plan's limit (Project -> Billing ->
  Analytics over mTLS), usage in Billing, the refusal past the limit, the usage emails in Mailpit,
  the project events in Analytics' database, traces and every scrape target up;
- inside the compose network (probe.py in Project's image): Billing's mTLS port refuses a client
  without a certificate, a service token with another service's certificate, and a service token
  on the plaintext port; forged service tokens are refused by every protected RPC over mTLS.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest

from tests.deploy.compose_up.stack import Stack, get_json, projects_used
from tests.e2e.journey import (
    Stubs,
    assert_only_the_usage_emails,
    create_project,
    free_project_limit,
    poll,
    register_and_login,
    usage_emails_arrived,
)

FORGERY_PROBE = Path(__file__).with_name("forgery_probe.py")


def test_journey_over_the_published_ports(stack: Stack, stubs: Stubs) -> None:
    user = register_and_login(stubs.auth, "compose-journey")
    limit = free_project_limit(stubs, user)

    # Each CreateProject: Project -> Billing (CheckSubscriptionLimits, RecordUsage) and
    # Project -> Analytics (TrackEvent), over the mTLS ports, with the services' own tokens.
    created = [create_project(stubs, user, f"Project {n}") for n in range(1, limit + 1)]
    assert all(p.owner_id == user.user_id for p in created)
    assert projects_used(stubs, user) == limit
    with pytest.raises(grpc.RpcError) as refused:
        create_project(stubs, user, "One too many")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # Billing -> Notification (mTLS) -> the Celery worker -> SMTP: the usage emails (the 100 %
    # one, and the 80 % one when a project before the last reaches it).
    subjects = poll(
        lambda: stack.emails_to(user.email),
        lambda found: usage_emails_arrived(found, limit),
        what="the usage emails in Mailpit",
    )
    assert_only_the_usage_emails(subjects, limit)

    # Analytics stored one project.created event per project (its write buffer flushes later).
    uuid.UUID(user.user_id)  # an id from Auth, safe to quote in SQL
    count_sql = (
        "SELECT count(*) FROM events WHERE name = 'project.created' "  # noqa: S608
        f"AND user_id = '{user.user_id}'"
    )
    poll(
        lambda: int(stack.psql("analytics", count_sql)),
        lambda n: n == limit,
        what="the project.created events in Analytics' database",
    )

    # The OTLP sink (Jaeger) heard from every service, and Prometheus scrapes every metrics port.
    jaeger = f"http://{stack.address('jaeger')}/api/services"
    poll(
        lambda: set(get_json(jaeger)["data"]),
        lambda seen: {"auth", "project", "billing", "notification", "analytics"} <= seen,
        what="traces from every service",
    )
    targets = f"http://{stack.address('prometheus')}/api/v1/targets"
    poll(
        lambda: {
            t["labels"].get("service"): t["health"]
            for t in get_json(targets)["data"]["activeTargets"]
        },
        lambda health: all(
            health.get(s) == "up"
            for s in ("auth", "project", "billing", "notification", "analytics")
        ),
        what="every metrics target up in Prometheus",
        timeout=90,
    )


def test_peers_accept_only_mtls_bound_to_the_callers_identity(stack: Stack) -> None:
    found = stack.probe("u_probe")
    assert found["own_cert_and_token"] == "ok", found
    # No client certificate: the TLS handshake is refused, before any gRPC.
    assert found["no_client_cert"] == "UNAVAILABLE", found
    assert found["tls_no_cert"] == "connected, read 0 bytes", found
    assert found["tls_own_cert"].startswith("connected, read "), found
    assert found["tls_own_cert"] != found["tls_no_cert"], found
    # A valid certificate is not enough, nor is a valid token with another service's certificate
    # or on the plaintext port.
    assert found["cert_no_token"] == "UNAUTHENTICATED", found
    assert found["other_cert"] == "UNAUTHENTICATED", found
    assert found["plaintext_token"] == "UNAUTHENTICATED", found


# Each service's mTLS port inside the compose network (its MTLS_PORT).
MTLS_TARGETS = {
    "auth": "auth:5000",
    "project": "project:5001",
    "billing": "billing:5003",
    "notification": "notification:5004",
    "analytics": "analytics:5005",
}


def test_forged_service_tokens_are_refused_over_mtls_by_every_rpc(
    stack: Stack, tmp_path: Path
) -> None:
    """Every secret and key in the repository, HS256 with Auth's public key, a stranger's key with
    Auth's kid, alg none: sent with Project's real client certificate (so the certificate is not
    what refuses them) to every protected RPC of every service, each is UNAUTHENTICATED."""
    from tests.fuzz.catalogue import PROTECTED_RPCS
    from tests.fuzz.forgeries import forgeries_for

    jwks_url = f"http://{stack.address('auth:8080')}/.well-known/jwks.json"
    with urllib.request.urlopen(jwks_url, timeout=10) as reply:
        forged = forgeries_for(json.loads(reply.read()))
    rpcs = PROTECTED_RPCS
    plan = [
        {
            "target": MTLS_TARGETS[rpc.service],
            "path": rpc.full_name,
            "client_streaming": rpc.method.client_streaming,
            "metadata": [list(item) for item in forgery.metadata],
        }
        for forgery, rpc in (
            (forged[i % len(forged)], rpcs[i % len(rpcs)])
            for i in range(max(len(forged), len(rpcs)))
        )
    ]
    plan_file = tmp_path / "forged.json"
    plan_file.write_text(json.dumps(plan))
    plan_file.chmod(0o644)  # read by the image's UID 1000 through the bind mount
    tmp_path.chmod(0o755)
    done = stack.run_in(
        "project", ["-", "/plan/forged.json"],
        "--entrypoint", "python", "-v", f"{tmp_path}:/plan:ro",
        stdin=FORGERY_PROBE.read_text(),
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(codes) == len(plan) >= len(rpcs)
    wrong = [
        f"{forged[i % len(forged)].label} -> {plan[i]['path']}: {code}"
        for i, code in enumerate(codes)
        if code != "UNAUTHENTICATED"
    ]
    assert not wrong, f"{len(wrong)} forged calls not refused:\n" + "\n".join(wrong[:40])

"""Every Grafana panel's PromQL returns series from a real Prometheus scraping the running
platform, and every rule evaluates without error there: the dashboards and alerts are built on
metrics the services really export (k8s/components/observability/, docs/observability.md).

The platform is this package's ``make run`` (its metrics ports are 9400-9405 shifted by the
package's port offset, and the Celery worker's 9406); Prometheus is Debian's, in a temporary
folder, scraping every second.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from zoptal.analytics.v1 import analytics_pb2
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.notification.v1 import notification_pb2
from zoptal.project.v1 import project_pb2
from zoptal_platform.catalogue import (
    WORKER_METRICS_PORT,
    celery_worker_available,
    installed_services,
)

from tests.e2e.journey import (
    CALL_TIMEOUT,
    create_project,
    open_stubs,
    operator_metadata,
    register_and_login,
)
from tests.e2e.platform import EmbeddedPlatform
from tests.observability.tools import DASHBOARDS, Prometheus, running_prometheus

RATE_INTERVAL = "1m"
"""What Grafana's $__rate_interval stands for here: many 1 s scrapes, as the panels need."""
WORKER = "notification-worker"
"""The Celery worker's scrape target, as compose and Kubernetes label it."""
DELIVERY_TIMEOUT = 60.0


def scrape_targets(platform: EmbeddedPlatform) -> dict[str, str]:
    """Every service's metrics port and the Celery worker's (its delivery panels)."""
    targets = {spec.name: platform.address(spec.metrics_port) for spec in installed_services()}
    if celery_worker_available():
        targets[WORKER] = platform.address(WORKER_METRICS_PORT)
    return targets


def _refused(call: Any, *args: Any, **kwargs: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        call(*args, timeout=CALL_TIMEOUT, **kwargs)
    code: grpc.StatusCode = refused.value.code()
    return code


def drive_traffic(platform: EmbeddedPlatform) -> None:
    """A journey through every service (so each peer's client, breaker and retry series exist),
    one email the worker delivers (its delivery panels), and one refused call to each service
    (so every "errors by code" panel has a code)."""
    with open_stubs(platform) as stubs:
        user = register_and_login(stubs.auth, "dashboards")
        create_project(stubs, user, "dashboards")
        sender = operator_metadata(platform, stubs.auth, ["notification:send"])
        stubs.notification.SendEmail(
            notification_pb2.SendEmailRequest(
                to=user.email,
                user_id=user.user_id,
                subject="Dashboards",
                body_text="A delivery for the notification worker's panels.",
                idempotency_key=f"dashboards-{user.user_id}",
            ),
            metadata=sender,
            timeout=CALL_TIMEOUT,
        )
        refusals = [
            _refused(
                stubs.auth.Login,
                auth_pb2.LoginRequest(email=user.email, password="not-the-password-0"),
            ),
            _refused(
                stubs.project.GetProject,
                project_pb2.GetProjectRequest(project_id=str(uuid.uuid4())),
                metadata=user.metadata,
            ),
            _refused(
                stubs.billing.GetUserSubscription,
                billing_pb2.GetUserSubscriptionRequest(user_id=""),
                metadata=user.metadata,
            ),
            _refused(
                stubs.notification.SendEmail,
                notification_pb2.SendEmailRequest(to="not an address"),
                metadata=user.metadata,
            ),
            _refused(
                stubs.analytics.TrackEvent,
                analytics_pb2.TrackEventRequest(),
                metadata=user.metadata,
            ),
        ]
    assert grpc.StatusCode.OK not in refusals


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL with Grafana's variables replaced) of every panel."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                assert "$" not in expr, f"{path.name} {panel['title']}: unknown variable in {expr}"
                queries.append((path.name, panel["title"], expr))
    return queries


@pytest.fixture(scope="module")
def prometheus(
    embedded_platform: EmbeddedPlatform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    targets = scrape_targets(embedded_platform)
    with running_prometheus(Path(tmp_path_factory.mktemp("prometheus")), targets) as server:
        drive_traffic(embedded_platform)
        # Enough scrapes after the traffic for every rate() to see it (1 s apart).
        deadline = time.monotonic() + 30
        while not server.scraped_everything({"zoptal"}) and time.monotonic() < deadline:
            time.sleep(0.5)
        if WORKER in targets:
            # The email is delivered by the worker on its own schedule.
            sent = f'zoptal_notification_deliveries_total{{service="{WORKER}", outcome="sent"}}'
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while not server.query(sent) and time.monotonic() < deadline:
                time.sleep(0.5)
        time.sleep(5)
        yield server


def test_prometheus_scrapes_every_service(
    prometheus: Prometheus, embedded_platform: EmbeddedPlatform
) -> None:
    up = {r["metric"]["service"]: r["value"][1] for r in prometheus.query('up{job="zoptal"}')}
    assert up == dict.fromkeys(scrape_targets(embedded_platform), "1")


def test_every_panel_query_returns_series(prometheus: Prometheus) -> None:
    empty = [
        f"{board} / {title}: {expr}"
        for board, title, expr in panel_queries()
        if not prometheus.query(expr)
    ]
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_a_panel_on_a_metric_nobody_exports_would_fail(prometheus: Prometheus) -> None:
    """The check can fail: a misspelt metric returns no series."""
    assert not prometheus.query("sum by (service) (rate(grpc_server_handeld_total[1m]))")


def test_every_rule_evaluates_without_error(prometheus: Prometheus) -> None:
    """The recording rules and alerts run on the real series (no evaluation error), and the
    availability SLI exists for every service."""
    # The SLI groups evaluate every 30 s: an evaluation that came before rate() had two samples
    # recorded nothing, and the next one comes 30 s later; so wait for the SLI itself too.
    expected = {s.name for s in installed_services()}
    deadline = time.monotonic() + 75
    while True:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
        sli = prometheus.query("service:zoptal_availability_errors:ratio_rate5m")
        covered = {r["metric"]["service"] for r in sli} == expected
        if (evaluated and covered) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert rules
    failing = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] != "ok"]
    assert not failing, failing
    assert {r["metric"]["service"] for r in sli} == expected

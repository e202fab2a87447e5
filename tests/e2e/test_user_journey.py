"""A new user's journey across all five services of a platform started with ``make run``.

Register and log in (Auth); create projects until the free plan's limit (Project, which asks
Billing); receive the usage emails (Billing -> Notification -> the Celery worker -> SMTP: the
100 % one, and the 80 % one when a project before the last reaches it); upgrade (Billing) and
create again; track events and page views and read them back in aggregate and in real time
(Analytics); read the notification history (Notification); revoke the token and be refused by
every one of the five. The journey runs on the default embedded platform
(SQLite, SQLite broker) and on a second platform whose services use PostgreSQL and Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from zoptal.analytics.v1 import analytics_pb2
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.notification.v1 import notification_pb2
from zoptal.project.v1 import project_pb2
from zoptal_platform.catalogue import installed_services

from tests.e2e.journey import (
    CALL_TIMEOUT,
    Metadata,
    Stubs,
    User,
    assert_only_the_usage_emails,
    create_project,
    free_project_limit,
    mail_to,
    open_stubs,
    operator_metadata,
    poll,
    register_and_login,
    usage_email_counts,
    usage_emails_arrived,
    usage_emails_expected,
)
from tests.e2e.platform import EmbeddedPlatform
from tests.e2e.stores import existing_databases, redis_key_count

EVENTS_TRACKED = 3
PAGE_VIEWS_TRACKED = 2
SENT = notification_pb2.NOTIFICATION_STATUS_SENT


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def platform(request: pytest.FixtureRequest) -> EmbeddedPlatform:
    """The platform as ``make run`` starts it, on its SQLite default or on PostgreSQL and Redis."""
    name = "embedded_platform" if request.param == "sqlite" else "postgres_platform"
    started: EmbeddedPlatform = request.getfixturevalue(name)
    return started


@pytest.fixture
def stubs(platform: EmbeddedPlatform) -> Iterator[Stubs]:
    with open_stubs(platform) as opened:
        yield opened


def _reach_the_project_limit(stubs: Stubs, user: User, platform: EmbeddedPlatform) -> int:
    subscription = stubs.billing.GetUserSubscription(
        billing_pb2.GetUserSubscriptionRequest(user_id=user.user_id),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    ).subscription
    assert subscription.plan.id == "free"
    limit = free_project_limit(stubs, user)
    for number in range(1, limit + 1):
        created = create_project(stubs, user, f"Project {number}")
        assert created.owner_id == user.user_id

    with pytest.raises(grpc.RpcError) as refused:
        create_project(stubs, user, "One too many")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = refused.value.details() or ""
    assert "project limit" in details
    assert str(limit) in details

    # Reaching 100 % of the limit (and 80 % before it, when a project before the last gets
    # there) sends one email each, through Notification, its worker and real SMTP, to the sink
    # `make run` keeps under <data dir>/mail.
    mail_dir = platform.data_dir / "mail"
    mail = poll(
        lambda: [str(m["Subject"]) for m in mail_to(mail_dir, user.email)],
        lambda subjects: usage_emails_arrived(subjects, limit),
        what="the usage emails in the SMTP sink",
    )
    assert_only_the_usage_emails(mail, limit)
    return limit


def _upgrade_and_create_again(stubs: Stubs, user: User, limit: int) -> None:
    # Pro is paid: `make run` takes payments in test mode, where this token is approved and the
    # provider confirms a moment later (asynchronously, as a real one would).
    asked = stubs.billing.ChangeSubscription(
        billing_pb2.ChangeSubscriptionRequest(
            user_id=user.user_id, plan_id="pro", payment_token="tok_test_approve"
        ),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    ).subscription
    assert asked.latest_change.status == billing_pb2.PLAN_CHANGE_STATUS_AWAITING_PAYMENT
    changed = poll(
        lambda: (
            stubs.billing.GetUserSubscription(
                billing_pb2.GetUserSubscriptionRequest(user_id=user.user_id),
                metadata=user.metadata,
                timeout=CALL_TIMEOUT,
            ).subscription
        ),
        lambda subscription: subscription.plan.id == "pro",
        what="pro in force once the test-mode payment is confirmed",
    )
    assert changed.latest_change.status == billing_pb2.PLAN_CHANGE_STATUS_APPLIED
    create_project(stubs, user, "After the upgrade")
    listed = stubs.project.ListUserProjects(
        project_pb2.ListUserProjectsRequest(), metadata=user.metadata, timeout=CALL_TIMEOUT
    )
    assert listed.total_count == limit + 1
    usage = stubs.billing.GetUserSubscription(
        billing_pb2.GetUserSubscriptionRequest(user_id=user.user_id),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    )
    projects = [u for u in usage.usage if u.metric == billing_pb2.METRIC_PROJECTS]
    assert [u.used for u in projects] == [limit + 1]


def _track(stubs: Stubs, user: User, event_name: str, page_url: str) -> None:
    for step in range(EVENTS_TRACKED):
        stubs.analytics.TrackEvent(
            analytics_pb2.TrackEventRequest(
                user_id=user.user_id, name=event_name, properties={"step": str(step)}
            ),
            metadata=user.metadata,
            timeout=CALL_TIMEOUT,
        )
    for _ in range(PAGE_VIEWS_TRACKED):
        stubs.analytics.TrackPageView(
            analytics_pb2.TrackPageViewRequest(
                user_id=user.user_id, url=page_url, title="Journey dashboard"
            ),
            metadata=user.metadata,
            timeout=CALL_TIMEOUT,
        )


def _read_aggregate(
    stubs: Stubs, user: User, event_name: str, page_url: str, reader: Metadata
) -> None:
    now = datetime.now(UTC)
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(now - timedelta(hours=1))
    end.FromDatetime(now + timedelta(hours=1))
    request = analytics_pb2.GetAnalyticsRequest(
        start_time=start,
        end_time=end,
        bucket=analytics_pb2.BUCKET_SIZE_HOUR,
        event_names=[event_name, "page_view"],
        user_id=user.user_id,
    )
    expected = EVENTS_TRACKED + PAGE_VIEWS_TRACKED
    reply = poll(
        lambda: stubs.analytics.GetAnalytics(request, metadata=reader, timeout=CALL_TIMEOUT),
        lambda r: r.total_events >= expected,
        what="the tracked events in GetAnalytics",
    )
    assert reply.total_events == expected
    assert reply.unique_users == 1
    counts = {item.name: item.count for item in reply.top_events}
    assert counts == {event_name: EVENTS_TRACKED, "page_view": PAGE_VIEWS_TRACKED}
    assert [(p.url, p.views) for p in reply.top_pages] == [(page_url, PAGE_VIEWS_TRACKED)]
    assert sum(bucket.total_events for bucket in reply.buckets) == expected


def _read_real_time(stubs: Stubs, event_name: str, reader: Metadata) -> None:
    request = analytics_pb2.GetRealTimeAnalyticsRequest(window_minutes=5)

    def journey_events(reply: analytics_pb2.GetRealTimeAnalyticsResponse) -> int:
        return sum(item.count for item in reply.top_events if item.name == event_name)

    reply = poll(
        lambda: stubs.analytics.GetRealTimeAnalytics(request, metadata=reader, timeout=10),
        lambda r: journey_events(r) >= EVENTS_TRACKED,
        what="the tracked events in GetRealTimeAnalytics",
    )
    assert journey_events(reply) == EVENTS_TRACKED
    assert reply.window_minutes == 5
    assert reply.active_users >= 1
    assert reply.total_events >= EVENTS_TRACKED + PAGE_VIEWS_TRACKED
    assert len(reply.events_per_minute) == 5
    per_minute = sum(minute.count for minute in reply.events_per_minute)
    assert per_minute >= EVENTS_TRACKED + PAGE_VIEWS_TRACKED


def _read_notification_history(
    stubs: Stubs, user: User, limit: int, platform: EmbeddedPlatform
) -> None:
    expected = usage_emails_expected(limit)
    emails = sum(expected.values())
    request = notification_pb2.GetNotificationHistoryRequest(
        user_id=user.user_id, channel=notification_pb2.CHANNEL_EMAIL
    )
    history = poll(
        lambda: stubs.notification.GetNotificationHistory(
            request, metadata=user.metadata, timeout=CALL_TIMEOUT
        ),
        lambda h: len(h.notifications) >= emails and all(n.status == SENT for n in h.notifications),
        what="the usage emails SENT in the notification history",
    )
    assert history.total_count == emails
    subjects = [n.subject for n in history.notifications]
    assert usage_email_counts(subjects, limit) == expected
    for notification in history.notifications:
        assert notification.recipient == user.email
        assert notification.provider_message_id
    # All are delivered now: the sink holds exactly one message per email, no duplicate.
    delivered = [str(m["Subject"]) for m in mail_to(platform.data_dir / "mail", user.email)]
    assert_only_the_usage_emails(delivered, limit)


# Auth's own chain consults its revocation list at once; every other service learns revocations
# by polling Auth's ListRevocations every REVOCATION_SYNC_SECONDS (1 s), so allow a bounded wait.
REVOCATION_PROPAGATION_SECONDS = 10.0


def _revoke(stubs: Stubs, user: User, validator: Metadata) -> None:
    """RevokeToken, then Auth's ValidateToken, asked by a service holding user:validate (the
    revoked token cannot vouch for itself), says REVOKED."""
    revoked = stubs.auth.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=user.access_token),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    )
    assert revoked.revoked
    validation = stubs.auth.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=user.access_token),
        metadata=validator,
        timeout=CALL_TIMEOUT,
    )
    assert not validation.valid
    assert validation.reason == auth_pb2.INVALID_TOKEN_REASON_REVOKED


def _status(call: Callable[..., object], request: object, user: User) -> grpc.StatusCode:
    """The status of one call made with ``user``'s token (OK when it succeeds)."""
    try:
        call(request, metadata=user.metadata, timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _refused_by_every_service(stubs: Stubs, user: User) -> None:
    """One authenticated call per service with the revoked token: each answers UNAUTHENTICATED.

    Every service has accepted this token earlier in the journey, so each holds it in its
    verification cache: the refusal shows that revocation is checked on cache hits too.
    """
    calls: dict[str, tuple[Callable[..., object], object]] = {
        "auth": (stubs.auth.GetUser, auth_pb2.GetUserRequest(user_id=user.user_id)),
        "project": (stubs.project.ListUserProjects, project_pb2.ListUserProjectsRequest()),
        "billing": (
            stubs.billing.GetUserSubscription,
            billing_pb2.GetUserSubscriptionRequest(user_id=user.user_id),
        ),
        "notification": (
            stubs.notification.GetNotificationHistory,
            notification_pb2.GetNotificationHistoryRequest(user_id=user.user_id),
        ),
        "analytics": (
            stubs.analytics.TrackEvent,
            analytics_pb2.TrackEventRequest(user_id=user.user_id, name="journey.after_revoke"),
        ),
    }
    # Poll until no service lets the token through, then require the right refusal from each:
    # a service answering anything else (UNAVAILABLE from a stale revocation list, say) fails.
    codes = poll(
        lambda: {name: _status(call, request, user) for name, (call, request) in calls.items()},
        lambda found: grpc.StatusCode.OK not in found.values(),
        what="every service refusing the revoked token",
        timeout=REVOCATION_PROPAGATION_SECONDS,
    )
    assert codes == dict.fromkeys(calls, grpc.StatusCode.UNAUTHENTICATED)


def test_user_journey_across_all_five_services(platform: EmbeddedPlatform, stubs: Stubs) -> None:
    """Register to revoke: limits, usage emails, upgrade, analytics, history, as a client sees."""
    user = register_and_login(stubs.auth)
    limit = _reach_the_project_limit(stubs, user, platform)
    _upgrade_and_create_again(stubs, user, limit)

    tag = uuid.uuid4().hex[:10]
    event_name = f"journey.step_{tag}"
    page_url = f"https://app.zoptal.test/journey/{tag}"
    _track(stubs, user, event_name, page_url)
    # An operator's tool reads analytics with a service account the admin created for it.
    reader = operator_metadata(platform, stubs.auth, ["analytics:read"])
    _read_aggregate(stubs, user, event_name, page_url, reader)
    _read_real_time(stubs, event_name, reader)

    _read_notification_history(stubs, user, limit, platform)
    _revoke(stubs, user, operator_metadata(platform, stubs.auth, ["user:validate"]))
    _refused_by_every_service(stubs, user)


@pytest.mark.postgres
@pytest.mark.redis
def test_the_postgres_platform_keeps_its_data_in_postgres_and_redis(
    postgres_platform: EmbeddedPlatform,
) -> None:
    """ZOPTAL_POSTGRES_URL and ZOPTAL_REDIS_URL move every service off SQLite: no file is left."""
    prefix = postgres_platform.extra_env["ZOPTAL_DATABASE_PREFIX"]
    expected = sorted(prefix + spec.name for spec in installed_services())
    assert existing_databases(prefix) == expected
    assert not list(postgres_platform.data_dir.glob("*.db"))  # neither services nor broker
    assert "Data: PostgreSQL" in postgres_platform.text()
    # The Celery broker (the worker declares its queue at start) lives in the Redis database.
    assert redis_key_count(postgres_platform.extra_env["ZOPTAL_REDIS_URL"]) > 0


def test_auth_refuses_a_revoked_token_at_once(platform: EmbeddedPlatform, stubs: Stubs) -> None:
    """Auth holds the revocation, so it refuses the token on the next call with no propagation
    wait, although its verification cache already holds the token."""
    user = register_and_login(stubs.auth, "revoked")
    request = auth_pb2.GetUserRequest(user_id=user.user_id)
    assert _status(stubs.auth.GetUser, request, user) == grpc.StatusCode.OK
    _revoke(stubs, user, operator_metadata(platform, stubs.auth, ["user:validate"]))
    assert _status(stubs.auth.GetUser, request, user) == grpc.StatusCode.UNAUTHENTICATED

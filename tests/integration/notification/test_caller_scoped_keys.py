"""Idempotency keys belong to their caller: over real gRPC against the real PostgreSQL.

Billing, another sending service and an admin using the same key each get a notification of
their own; nobody learns that someone else used the key; each caller's repeats are still
deduplicated, concurrently too. No worker runs: these are about what is stored and answered.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from meshcore.db import Database
from sqlalchemy import text
from zoptal.notification.v1 import notification_pb2 as pb
from zoptal_notification.app import MIGRATIONS_DIR

from tests.migrating import upgrade_with_rows
from tests.tokens import MINT

from .conftest import SENDER, make_settings, running_notification

pytestmark = pytest.mark.timeout(120)

OTHER_SENDER = MINT.as_service("support-desk", "notification:send")
ADMIN = MINT.as_user("root", roles=("admin",))


def _email(key: str, subject: str = "Welcome") -> pb.SendEmailRequest:
    return pb.SendEmailRequest(
        to="ada@example.com",
        user_id="user-ada",
        subject=subject,
        body_text="Hello Ada",
        idempotency_key=key,
    )


async def _stored(database_url: str, key: str) -> list[tuple[str, str, str]]:
    """(caller, subject, id) of every notification sent with ``key``, sorted by caller."""
    database = Database(database_url)
    try:
        async with database.connection() as connection:
            rows = await connection.execute(
                text(
                    "SELECT caller, subject, id FROM notifications WHERE idempotency_key = :key"
                    " ORDER BY caller"
                ),
                {"key": key},
            )
            return [(str(c), str(s), str(i)) for c, s, i in rows]
    finally:
        await database.dispose()


@pytest.mark.postgres
@pytest.mark.redis
async def test_three_callers_reusing_a_key_each_get_their_own_notification(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The first use of a key by each caller is new (other content too, no ALREADY_EXISTS);
    each caller's repeat returns its own notification; its own key with other content is
    ALREADY_EXISTS."""
    settings = make_settings(postgres_url, redis_url, tmp_path)
    async with running_notification(settings) as running:
        stub = running.stub
        billing = await stub.SendEmail(_email("welcome-1"), metadata=SENDER)
        desk = await stub.SendEmail(_email("welcome-1", "Other"), metadata=OTHER_SENDER)
        admin = await stub.SendEmail(_email("welcome-1"), metadata=ADMIN)
        repeats = [
            await stub.SendEmail(_email("welcome-1"), metadata=SENDER),
            await stub.SendEmail(_email("welcome-1", "Other"), metadata=OTHER_SENDER),
            await stub.SendEmail(_email("welcome-1"), metadata=ADMIN),
        ]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SendEmail(_email("welcome-1", "Changed"), metadata=SENDER)
    firsts = [billing, desk, admin]
    assert [reply.deduplicated for reply in firsts] == [False, False, False]
    assert len({reply.notification_id for reply in firsts}) == 3
    assert [reply.deduplicated for reply in repeats] == [True, True, True]
    assert [r.notification_id for r in repeats] == [f.notification_id for f in firsts]
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await _stored(postgres_url, "welcome-1") == [
        ("service:billing", "Welcome", billing.notification_id),
        ("service:support-desk", "Other", desk.notification_id),
        ("user:root", "Welcome", admin.notification_id),
    ]


@pytest.mark.postgres
@pytest.mark.redis
async def test_concurrent_sends_of_one_key_by_two_callers_store_one_notification_each(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """20 racing sends each by Billing and by another service, over two replicas: one row per
    caller, and each caller's 20 answers all name it, exactly one of them not deduplicated."""
    settings = make_settings(postgres_url, redis_url, tmp_path)
    async with running_notification(settings) as one, running_notification(settings) as two:
        replies = await asyncio.gather(
            *(
                replica.stub.SendEmail(_email("race-1"), metadata=who)
                for _ in range(10)
                for replica in (one, two)
                for who in (SENDER, OTHER_SENDER)
            )
        )
    by_caller = {
        "billing": replies[0::2],  # the gather keeps the order: SENDER, OTHER_SENDER, ...
        "desk": replies[1::2],
    }
    stored = await _stored(postgres_url, "race-1")
    assert [caller for caller, _, _ in stored] == ["service:billing", "service:support-desk"]
    for (_, _, stored_id), answers in zip(stored, by_caller.values(), strict=True):
        assert {answer.notification_id for answer in answers} == {stored_id}
        assert sum(not answer.deduplicated for answer in answers) == 1


async def test_migration_0002_keeps_existing_notifications_under_no_caller(
    sqlite_or_postgres_url: str, tmp_path: Path
) -> None:
    """A notification stored before callers were recorded stays, with caller ""; Billing
    sending its key afterwards gets a notification of its own."""
    url = sqlite_or_postgres_url
    old = (
        "INSERT INTO notifications (id, user_id, channel, recipient, subject, body, body_html,"
        " template, data, idempotency_key, request_fingerprint, status, attempts, last_error,"
        " provider, provider_message_id, created_at, updated_at, next_attempt_at, claim_token)"
        " VALUES ('old-1', 'user-ada', 'email', 'ada@example.com', 'Welcome', 'Hello Ada', '',"
        " '', '{}', 'welcome-1', 'f', 'sent', 1, '', 'smtp', '', :now, :now, :now, '')"
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    await upgrade_with_rows(url, MIGRATIONS_DIR, "0001", [(old, {"now": now})])
    settings = make_settings(url, f"sqla+sqlite:///{tmp_path / 'broker.db'}", tmp_path)
    async with running_notification(settings) as running:
        sent = await running.stub.SendEmail(_email("welcome-1"), metadata=SENDER)
    assert not sent.deduplicated
    assert [(caller, stored_id) for caller, _, stored_id in await _stored(url, "welcome-1")] == [
        ("", "old-1"),
        ("service:billing", sent.notification_id),
    ]

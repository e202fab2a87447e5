"""GetNotificationHistory pages fit the 4 MiB every gRPC stack reads by default, over real gRPC
against the real PostgreSQL, and the largest SendEmail the proto allows is accepted.

The client is a plain ``grpc.aio`` channel with default options (4 MiB receive limit), as in
every other stack. Notifications are maximal: 100000-character text bodies, 998-character
subjects, 2000-character errors and 998-character provider ids, all in 4-byte characters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.message_size import MAX_RESPONSE_BYTES
from sqlalchemy import text
from zoptal.notification.v1 import notification_pb2 as pb

from tests.message_bounds import largest_bytes

from .conftest import SENDER, make_settings, running_notification

pytestmark = pytest.mark.timeout(300)

WIDE = "\U0001d11e"  # four bytes in UTF-8
USER = "user-wide"
STORED = 130


def _largest_email(key: str) -> pb.SendEmailRequest:
    return pb.SendEmailRequest(
        to="a" * 64 + "@" + "b" * 185 + ".com",
        user_id=USER,
        subject=WIDE * 998,
        body_text=WIDE * 100_000,
        body_html=WIDE * 500_000,
        template_data={WIDE * 63 + chr(0x10000 + n): WIDE * 2000 for n in range(50)},
        idempotency_key=key.ljust(128, "k"),
    )


async def _maximise_delivery_fields(database_url: str) -> None:
    """What only a worker writes, at its bounds: the last error and the provider's id."""
    database = Database(database_url)
    try:
        async with database.connection() as connection:
            await connection.execute(
                text("UPDATE notifications SET last_error = :error, provider_message_id = :id"),
                {"error": WIDE * 2000, "id": WIDE * 998},
            )
            await connection.commit()
    finally:
        await database.dispose()


@pytest.mark.postgres
@pytest.mark.redis
async def test_history_pages_of_maximal_emails_fit_4_mib_and_skip_nothing(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Each page holds `limit` notifications within 4 MiB, read by a default client; paging
    returns every notification exactly once; cut bodies are marked and GetNotification
    returns them whole."""
    settings = make_settings(postgres_url, redis_url, tmp_path)
    async with running_notification(settings) as running:
        stub = running.stub
        largest = _largest_email("largest")
        assert largest.ByteSize() > 2_800_000  # near the computed bound, over 2.8 MB
        assert largest.ByteSize() <= largest_bytes(largest.DESCRIPTOR)
        first = await stub.SendEmail(largest, metadata=SENDER)
        sent = [first.notification_id]
        for index in range(1, STORED):
            request = pb.SendEmailRequest()
            request.CopyFrom(largest)
            request.body_html = ""
            request.template_data.clear()
            request.idempotency_key = f"wide-{index}".ljust(128, "k")
            sent.append((await stub.SendEmail(request, metadata=SENDER)).notification_id)
        await _maximise_delivery_fields(postgres_url)

        for limit in (100, 0):
            seen: list[str] = []
            truncated: list[str] = []
            page_number = 1
            while True:
                page = await stub.GetNotificationHistory(
                    pb.GetNotificationHistoryRequest(user_id=USER, page=page_number, limit=limit),
                    metadata=SENDER,
                )
                assert page.ByteSize() <= MAX_RESPONSE_BYTES
                expected = min(page.limit, STORED - len(seen))
                assert len(page.notifications) == expected
                assert page.total_count == STORED
                for item in page.notifications:
                    seen.append(item.id)
                    assert len(item.last_error) == 2000
                    if item.body_truncated:
                        truncated.append(item.id)
                        assert item.body != WIDE * 100_000
                        assert item.body == WIDE * len(item.body)  # cut between characters
                    else:
                        assert item.body == WIDE * 100_000
                if len(seen) == STORED:
                    break
                page_number += 1
            assert sorted(seen) == sorted(sent)
            assert len(set(seen)) == STORED
            assert truncated  # maximal bodies cannot all fit
        whole = await stub.GetNotification(
            pb.GetNotificationRequest(notification_id=truncated[-1]), metadata=SENDER
        )
        assert whole.notification.body == WIDE * 100_000
        assert not whole.notification.body_truncated

"""The message-size policy holds for every RPC (protos/README.md, Message sizes).

Every request field has a documented bound (``tests.message_bounds.BOUNDS``), the largest
request each service's protos allow fits the receive limit its settings default to, and no
setting can lower the limit below it or lift it without bound.
"""

from __future__ import annotations

import pytest
from meshcore.message_size import MAX_RECEIVE_MESSAGE_BYTES_CEILING, field_size
from meshcore.settings import ServiceSettings, SettingsError
from zoptal.notification.v1 import notification_pb2
from zoptal_analytics.settings import AnalyticsSettings
from zoptal_auth.settings import AuthSettings
from zoptal_billing.settings import BillingSettings
from zoptal_notification.settings import NotificationSettings
from zoptal_project.settings import ProjectSettings

from tests.message_bounds import (
    BOUNDS,
    largest_bytes,
    largest_request_bytes,
    methods,
    unbounded_fields,
)

SETTINGS: dict[str, type[ServiceSettings]] = {
    "auth": AuthSettings,
    "project": ProjectSettings,
    "billing": BillingSettings,
    "notification": NotificationSettings,
    "analytics": AnalyticsSettings,
}


def test_every_request_field_has_a_documented_bound() -> None:
    """A new string, list or map in a request must come with its bound, here and in the proto."""
    missing = [name for _, method in methods() for name in unbounded_fields(method.input_type)]
    assert missing == []


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_receive_limit_covers_the_largest_valid_request(service: str) -> None:
    """Largest valid request <= the service's declared floor <= its default receive limit,
    which stays a bound."""
    settings_class = SETTINGS[service]
    default = next(
        item.default
        for item in settings_class.__dataclass_fields__.values()
        if item.name == "grpc_max_receive_message_bytes"
    )
    assert isinstance(default, int)
    largest = largest_request_bytes(service)
    assert largest <= settings_class.largest_request_bytes <= default
    assert default <= MAX_RECEIVE_MESSAGE_BYTES_CEILING


def test_the_computation_matches_a_real_maximal_message() -> None:
    """The arithmetic agrees with protobuf's own encoding for a maximal SendEmail request."""
    wide = "\U0001d11e"  # four bytes in UTF-8
    request = notification_pb2.SendEmailRequest(
        to=wide * 254,
        user_id=wide * 64,
        subject=wide * 998,
        body_text=wide * 100_000,
        body_html=wide * 500_000,
        template=wide * 64,
        template_data={wide * 63 + chr(0x10000 + index): wide * 2000 for index in range(50)},
        idempotency_key=wide * 128,
    )
    encoded, computed = request.ByteSize(), largest_bytes(request.DESCRIPTOR)
    assert encoded == computed
    assert field_size(1, 300) == 1 + 2 + 300


def test_a_receive_limit_below_the_largest_request_is_refused() -> None:
    """The setting cannot make valid requests fail, nor be unlimited."""
    floor = NotificationSettings.largest_request_bytes
    with pytest.raises(SettingsError, match="GRPC_MAX_RECEIVE_MESSAGE_BYTES: expected"):
        NotificationSettings.from_env({"GRPC_MAX_RECEIVE_MESSAGE_BYTES": str(floor - 1)})
    with pytest.raises(SettingsError, match="GRPC_MAX_RECEIVE_MESSAGE_BYTES: expected"):
        AnalyticsSettings.from_env({"GRPC_MAX_RECEIVE_MESSAGE_BYTES": "-1"})
    raised = NotificationSettings.from_env({"GRPC_MAX_RECEIVE_MESSAGE_BYTES": str(8 << 20)})
    assert raised.grpc_max_receive_message_bytes == 8 << 20


def test_bounds_name_real_fields() -> None:
    """No stale entry: every bound names a field that exists."""
    fields = set()
    for _, method in methods():
        stack = [method.input_type]
        while stack:
            message = stack.pop()
            for item in message.fields:
                fields.add(f"{message.full_name}.{item.name}")
                if item.message_type is not None:
                    stack.append(item.message_type)
    assert set(BOUNDS) <= fields


def test_the_largest_get_analytics_answer_fits_4_mib() -> None:
    """2000 buckets sharing the 16000 name counts, names of 128 characters, every count at its
    largest, and 100 top events and 100 top pages of maximal URLs and titles."""
    from google.protobuf.timestamp_pb2 import Timestamp
    from meshcore.message_size import MAX_RESPONSE_BYTES
    from zoptal.analytics.v1 import analytics_pb2 as pb
    from zoptal_analytics.service import MAX_BUCKET_ENTRIES, MAX_BUCKETS

    big = 2**63 - 1
    per_bucket = MAX_BUCKET_ENTRIES // MAX_BUCKETS

    def count(index: int) -> pb.EventCount:
        return pb.EventCount(name=f"{index:0128d}", count=big, unique_users=big)

    answer = pb.GetAnalyticsResponse(
        buckets=[
            pb.TimeBucket(
                start_time=Timestamp(seconds=253402300799, nanos=999_999_999),
                counts=[count(n) for n in range(per_bucket)],
                total_events=big,
                unique_users=big,
                other_events=big,
            )
            for _ in range(MAX_BUCKETS)
        ],
        total_events=big,
        unique_users=big,
        top_events=[count(n) for n in range(100)],
        top_pages=[
            # URLs and titles at their character bounds, 4 bytes each in UTF-8.
            pb.PageCount(
                url="\U0001f310" * 2048, title="\U0001f310" * 512, views=big, unique_users=big
            )
            for _ in range(100)
        ],
    )
    assert answer.ByteSize() <= MAX_RESPONSE_BYTES, answer.ByteSize()

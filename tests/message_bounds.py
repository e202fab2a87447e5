"""The largest request each RPC allows, computed from the bounds its proto documents.

``BOUNDS`` holds, for every string, repeated and map field of every request message, the limits
its comment states and its validator enforces. Strings count 4 bytes per character (UTF-8's
worst case: the validators count characters, and no field is refused for being non-ASCII).
``largest_request_bytes`` walks a request's descriptor and adds up the encoded size of every
field at its bound, with protobuf's own framing (tags, lengths, 10-byte negative varints).
``MESSAGE_CAPS`` are documented caps on a whole message (Analytics batches), which bind before
the field bounds do.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from meshcore.message_size import MiB, field_size

SERVICES = ("auth", "project", "billing", "notification", "analytics")
UTF8_MAX = 4


@dataclass(frozen=True)
class Text:
    chars: int
    count: int = 1
    """Entries, for a repeated string."""


@dataclass(frozen=True)
class Entries:
    """A repeated message or a map: ``count`` entries; a map's keys and values in chars."""

    count: int
    key_chars: int = 0
    value_chars: int = 0


Bound = Text | Entries

BOUNDS: dict[str, Bound] = {
    # auth
    "zoptal.auth.v1.ValidateTokenRequest.token": Text(8192),
    "zoptal.auth.v1.GetUserRequest.user_id": Text(64),
    "zoptal.auth.v1.GetUserPermissionsRequest.user_id": Text(64),
    "zoptal.auth.v1.CreateServiceAccountRequest.name": Text(63),
    "zoptal.auth.v1.CreateServiceAccountRequest.description": Text(1024),
    "zoptal.auth.v1.CreateServiceAccountRequest.permissions": Text(64, count=64),
    "zoptal.auth.v1.RegisterUserRequest.email": Text(254),
    "zoptal.auth.v1.RegisterUserRequest.password": Text(128),
    "zoptal.auth.v1.RegisterUserRequest.display_name": Text(100),
    "zoptal.auth.v1.LoginRequest.email": Text(254),
    "zoptal.auth.v1.LoginRequest.password": Text(128),
    "zoptal.auth.v1.RefreshTokenRequest.refresh_token": Text(8192),
    "zoptal.auth.v1.RevokeTokenRequest.token": Text(8192),
    "zoptal.auth.v1.IssueServiceTokenRequest.client_id": Text(64),
    "zoptal.auth.v1.IssueServiceTokenRequest.client_secret": Text(256),
    "zoptal.auth.v1.IssueServiceTokenRequest.permissions": Text(64, count=64),
    "zoptal.auth.v1.ListRevocationsRequest.cursor": Text(128),
    # project
    "zoptal.project.v1.GetProjectRequest.project_id": Text(64),
    "zoptal.project.v1.ListUserProjectsRequest.user_id": Text(64),
    "zoptal.project.v1.CreateProjectRequest.name": Text(100),
    "zoptal.project.v1.CreateProjectRequest.description": Text(2000),
    "zoptal.project.v1.CreateProjectRequest.owner_id": Text(64),
    "zoptal.project.v1.CreateProjectRequest.request_id": Text(128),
    "zoptal.project.v1.UpdateProjectRequest.project_id": Text(64),
    "zoptal.project.v1.UpdateProjectRequest.name": Text(100),
    "zoptal.project.v1.UpdateProjectRequest.description": Text(2000),
    "zoptal.project.v1.DeleteProjectRequest.project_id": Text(64),
    "zoptal.project.v1.CheckProjectAccessRequest.user_id": Text(64),
    "zoptal.project.v1.CheckProjectAccessRequest.project_id": Text(64),
    "zoptal.project.v1.AddProjectMemberRequest.project_id": Text(64),
    "zoptal.project.v1.AddProjectMemberRequest.user_id": Text(64),
    "zoptal.project.v1.RemoveProjectMemberRequest.project_id": Text(64),
    "zoptal.project.v1.RemoveProjectMemberRequest.user_id": Text(64),
    "zoptal.project.v1.ListProjectMembersRequest.project_id": Text(64),
    # billing
    "zoptal.billing.v1.GetUserSubscriptionRequest.user_id": Text(64),
    "zoptal.billing.v1.CheckSubscriptionLimitsRequest.user_id": Text(64),
    "zoptal.billing.v1.CheckSubscriptionLimitsRequest.scope_id": Text(64),
    "zoptal.billing.v1.RecordUsageRequest.user_id": Text(64),
    "zoptal.billing.v1.RecordUsageRequest.idempotency_key": Text(128),
    "zoptal.billing.v1.RecordUsageRequest.scope_id": Text(64),
    "zoptal.billing.v1.ChangeSubscriptionRequest.user_id": Text(64),
    "zoptal.billing.v1.ChangeSubscriptionRequest.plan_id": Text(64),
    "zoptal.billing.v1.ChangeSubscriptionRequest.payment_token": Text(255),
    # notification
    "zoptal.notification.v1.SendEmailRequest.to": Text(254),
    "zoptal.notification.v1.SendEmailRequest.user_id": Text(64),
    "zoptal.notification.v1.SendEmailRequest.subject": Text(998),
    "zoptal.notification.v1.SendEmailRequest.body_text": Text(100_000),
    "zoptal.notification.v1.SendEmailRequest.body_html": Text(500_000),
    "zoptal.notification.v1.SendEmailRequest.template": Text(64),
    "zoptal.notification.v1.SendEmailRequest.template_data": Entries(50, 64, 2000),
    "zoptal.notification.v1.SendEmailRequest.idempotency_key": Text(128),
    "zoptal.notification.v1.SendSMSRequest.to": Text(16),
    "zoptal.notification.v1.SendSMSRequest.user_id": Text(64),
    "zoptal.notification.v1.SendSMSRequest.body": Text(1600),
    "zoptal.notification.v1.SendSMSRequest.idempotency_key": Text(128),
    "zoptal.notification.v1.SendPushNotificationRequest.user_id": Text(64),
    "zoptal.notification.v1.SendPushNotificationRequest.device_token": Text(4096),
    "zoptal.notification.v1.SendPushNotificationRequest.title": Text(200),
    "zoptal.notification.v1.SendPushNotificationRequest.body": Text(4000),
    "zoptal.notification.v1.SendPushNotificationRequest.data": Entries(50, 64, 1000),
    "zoptal.notification.v1.SendPushNotificationRequest.idempotency_key": Text(128),
    "zoptal.notification.v1.GetNotificationHistoryRequest.user_id": Text(64),
    "zoptal.notification.v1.GetNotificationRequest.notification_id": Text(64),
    # analytics
    "zoptal.analytics.v1.Event.event_id": Text(128),
    "zoptal.analytics.v1.Event.user_id": Text(64),
    "zoptal.analytics.v1.Event.anonymous_id": Text(128),
    "zoptal.analytics.v1.Event.name": Text(128),
    "zoptal.analytics.v1.Event.properties": Entries(50, 128, 1024),
    "zoptal.analytics.v1.Event.session_id": Text(128),
    "zoptal.analytics.v1.Page.url": Text(2048),
    "zoptal.analytics.v1.Page.title": Text(512),
    "zoptal.analytics.v1.Page.referrer": Text(2048),
    "zoptal.analytics.v1.TrackEventRequest.event_id": Text(128),
    "zoptal.analytics.v1.TrackEventRequest.user_id": Text(64),
    "zoptal.analytics.v1.TrackEventRequest.anonymous_id": Text(128),
    "zoptal.analytics.v1.TrackEventRequest.name": Text(128),
    "zoptal.analytics.v1.TrackEventRequest.properties": Entries(50, 128, 1024),
    "zoptal.analytics.v1.TrackEventRequest.session_id": Text(128),
    "zoptal.analytics.v1.TrackPageViewRequest.event_id": Text(128),
    "zoptal.analytics.v1.TrackPageViewRequest.user_id": Text(64),
    "zoptal.analytics.v1.TrackPageViewRequest.anonymous_id": Text(128),
    "zoptal.analytics.v1.TrackPageViewRequest.url": Text(2048),
    "zoptal.analytics.v1.TrackPageViewRequest.title": Text(512),
    "zoptal.analytics.v1.TrackPageViewRequest.referrer": Text(2048),
    "zoptal.analytics.v1.TrackPageViewRequest.properties": Entries(50, 128, 1024),
    "zoptal.analytics.v1.TrackPageViewRequest.session_id": Text(128),
    "zoptal.analytics.v1.TrackEventsRequest.events": Entries(1000),
    "zoptal.analytics.v1.IngestEventsRequest.events": Entries(1000),
    "zoptal.analytics.v1.GetAnalyticsRequest.event_names": Text(128, count=50),
    "zoptal.analytics.v1.GetAnalyticsRequest.user_id": Text(64),
}

ANALYTICS_BATCH_CAP = 16 * MiB
MESSAGE_CAPS: dict[str, int] = {
    # Documented on the messages: 1000 maximal events would be ~235 MB, so a batch is also
    # capped by its encoded size (split batches by size as well as count).
    "zoptal.analytics.v1.TrackEventsRequest": ANALYTICS_BATCH_CAP,
    "zoptal.analytics.v1.IngestEventsRequest": ANALYTICS_BATCH_CAP,
}

_SCALAR_BYTES = {
    FieldDescriptor.TYPE_BOOL: 1,
    FieldDescriptor.TYPE_DOUBLE: 8,
    FieldDescriptor.TYPE_FIXED64: 8,
    FieldDescriptor.TYPE_SFIXED64: 8,
    FieldDescriptor.TYPE_FLOAT: 4,
    FieldDescriptor.TYPE_FIXED32: 4,
    FieldDescriptor.TYPE_SFIXED32: 4,
}
TIMESTAMP_BYTES = 6 + 5  # seconds up to 9999-12-31 (tag + 5-byte varint), nanos (tag + 4 + ..)


def methods() -> Iterator[tuple[str, MethodDescriptor]]:
    """Every RPC of every service, with the service's short name."""
    for service in SERVICES:
        module = importlib.import_module(f"zoptal.{service}.v1.{service}_pb2")
        for descriptor in module.DESCRIPTOR.services_by_name.values():
            for method in descriptor.methods:
                yield service, method


def unbounded_fields(message: Descriptor, seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """Variable-length fields reachable from ``message`` that ``BOUNDS`` does not cover."""
    for item in message.fields:
        name = f"{message.full_name}.{item.name}"
        variable = item.is_repeated or item.type in (
            FieldDescriptor.TYPE_STRING,
            FieldDescriptor.TYPE_BYTES,
        )
        if variable and name not in BOUNDS:
            yield name
        sub = item.message_type
        if (
            sub is not None
            and not sub.GetOptions().map_entry
            and sub.full_name not in seen
            and not sub.full_name.startswith("google.protobuf.")
        ):
            yield from unbounded_fields(sub, seen | {message.full_name})


def largest_bytes(message: Descriptor) -> int:
    """The encoded size of ``message`` with every field at its documented bound."""
    total = sum(_field_bytes(message, item) for item in message.fields)
    return min(total, MESSAGE_CAPS.get(message.full_name, total))


def _field_bytes(message: Descriptor, item: FieldDescriptor) -> int:
    bound = BOUNDS.get(f"{message.full_name}.{item.name}")
    number = item.number
    if item.type == FieldDescriptor.TYPE_STRING:
        assert isinstance(bound, Text), f"{message.full_name}.{item.name} has no bound"
        return bound.count * field_size(number, bound.chars * UTF8_MAX)
    if item.message_type is not None:
        if item.message_type.GetOptions().map_entry:
            assert isinstance(bound, Entries)
            entry = field_size(1, bound.key_chars * UTF8_MAX)
            entry += field_size(2, bound.value_chars * UTF8_MAX)
            return bound.count * field_size(number, entry)
        if item.message_type.full_name == "google.protobuf.Timestamp":
            one = TIMESTAMP_BYTES
        else:
            one = largest_bytes(item.message_type)
        count = bound.count if isinstance(bound, Entries) else 1
        return count * field_size(number, one)
    tag = 1 if number < 16 else 2
    # Integers and enums: a negative varint takes 10 bytes, the most any varint takes.
    return tag + _SCALAR_BYTES.get(item.type, 10)


def largest_request_bytes(service: str) -> int:
    """The largest request (unary message, or one stream message) any RPC of ``service`` allows."""
    return max(largest_bytes(method.input_type) for name, method in methods() if name == service)

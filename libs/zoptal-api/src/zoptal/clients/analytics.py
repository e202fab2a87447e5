"""AnalyticsServiceClient: events, page views, batches, the ingest stream and queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping

from meshcore.client_manager import Metadata
from meshcore.timeutil import to_timestamp

from zoptal.analytics.v1 import analytics_pb2
from zoptal.clients.base import TypedClient

__all__ = ["AnalyticsServiceClient"]


class AnalyticsServiceClient(TypedClient):
    """Typed calls to ``zoptal.analytics.v1.AnalyticsService``."""

    file_descriptor = analytics_pb2.DESCRIPTOR
    service = "analytics"
    grpc_service = "AnalyticsService"

    async def track_event(
        self,
        name: str,
        *,
        user_id: str = "",
        anonymous_id: str = "",
        properties: Mapping[str, str] | None = None,
        event_id: str = "",
        session_id: str = "",
        timestamp: dt.datetime | None = None,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> analytics_pb2.TrackEventResponse:
        request = analytics_pb2.TrackEventRequest(
            event_id=event_id,
            user_id=user_id,
            anonymous_id=anonymous_id,
            name=name,
            properties=dict(properties or {}),
            timestamp=to_timestamp(timestamp),
            session_id=session_id,
        )
        return await self._call(
            "TrackEvent", request, analytics_pb2.TrackEventResponse, timeout_ms, metadata
        )

    async def track_page_view(
        self,
        url: str,
        *,
        user_id: str = "",
        anonymous_id: str = "",
        title: str = "",
        referrer: str = "",
        properties: Mapping[str, str] | None = None,
        event_id: str = "",
        session_id: str = "",
        timestamp: dt.datetime | None = None,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> analytics_pb2.TrackPageViewResponse:
        request = analytics_pb2.TrackPageViewRequest(
            event_id=event_id,
            user_id=user_id,
            anonymous_id=anonymous_id,
            url=url,
            title=title,
            referrer=referrer,
            properties=dict(properties or {}),
            timestamp=to_timestamp(timestamp),
            session_id=session_id,
        )
        return await self._call(
            "TrackPageView", request, analytics_pb2.TrackPageViewResponse, timeout_ms, metadata
        )

    async def track_events(
        self,
        events: Iterable[analytics_pb2.Event],
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> analytics_pb2.TrackEventsResponse:
        request = analytics_pb2.TrackEventsRequest(events=list(events))
        return await self._call(
            "TrackEvents", request, analytics_pb2.TrackEventsResponse, timeout_ms, metadata
        )

    async def ingest_events(
        self,
        batches: AsyncIterable[Iterable[analytics_pb2.Event]],
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> analytics_pb2.IngestEventsResponse:
        """Client stream: each batch from ``batches`` is one message. Sent once, never
        replayed (a stream cannot be rewound), so only refusals before sending are retried."""

        async def messages() -> AsyncIterator[analytics_pb2.IngestEventsRequest]:
            async for batch in batches:
                yield analytics_pb2.IngestEventsRequest(events=list(batch))

        return await self._stream(
            "IngestEvents", messages(), analytics_pb2.IngestEventsResponse, timeout_ms, metadata
        )

    async def get_analytics(
        self,
        start_time: dt.datetime,
        end_time: dt.datetime,
        *,
        bucket: analytics_pb2.BucketSize.ValueType = analytics_pb2.BUCKET_SIZE_UNSPECIFIED,
        event_names: Iterable[str] = (),
        user_id: str = "",
        top_limit: int = 0,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> analytics_pb2.GetAnalyticsResponse:
        request = analytics_pb2.GetAnalyticsRequest(
            start_time=to_timestamp(start_time),
            end_time=to_timestamp(end_time),
            bucket=bucket,
            event_names=list(event_names),
            user_id=user_id,
            top_limit=top_limit,
        )
        return await self._call(
            "GetAnalytics", request, analytics_pb2.GetAnalyticsResponse, timeout_ms, metadata
        )

    async def get_real_time_analytics(
        self,
        window_minutes: int = 0,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> analytics_pb2.GetRealTimeAnalyticsResponse:
        request = analytics_pb2.GetRealTimeAnalyticsRequest(window_minutes=window_minutes)
        return await self._call(
            "GetRealTimeAnalytics",
            request,
            analytics_pb2.GetRealTimeAnalyticsResponse,
            timeout_ms,
            metadata,
        )

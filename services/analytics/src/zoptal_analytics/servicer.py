"""gRPC endpoints of AnalyticsService: check access, convert, call the service, reply."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import overload

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.context import require_principal
from meshcore.errors import InvalidArgument
from meshcore.idempotency import caller_scope
from meshcore.timeutil import timestamp_millis
from zoptal.analytics.v1 import analytics_pb2 as pb, analytics_pb2_grpc

from zoptal_analytics.access import own_user_id, require_reader, require_writer
from zoptal_analytics.domain import EventInput, PageInput
from zoptal_analytics.repository import NameCount
from zoptal_analytics.service import AnalyticsService, Bucket

__all__ = ["AnalyticsServicer"]

Context = grpc.aio.ServicerContext[object, object]

_BUCKETS = {
    pb.BUCKET_SIZE_MINUTE: Bucket.MINUTE,
    pb.BUCKET_SIZE_HOUR: Bucket.HOUR,
    pb.BUCKET_SIZE_DAY: Bucket.DAY,
}
MAX_CHUNKS_IN_FLIGHT = 8
"""A stream keeps this many chunks waiting for their commit; then it stops reading, and HTTP/2
flow control pushes back on the client."""


def _ms(stamp: Timestamp, present: bool, field: str) -> int:
    return timestamp_millis(stamp, field) if present else 0


def _stamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _plain(values: Mapping[str, str]) -> dict[str, str]:
    """A protobuf map as a dict; copying through the Mapping ABC is slow, so skip empty ones."""
    return dict(values) if values else {}


class _EventInputs(Sequence[EventInput]):
    """A request's events as service inputs, each converted when the service reads it, so
    conversion shares the pauses the service makes while validating a big batch. A bad field
    is named ``<field>[i].<name>``."""

    def __init__(self, events: Sequence[pb.Event], field: str) -> None:
        self._events = events
        self._field = field

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, index: int) -> EventInput: ...
    @overload
    def __getitem__(self, index: slice) -> list[EventInput]: ...
    def __getitem__(self, index: int | slice) -> EventInput | list[EventInput]:
        positions = range(len(self._events))[index]  # errors name the position in the request
        if isinstance(positions, range):
            return [self._convert(position, self._events[position]) for position in positions]
        return self._convert(positions, self._events[positions])

    def __iter__(self) -> Iterator[EventInput]:
        for index, event in enumerate(self._events):
            yield self._convert(index, event)

    def _convert(self, index: int, event: pb.Event) -> EventInput:
        try:
            return _event_input(event)
        except InvalidArgument as error:
            raise error.within(f"{self._field}[{index}]") from None


def _event_input(event: pb.Event) -> EventInput:
    """``event`` as the service's input; a bad field is named within the event."""
    # Hot path of batch ingest (once per event): fields are read only when present.
    page = None
    if event.HasField("page"):
        sent = event.page
        page = PageInput(sent.url, sent.title, sent.referrer)
    timestamp_ms = 0
    if event.HasField("timestamp"):
        timestamp_ms = timestamp_millis(event.timestamp, "timestamp")
    return EventInput(
        name=event.name,
        user_id=event.user_id,
        anonymous_id=event.anonymous_id,
        event_id=event.event_id,
        properties=_plain(event.properties),
        timestamp_ms=timestamp_ms,
        session_id=event.session_id,
        page=page,
    )


def _counts(items: list[NameCount]) -> list[pb.EventCount]:
    return [pb.EventCount(name=i.name, count=i.count, unique_users=i.unique_users) for i in items]


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, service: AnalyticsService) -> None:
        self._service = service

    async def TrackEvent(
        self, request: pb.TrackEventRequest, context: Context
    ) -> pb.TrackEventResponse:
        if request.name == "page_view":
            raise InvalidArgument("name", "'page_view' is reserved: use TrackPageView")
        event = EventInput(
            name=request.name,
            user_id=own_user_id(request.user_id),
            anonymous_id=request.anonymous_id,
            event_id=request.event_id,
            properties=_plain(request.properties),
            timestamp_ms=_ms(request.timestamp, request.HasField("timestamp"), "timestamp"),
            session_id=request.session_id,
        )
        caller = caller_scope(require_principal())
        return pb.TrackEventResponse(event_id=await self._service.track(event, caller=caller))

    async def TrackPageView(
        self, request: pb.TrackPageViewRequest, context: Context
    ) -> pb.TrackPageViewResponse:
        event = EventInput(
            name="page_view",
            user_id=own_user_id(request.user_id),
            anonymous_id=request.anonymous_id,
            event_id=request.event_id,
            properties=_plain(request.properties),
            timestamp_ms=_ms(request.timestamp, request.HasField("timestamp"), "timestamp"),
            session_id=request.session_id,
            page=PageInput(request.url, request.title, request.referrer),
        )
        try:
            event_id = await self._service.track(event, caller=caller_scope(require_principal()))
        except InvalidArgument as error:
            # The page fields sit at the top of this request: name them as the caller sent them.
            if error.field.startswith("page."):
                raise InvalidArgument(error.field.removeprefix("page."), error.problem) from None
            raise
        return pb.TrackPageViewResponse(event_id=event_id)

    async def TrackEvents(
        self, request: pb.TrackEventsRequest, context: Context
    ) -> pb.TrackEventsResponse:
        caller = caller_scope(require_writer())
        ids = await self._service.track_batch(_EventInputs(request.events, "events"), caller=caller)
        return pb.TrackEventsResponse(accepted_count=len(ids), event_ids=ids)

    async def IngestEvents(
        self, request_iterator: AsyncIterator[pb.IngestEventsRequest], context: Context
    ) -> pb.IngestEventsResponse:
        caller = caller_scope(require_writer())
        in_flight: deque[asyncio.Future[None]] = deque()
        accepted = chunks = 0
        try:
            async for chunk in request_iterator:
                records = await self._service.prepare_batch(
                    _EventInputs(chunk.events, "events"), caller=caller
                )
                if len(in_flight) >= MAX_CHUNKS_IN_FLIGHT:
                    await asyncio.shield(in_flight.popleft())
                in_flight.append(self._service.enqueue(records))
                accepted += len(records)
                chunks += 1
            while in_flight:
                await asyncio.shield(in_flight.popleft())
        finally:
            # On an error the stream ends with it; the chunks already queued still commit.
            for pending in in_flight:
                pending.add_done_callback(_consume)
        return pb.IngestEventsResponse(accepted_count=accepted, chunk_count=chunks)

    async def GetAnalytics(
        self, request: pb.GetAnalyticsRequest, context: Context
    ) -> pb.GetAnalyticsResponse:
        require_reader()
        if request.bucket != pb.BUCKET_SIZE_UNSPECIFIED and request.bucket not in _BUCKETS:
            raise InvalidArgument("bucket", f"unknown bucket size {request.bucket}")
        report = await self._service.report(
            start_ms=_ms(request.start_time, request.HasField("start_time"), "start_time"),
            end_ms=_ms(request.end_time, request.HasField("end_time"), "end_time"),
            bucket=_BUCKETS.get(request.bucket),
            names=list(request.event_names),
            user_id=request.user_id,
            top_limit=request.top_limit,
            bucket_names_limit=request.bucket_names_limit,
        )
        return pb.GetAnalyticsResponse(
            buckets=[
                pb.TimeBucket(
                    start_time=_stamp(bucket.start_ms),
                    counts=_counts(bucket.names),
                    total_events=bucket.total,
                    unique_users=bucket.unique_users,
                    other_events=bucket.other_events,
                )
                for bucket in report.buckets
            ],
            total_events=report.total_events,
            unique_users=report.unique_users,
            top_events=_counts(report.top_events),
            top_pages=[
                pb.PageCount(url=p.url, title=p.title, views=p.views, unique_users=p.unique_users)
                for p in report.top_pages
            ],
        )

    async def GetRealTimeAnalytics(
        self, request: pb.GetRealTimeAnalyticsRequest, context: Context
    ) -> pb.GetRealTimeAnalyticsResponse:
        require_reader()
        snapshot = await self._service.realtime(request.window_minutes)
        return pb.GetRealTimeAnalyticsResponse(
            active_users=snapshot.active_users,
            total_events=snapshot.total_events,
            events_per_minute=[
                pb.MinuteCount(minute_start=_stamp(start), count=count)
                for start, count in zip(
                    snapshot.minute_starts_ms, snapshot.events_per_minute, strict=True
                )
            ],
            top_events=_counts(snapshot.top_events),
            window_minutes=snapshot.window_minutes,
            generated_at=_stamp(snapshot.generated_at_ms),
        )


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()

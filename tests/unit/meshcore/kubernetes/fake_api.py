"""A scripted Kubernetes API behind ``httpx.MockTransport``, driven step by step by the tests.

List requests answer from ``FakeApi.slices``; each watch request becomes a ``WatchStream`` the
test feeds event by event, ends, or drops. Nothing here waits on real time: tests move the
discovery's ``FakeClock`` and yield to the loop with ``until``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import httpx

NAMESPACE = "zoptal"


def endpoint(
    ip: str,
    pod: str,
    *,
    ready: bool | None = True,
    terminating: bool | None = None,
    zone: str = "eu-west-1a",
    node: str = "node-1",
) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    if ready is not None:
        conditions["ready"] = ready
    if terminating is not None:
        conditions["terminating"] = terminating
    return {
        "addresses": [ip],
        "conditions": conditions,
        "nodeName": node,
        "zone": zone,
        "targetRef": {"kind": "Pod", "name": pod, "namespace": NAMESPACE},
    }


def endpoint_slice(
    name: str,
    endpoints: Sequence[Mapping[str, Any]],
    *,
    service: str = "auth-service",
    ports: Sequence[tuple[str, int]] = (("grpc", 4000), ("metrics", 9400)),
    resource_version: str = "1",
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "resourceVersion": resource_version,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": list(endpoints),
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
    }


class WatchStream:
    """One open watch: ``send`` events, then ``end`` it cleanly or ``drop`` the connection."""

    def __init__(self, request: httpx.Request) -> None:
        self.request = request
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

    @property
    def params(self) -> httpx.QueryParams:
        return self.request.url.params

    def send(self, kind: str, obj: Mapping[str, Any]) -> None:
        self._queue.put_nowait(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    def end(self) -> None:
        self._queue.put_nowait(None)

    def drop(self) -> None:
        self._queue.put_nowait(httpx.ReadError("connection reset by peer"))

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class FakeApi:
    """The API server's EndpointSlice list and watch, scripted by the test."""

    def __init__(self) -> None:
        self.slices: dict[str, dict[str, Any]] = {}
        self.resource_version = "100"
        self.requests: list[httpx.Request] = []
        self.failures: deque[tuple[int, Any]] = deque()
        """Answers for the next requests, before anything else: (status, JSON body)."""
        self.streams: list[WatchStream] = []

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    @property
    def lists(self) -> list[httpx.Request]:
        return [r for r in self.requests if "watch" not in r.url.params]

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            status, body = self.failures.popleft()
            return httpx.Response(status, json=body)
        if request.url.params.get("watch") == "true":
            stream = WatchStream(request)
            self.streams.append(stream)
            return httpx.Response(200, content=stream.body())
        return httpx.Response(
            200,
            json={
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSliceList",
                "metadata": {"resourceVersion": self.resource_version},
                "items": list(self.slices.values()),
            },
        )


def status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


async def until(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Yield to the event loop (no time passes) until ``predicate`` holds."""
    for _ in range(2_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{what} never became true")


async def idle() -> None:
    """Let every ready task run to its next real wait."""
    for _ in range(200):
        await asyncio.sleep(0)

"""Hostile call metadata beside a genuine token: trace, request-id and auth headers gone wrong.

meshcore's outer layers parse these headers on every call, before the handler; a parse error
there would surface as INTERNAL or UNKNOWN for every RPC at once.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fuzz.calls import acceptable_for_client_input, call, describe, leaks_internals
from tests.fuzz.catalogue import ALL_RPCS
from tests.fuzz.conftest import Mesh

HOSTILE_HEADERS: dict[str, list[tuple[str, str]]] = {
    "garbage traceparent": [("traceparent", "not-a-trace-context")],
    "all-zero traceparent": [("traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01")],
    "future-version traceparent": [("traceparent", "ff-" + "a" * 32 + "-" + "b" * 16 + "-zz")],
    "oversized traceparent": [("traceparent", "00-" + "a" * 4000)],
    "tracestate junk": [("tracestate", "=,=,,==," * 50)],
    "long request id": [("x-request-id", "r" * 4000)],
    # grpc clients refuse control characters in metadata themselves; these are the odd but legal.
    "odd characters in request id": [("x-request-id", "id with spaces;'\"<>{}%n%s")],
    "two request ids": [("x-request-id", "one"), ("x-request-id", "two")],
    "two authorization headers": [("authorization", "Bearer garbage")],
    "deadline header junk": [("x-deadline", "soon"), ("x-deadline-ms", "-1")],
    "empty service token": [("x-service-token", "")],
}


@pytest.mark.parametrize("headers", sorted(HOSTILE_HEADERS))
def test_hostile_metadata_gets_no_internal_unknown_or_trace_on_any_rpc(
    mesh: Mesh, headers: str
) -> None:
    """With odd headers beside the admin's token every RPC still answers a client status."""
    metadata = (*mesh.admin.metadata, *HOSTILE_HEADERS[headers])
    wrong = []
    for rpc in ALL_RPCS:
        request: Any = [] if rpc.client_streaming else rpc.request_class()
        outcome = call(mesh.channel(rpc), rpc, request, metadata)
        if not acceptable_for_client_input(outcome) or leaks_internals(outcome):
            wrong.append(describe(rpc, request, outcome))
    assert not wrong, "\n".join(wrong)

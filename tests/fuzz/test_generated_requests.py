"""Every RPC of every service, fuzzed with hostile messages generated from its descriptor.

DESIGN.md section 5: a client mistake is never answered INTERNAL or UNKNOWN, never with a stack
trace, and never hangs or brings a server down. Callers vary (admin, ordinary user, a service
token holding every permission) so requests get past authorization into validation and domain code.
"""

from __future__ import annotations

import os
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tests.fuzz.calls import acceptable_for_client_input, call, describe, leaks_internals
from tests.fuzz.catalogue import ALL_RPCS, SERVICE_MODULES, Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.messages import message_strategy

# FUZZ_MAX_EXAMPLES=500 for a longer hunt; the default keeps the suite well under three minutes.
FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", "30")),
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def _caller_metadata(mesh: Mesh, who: str) -> Any:
    return {
        "admin": mesh.admin.metadata,
        "user": mesh.bob.metadata,
        "service": mesh.service_metadata,
    }[who]


def _holds_unrepresentable_timestamp(message: Any) -> bool:
    """Whether any Timestamp inside ``message`` is one protobuf cannot convert to a datetime."""
    if isinstance(message, list):
        return any(_holds_unrepresentable_timestamp(item) for item in message)
    if message.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
        try:
            message.ToDatetime()
        except (ValueError, OverflowError):
            return True
        return False
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        items = list(value) if field.is_repeated else [value]
        if any(_holds_unrepresentable_timestamp(item) for item in items):
            return True
    return False


@pytest.mark.parametrize("rpc", ALL_RPCS, ids=str)
@FUZZ_SETTINGS
@given(data=st.data())
def test_generated_requests_get_no_internal_unknown_or_stack_trace(
    mesh: Mesh, rpc: Rpc, data: st.DataObject
) -> None:
    """A generated request is answered with a client-mistake status and no internals."""
    who = data.draw(st.sampled_from(["admin", "user", "service"]), label="caller")
    messages = message_strategy(rpc.method.input_type, mesh.known_ids)
    request = data.draw(
        st.lists(messages, max_size=3) if rpc.client_streaming else messages, label="request"
    )
    # Reported bug, pinned field by field (strict xfail) in test_timestamps.py: Analytics answers
    # INTERNAL to such timestamps. Drop this filter when that test starts passing.
    assume(not _holds_unrepresentable_timestamp(request))
    outcome = call(mesh.channel(rpc), rpc, request, _caller_metadata(mesh, who))
    assert acceptable_for_client_input(outcome), describe(rpc, request, outcome)
    assert leaks_internals(outcome) is None, describe(rpc, request, outcome)


def test_fuzzing_covers_every_rpc_of_every_service() -> None:
    """Every method in the generated descriptors is in the fuzzed set (none silently skipped)."""
    declared = {
        f"/{service.full_name}/{method.name}"
        for module in SERVICE_MODULES.values()
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert {rpc.full_name for rpc in ALL_RPCS} == declared
    assert len(declared) >= 36


@pytest.mark.parametrize("service", sorted(SERVICE_MODULES))
def test_every_service_still_serving_after_fuzzing(mesh: Mesh, service: str) -> None:
    """After the fuzzing above, each server still answers and reports SERVING."""
    stub = health_pb2_grpc.HealthStub(mesh.channels[service])
    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert mesh.channels[service] is not None
    state = grpc.channel_ready_future(mesh.channels[service])
    state.result(timeout=10)

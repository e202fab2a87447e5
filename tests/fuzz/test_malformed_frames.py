"""Raw request bodies that no generated stub would send, on every RPC of every service.

The bytes go through a generic channel call with no serializer, so they reach grpc exactly as
given. Bytes that happen to decode are an ordinary (odd) request; bytes that cannot decode are a
client mistake that DESIGN.md section 5 says must be INVALID_ARGUMENT.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fuzz.calls import Outcome, acceptable_for_client_input, call_raw, leaks_internals
from tests.fuzz.catalogue import ALL_RPCS, Rpc
from tests.fuzz.conftest import Mesh

# Each of these breaks the protobuf wire format whatever the message type.
UNDECODABLE_FRAMES = {
    "truncated varint": b"\x08\xff",
    "length beyond the frame": b"\x0a\xff\xff\xff\x0f" + b"x" * 8,
    "wire type 7": b"\x0f\x01",
    "unterminated group": b"\x0b\x08\x01",
}


def _decodes(rpc: Rpc, frame: bytes) -> bool:
    try:
        rpc.request_class.FromString(frame)
    except DecodeError:
        return False
    return True


def _describe(rpc: Rpc, frame: bytes, outcome: Outcome) -> str:
    return f"{rpc} <- {frame[:80]!r} ({len(frame)} bytes): {outcome.code.name} {outcome.details!r}"


@pytest.mark.parametrize("rpc", ALL_RPCS, ids=str)
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frame=st.one_of(st.binary(max_size=64), st.binary(min_size=1_000, max_size=20_000)))
def test_random_frames_get_a_client_status_and_undecodable_ones_invalid_argument(
    mesh: Mesh, rpc: Rpc, frame: bytes
) -> None:
    """Random bytes get a client status and no internals: INVALID_ARGUMENT if they do not decode.

    A hang fails too: the call's deadline ends it with DEADLINE_EXCEEDED, which neither allows.
    """
    outcome = call_raw(mesh.channel(rpc), rpc, frame, mesh.admin.metadata)
    if _decodes(rpc, frame):
        assert acceptable_for_client_input(outcome), _describe(rpc, frame, outcome)
    else:
        assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, _describe(rpc, frame, outcome)
    assert leaks_internals(outcome) is None, _describe(rpc, frame, outcome)


def test_every_frame_in_the_undecodable_set_really_fails_to_decode() -> None:
    """The frames below are undecodable for every request type (else the test proves nothing)."""
    decodable = [
        f"{rpc}: {name}"
        for rpc in ALL_RPCS
        for name, frame in UNDECODABLE_FRAMES.items()
        if _decodes(rpc, frame)
    ]
    assert not decodable


@pytest.mark.parametrize("rpc", ALL_RPCS, ids=str)
def test_undecodable_frame_is_invalid_argument(mesh: Mesh, rpc: Rpc) -> None:
    """A body that is not the request type's wire format gets INVALID_ARGUMENT, no internals."""
    wrong: dict[str, Any] = {}
    for name, frame in UNDECODABLE_FRAMES.items():
        outcome = call_raw(mesh.channel(rpc), rpc, frame, mesh.admin.metadata)
        if outcome.code != grpc.StatusCode.INVALID_ARGUMENT or leaks_internals(outcome):
            wrong[name] = (outcome.code.name, outcome.details)
    assert not wrong, f"{rpc}: {wrong}"

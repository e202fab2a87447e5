"""The extremes of every scalar field of every RPC, one at a time, on SQLite and on PostgreSQL.

Issue 16 and DESIGN.md section 5: every number is checked before arithmetic or storage. Each
request starts as a valid one from tests/fuzz/baselines.py (sent first, and it must be OK), then
one scalar field (walked from the descriptors: nested, repeated, map, oneof and Timestamp fields
included) takes each extreme its type admits: integer minimum and maximum, -1, 0, 2**53+1,
values past 32 and 64 bits, unknown enum values, Timestamps outside 0001-9999 and nanos outside
a second, strings that look like huge numbers or cursors. The answer must be a client-mistake
status, never INTERNAL, UNKNOWN or DATA_LOSS, never naming a Python exception or type, and an
INVALID_ARGUMENT must name the field. PostgreSQL runs the same pass: its integer, varchar and
timestamp errors are where an unchecked value turns into INTERNAL.

Numbers, enums and timestamps get every edge; each string field gets the strings issue 16 names
and a sample of ``EDGE_STRINGS_SAMPLED`` (``EDGE_STRINGS_SAMPLE`` of them, default 3, the same ones
every run; ``EDGE_STRINGS_SAMPLE=all`` sends them all), which keeps the pass near 1,000 calls per
database.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.fuzz.baselines import BASELINES, Scene, prepare_scene
from tests.fuzz.calls import Outcome, acceptable_for_client_input, call, describe, leaks_internals
from tests.fuzz.catalogue import ALL_RPCS, Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.edges import (
    EDGE_STRINGS_ALWAYS,
    EDGE_STRINGS_SAMPLED,
    Edge,
    edges_of,
    scalar_paths,
)

NEVER = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})
_SAMPLE = os.environ.get("EDGE_STRINGS_SAMPLE", "3")
_STRINGS_SAMPLED = len(EDGE_STRINGS_SAMPLED) if _SAMPLE == "all" else int(_SAMPLE)


def _edges(rpc: Rpc) -> Iterator[Edge]:
    sampler = random.Random(str(rpc))  # deterministic: the same sample every run
    descriptor = rpc.method.input_type
    for path in scalar_paths(descriptor):
        values = edges_of(path)
        if path.scalar.type == path.scalar.TYPE_STRING:
            sampled = sampler.sample(EDGE_STRINGS_SAMPLED, _STRINGS_SAMPLED)
            values = [*EDGE_STRINGS_ALWAYS, *sampled]
        for value in values:
            yield Edge(path, value)


def _send(scene: Scene, rpc: Rpc, edge: Edge | None) -> tuple[Any, Outcome]:
    baseline = BASELINES[str(rpc)]
    request = baseline.build(scene)
    if edge is not None:
        if rpc.client_streaming:
            request = [edge.path.applied(request[0], edge.value), *request[1:]]
        else:
            request = edge.path.applied(request, edge.value)
    outcome = call(scene.mesh.channel(rpc), rpc, request, scene.metadata(baseline.caller))
    return request, outcome


def _fault(edge: Edge, outcome: Outcome) -> str | None:
    """What is wrong with the answer to ``edge``, or None."""
    if outcome.code in NEVER or not acceptable_for_client_input(outcome):
        return f"{outcome.code.name} is not an answer to a client mistake"
    leaked = leaks_internals(outcome)
    if leaked is not None:
        return f"the reply shows internals: {leaked!r}"
    if outcome.code == grpc.StatusCode.INVALID_ARGUMENT and edge.path.named not in outcome.details:
        return f"INVALID_ARGUMENT does not name {edge.path.named!r}"
    return None


def _edge_pass(scene: Scene, rpc: Rpc) -> None:
    request, outcome = _send(scene, rpc, None)
    assert outcome.code == grpc.StatusCode.OK, "baseline refused: " + describe(
        rpc, request, outcome
    )
    faults = []
    for edge in _edges(rpc):
        request, outcome = _send(scene, rpc, edge)
        fault = _fault(edge, outcome)
        if fault is not None:
            faults.append(f"{edge}: {fault}\n  {describe(rpc, request, outcome)}")
    assert not faults, f"{len(faults)} edge values mishandled:\n" + "\n".join(faults)


@pytest.fixture(scope="module")
def scene(mesh: Mesh) -> Scene:
    return prepare_scene(mesh)


@pytest.fixture(scope="module")
def postgres_scene(postgres_mesh: Mesh) -> Scene:
    return prepare_scene(postgres_mesh)


def test_every_rpc_has_a_baseline() -> None:
    """A new RPC needs a valid request in baselines.py before its edges can be sent."""
    assert set(BASELINES) == {str(rpc) for rpc in ALL_RPCS}


def test_the_walk_reaches_nested_repeated_map_and_timestamp_fields() -> None:
    """The descriptor walk finds the fields the edge pass exists for (not only top-level ones)."""
    rpc = next(r for r in ALL_RPCS if str(r) == "analytics.TrackEvents")
    found = {str(path) for path in scalar_paths(rpc.method.input_type)}
    assert {
        "events[0].timestamp.seconds",
        "events[0].timestamp.nanos",
        "events[0].properties{key}",
        "events[0].properties{value}",
        "events[0].page.url",
    } <= found


@pytest.mark.parametrize("rpc", ALL_RPCS, ids=str)
def test_edge_values_get_a_client_mistake_status_naming_the_field(scene: Scene, rpc: Rpc) -> None:
    """Every extreme of every field of ``rpc``, on SQLite."""
    _edge_pass(scene, rpc)


@pytest.mark.postgres
@pytest.mark.parametrize("rpc", ALL_RPCS, ids=str)
def test_edge_values_on_postgres_get_a_client_mistake_status_naming_the_field(
    postgres_scene: Scene, rpc: Rpc
) -> None:
    """The same extremes with every service on PostgreSQL."""
    _edge_pass(postgres_scene, rpc)

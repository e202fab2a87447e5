"""One fuzzing step, shared by the SQLite suite and the PostgreSQL variant."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st

from tests.fuzz.calls import acceptable_for_client_input, call, describe, leaks_internals
from tests.fuzz.catalogue import Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.messages import message_strategy

__all__ = ["fuzz_settings", "send_one_generated_request"]


def fuzz_settings(default_examples: int) -> settings:
    """Bounded runs; ``FUZZ_MAX_EXAMPLES=500`` overrides the count for a longer hunt."""
    return settings(
        max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", str(default_examples))),
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


def send_one_generated_request(mesh: Mesh, rpc: Rpc, data: st.DataObject) -> None:
    """Draw a caller and a hostile request, send it, and judge the answer."""
    who = data.draw(st.sampled_from(["admin", "user", "service"]), label="caller")
    messages = message_strategy(rpc.method.input_type, mesh.known_ids)
    request = data.draw(
        st.lists(messages, max_size=3) if rpc.client_streaming else messages, label="request"
    )
    outcome = call(mesh.channel(rpc), rpc, request, _caller_metadata(mesh, who))
    assert acceptable_for_client_input(outcome), describe(rpc, request, outcome)
    assert leaks_internals(outcome) is None, describe(rpc, request, outcome)

"""One fuzzing step, shared by the SQLite suite and the PostgreSQL variant."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, assume, settings, strategies as st

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


def holds_nul(message: Any) -> bool:
    """Whether any string inside ``message`` (map keys and values included) holds U+0000."""
    if isinstance(message, list):
        return any(holds_nul(item) for item in message)
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            items = [*value.keys(), *value.values()]
        else:
            items = list(value) if field.is_repeated else [value]
        for item in items:
            if isinstance(item, str) and "\x00" in item:
                return True
            if hasattr(item, "ListFields") and holds_nul(item):
                return True
    return False


def send_one_generated_request(
    mesh: Mesh, rpc: Rpc, data: st.DataObject, *, skip_nul: bool = False
) -> None:
    """Draw a caller and a hostile request, send it, and judge the answer.

    ``skip_nul`` drops requests holding U+0000: on PostgreSQL that is a reported bug pinned
    field by field in test_nul_characters.py (drop the flag once that test passes).
    """
    who = data.draw(st.sampled_from(["admin", "user", "service"]), label="caller")
    messages = message_strategy(rpc.method.input_type, mesh.known_ids)
    request = data.draw(
        st.lists(messages, max_size=3) if rpc.client_streaming else messages, label="request"
    )
    assume(not (skip_nul and holds_nul(request)))
    outcome = call(mesh.channel(rpc), rpc, request, _caller_metadata(mesh, who))
    assert acceptable_for_client_input(outcome), describe(rpc, request, outcome)
    assert leaks_internals(outcome) is None, describe(rpc, request, outcome)

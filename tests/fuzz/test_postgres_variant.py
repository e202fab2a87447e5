"""The generated-request fuzzing again, with every service on the real PostgreSQL.

PostgreSQL is stricter than SQLite (NUL characters in text, integer and varchar bounds), so
inputs SQLite shrugs off can surface as database errors here.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from tests.fuzz.catalogue import ALL_RPCS, Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.fuzzing import fuzz_settings, send_one_generated_request

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("rpc", ALL_RPCS, ids=str)
@fuzz_settings(12)
@given(data=st.data())
def test_generated_requests_on_postgres_get_no_internal_unknown_or_stack_trace(
    postgres_mesh: Mesh, rpc: Rpc, data: st.DataObject
) -> None:
    """On PostgreSQL too, a generated request gets a client-mistake status and no internals."""
    send_one_generated_request(postgres_mesh, rpc, data)

"""InterceptorChain fuses admissions and observers, with the same effects as nesting them."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import pytest
from meshcore.interceptors import ErrorMappingInterceptor, InterceptorChain, RpcMethod
from meshcore.interceptors.base import ServerInterceptor
from meshcore.interceptors.hooks import AdmissionInterceptor, CallRecord, ObservingInterceptor

from tests.unit.meshcore.interceptors.interceptor_testkit import EchoFactory, settle


class Journal:
    def __init__(self) -> None:
        self.entries: list[str] = []


class Watcher(ObservingInterceptor):
    def __init__(self, name: str, journal: Journal) -> None:
        super().__init__()
        self.name, self.journal = name, journal

    def start(self, context: Any, rpc: RpcMethod, record: CallRecord) -> str:
        self.journal.entries.append(f"{self.name}:start")
        return self.name

    def finish(self, state: str, record: CallRecord, context: Any) -> None:
        self.journal.entries.append(
            f"{state}:finish:{record.code}:{record.messages_received}/{record.messages_sent}"
        )


class Gate(AdmissionInterceptor):
    def __init__(self, name: str, journal: Journal) -> None:
        super().__init__()
        self.name, self.journal = name, journal

    def admit(self, context: Any, rpc: RpcMethod) -> None:
        self.journal.entries.append(f"{self.name}:admit")


class Wrapper(ServerInterceptor):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    async def intercept(self, method: Any, request: Any, context: Any, rpc: RpcMethod) -> Any:
        self.journal.entries.append("wrapper:before")
        return await method(request, context)


async def test_fused_layers_run_in_nesting_order(echo: EchoFactory) -> None:
    """Gates, watchers (started outer first, finished inner first), then nested layers."""
    journal = Journal()
    chain = InterceptorChain(
        [
            Gate("context", journal),
            Watcher("outer", journal),
            Watcher("inner", journal),
            Gate("auth", journal),
            Wrapper(journal),
            Watcher("nested", journal),
            ErrorMappingInterceptor(),
        ]
    )
    client = await echo([chain])
    await client.unary(b"x")
    await settle()
    assert journal.entries == [
        "context:admit",
        "outer:start",
        "inner:start",
        "auth:admit",
        "wrapper:before",
        "nested:start",
        "nested:finish:OK:1/1",
        "inner:finish:OK:1/1",
        "outer:finish:OK:1/1",
    ]


async def test_watchers_see_a_streams_messages_and_final_status(echo: EchoFactory) -> None:
    """One stream wrapper counts messages for every watcher and reports the mapped status."""
    journal = Journal()
    client = await echo([InterceptorChain([Watcher("w", journal), ErrorMappingInterceptor()])])
    with pytest.raises(grpc.aio.AioRpcError):
        [reply async for reply in client.server_stream(b"invalid")]
    await settle()
    assert journal.entries == ["w:start", "w:finish:INVALID_ARGUMENT:1/2"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"invalid", "INVALID_ARGUMENT"), (b"boom", "INTERNAL")],
)
async def test_error_mapping_fused_into_the_chain_maps_what_a_unary_handler_raises(
    echo: EchoFactory, payload: bytes, code: str
) -> None:
    """Innermost error mapping runs inside the fused coroutine: the client and the watchers
    get the mapped status, and nothing internal leaks into the reply."""
    journal = Journal()
    client = await echo([InterceptorChain([Watcher("w", journal), ErrorMappingInterceptor()])])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(payload)
    await settle()
    assert raised.value.code().name == code
    assert "hunter2" not in (raised.value.details() or "")
    assert journal.entries == ["w:start", f"w:finish:{code}:1/0"]


class BrokenGate(AdmissionInterceptor):
    """An admission check with a bug: it raises something no one maps to a status."""

    def admit(self, context: Any, rpc: RpcMethod) -> None:
        raise RecursionError("maximum recursion depth exceeded (hunter2)")


async def test_an_unexpected_error_in_an_admission_check_is_internal_not_unknown(
    echo: EchoFactory,
) -> None:
    """A check that breaks (as the auth layer did on a token nested too deep for json) ends the
    call INTERNAL with a correlation id: not grpc's UNKNOWN naming the Python exception."""
    journal = Journal()
    chain = InterceptorChain([Watcher("w", journal), BrokenGate(), ErrorMappingInterceptor()])
    client = await echo([chain])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x")
    await settle()
    details = raised.value.details() or ""
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "correlation id" in details
    assert "RecursionError" not in details
    assert "hunter2" not in details
    assert journal.entries == ["w:start", "w:finish:INTERNAL:1/0"]

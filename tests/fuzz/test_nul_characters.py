"""A NUL character in any string field of an otherwise valid request, on SQLite and PostgreSQL.

Protobuf strings may hold U+0000; PostgreSQL text may not (asyncpg raises
CharacterNotInRepertoireError). Found by the PostgreSQL fuzzing variant; these tests spoil one
string field at a time so every field that reaches the database unchecked is named.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from zoptal.auth.v1 import auth_pb2 as auth

from tests.fuzz.calls import call, leaks_internals
from tests.fuzz.catalogue import ALL_RPCS, Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.targets import CASES, Victim
from tests.mesh import PASSWORD

RPCS = {str(rpc): rpc for rpc in ALL_RPCS}
SERVICE_ONLY = {"billing.RecordUsage", "auth.ListRevocations"}
# Valid requests for the RPCs that do not aim at a user's things (see targets.CASES for the rest).
OTHERS: dict[str, Any] = {
    "auth.ValidateToken": lambda v: auth.ValidateTokenRequest(token=v.spare_token),
    "auth.CreateServiceAccount": lambda v: auth.CreateServiceAccountRequest(
        name="nul-probe", description="probe", permissions=["user:read"]
    ),
    "auth.RegisterUser": lambda v: auth.RegisterUserRequest(
        email=f"nul-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD, display_name="Nul"
    ),
    "auth.Login": lambda v: auth.LoginRequest(email="alice@example.com", password=PASSWORD),
    "auth.RefreshToken": lambda v: auth.RefreshTokenRequest(refresh_token="rt_" + "a" * 43),
    "auth.IssueServiceToken": lambda v: auth.IssueServiceTokenRequest(
        client_id="sa_probe", client_secret="secret", permissions=["user:read"]
    ),
    "auth.ListRevocations": lambda v: auth.ListRevocationsRequest(cursor="0.0.0"),
}
ALL_CASES = {**CASES, **OTHERS}


def _string_paths(message: Any, prefix: str = "") -> Iterator[tuple[str, Any, FieldDescriptor]]:
    """(path, containing message, field) for every string field, into set or empty submessages."""
    for field in message.DESCRIPTOR.fields:
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            yield path, message, field
        elif field.message_type is not None:
            if field.is_repeated:
                items = getattr(message, field.name)
                if items:
                    yield from _string_paths(items[0], f"{path}[0].")
            elif field.message_type.full_name != "google.protobuf.Timestamp":
                yield from _string_paths(getattr(message, field.name), f"{path}.")
        elif field.type == FieldDescriptor.TYPE_STRING:
            yield path, message, field


def _spoil(message: Any, field: FieldDescriptor) -> None:
    """Put a NUL inside the field's value (keeping the rest, so format checks still apply)."""
    value = getattr(message, field.name)
    if field.message_type is not None:  # map<string, string>
        value["k\x00"] = "v\x00"
    elif field.is_repeated:
        if value:
            value[0] = value[0][:1] + "\x00" + value[0][1:]
        else:
            value.append("a\x00b")
    else:
        setattr(message, field.name, (value[:1] + "\x00" + value[1:]) if value else "a\x00b")


def _spoiled_variants(request: Any) -> Iterator[tuple[str, Any]]:
    single = request[0] if isinstance(request, list) else request
    for index, (path, _, _) in enumerate(list(_string_paths(single))):
        copy = type(single).FromString(single.SerializeToString())
        _, target, field = list(_string_paths(copy))[index]
        _spoil(target, field)
        yield path, [copy] if isinstance(request, list) else copy


def _wrong_answers(mesh: Mesh, case: str) -> list[str]:
    rpc: Rpc = RPCS[case]
    victim = Victim(
        mesh.alice.user_id,
        mesh.alice.access_token,
        mesh.alice_project_id,
        mesh.alice_notification_id,
    )
    metadata = mesh.service_metadata if case in SERVICE_ONLY else mesh.admin.metadata
    wrong = []
    for path, request in _spoiled_variants(ALL_CASES[case](victim)):
        outcome = call(mesh.channel(rpc), rpc, request, metadata)
        field_name = re.sub(r"\[.*?\]", "", path).split(".")[-1]
        named = outcome.details is not None and field_name in outcome.details
        if outcome.code != grpc.StatusCode.INVALID_ARGUMENT or not named:
            wrong.append(f"{case} {path}: {outcome.code.name} {outcome.details!r}")
        elif leaks_internals(outcome):
            wrong.append(f"{case} {path}: leaks internals {outcome.details!r}")
    return wrong


def test_every_rpc_with_a_string_field_has_a_valid_request() -> None:
    """A new RPC whose request has a string field must get a valid request in ALL_CASES."""
    with_strings = {
        str(rpc) for rpc in ALL_RPCS if any(True for _ in _string_paths(rpc.request_class()))
    }
    assert with_strings - set(ALL_CASES) == set()


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_nul_in_any_string_field_on_sqlite_is_invalid_argument_naming_it(
    mesh: Mesh, case: str
) -> None:
    """On SQLite a NUL in any string field is INVALID_ARGUMENT naming that field."""
    wrong = _wrong_answers(mesh, case)
    assert not wrong, "\n".join(wrong)


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_nul_in_any_string_field_on_postgres_is_invalid_argument_naming_it(
    postgres_mesh: Mesh, case: str
) -> None:
    """On PostgreSQL (which cannot store U+0000) it is the same INVALID_ARGUMENT, not INTERNAL."""
    wrong = _wrong_answers(postgres_mesh, case)
    assert not wrong, "\n".join(wrong)

"""meshcore decodes requests itself: malformed bodies and NUL characters are the caller's fault."""

from __future__ import annotations

import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from grpc_health.v1 import health_pb2
from meshcore.errors import InvalidArgument
from meshcore.interceptors.decoding import decode_request, nul_field_path


def test_valid_body_decodes_to_its_message() -> None:
    """A well-formed body comes back as the request message."""
    raw = health_pb2.HealthCheckRequest(service="zoptal.auth.v1.AuthService").SerializeToString()
    request = decode_request(raw, health_pb2.HealthCheckRequest.FromString)
    assert request.service == "zoptal.auth.v1.AuthService"


def test_corrupt_body_is_invalid_argument_naming_the_message_type() -> None:
    """Bytes that are not the wire format answer INVALID_ARGUMENT, never a parser exception."""
    with pytest.raises(InvalidArgument) as raised:
        decode_request(b"\x0a\xff\xff\xff", health_pb2.HealthCheckRequest.FromString)
    assert raised.value.field == "request"
    assert "grpc.health.v1.HealthCheckRequest" in raised.value.problem


def test_nul_in_a_string_field_names_the_field() -> None:
    """U+0000 anywhere in a string is refused with the field's name."""
    raw = health_pb2.HealthCheckRequest(service="auth\x00").SerializeToString()
    with pytest.raises(InvalidArgument) as raised:
        decode_request(raw, health_pb2.HealthCheckRequest.FromString)
    assert raised.value.field == "service"


def test_zero_bytes_that_are_not_text_pass() -> None:
    """A 0x00 byte in a number is no reason to refuse: only strings are checked."""
    raw = struct_pb2.Value(number_value=0.5).SerializeToString()  # a double: six zero bytes
    assert b"\x00" in raw
    assert decode_request(raw, struct_pb2.Value.FromString).number_value == 0.5


def test_nul_paths_reach_repeated_and_map_fields() -> None:
    """Repeated strings give their index, map values their key, nested messages their path."""
    assert nul_field_path(field_mask_pb2.FieldMask(paths=["a", "b\x00"])) == "paths[1]"
    nested = struct_pb2.Struct()
    nested.update({"outer": {"inner": "x\x00"}})
    assert nul_field_path(nested) == "fields['outer'].struct_value.fields['inner'].string_value"
    clean = struct_pb2.Struct()
    clean.update({"outer": {"inner": "x"}})
    assert nul_field_path(clean) is None

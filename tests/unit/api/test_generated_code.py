"""The generated API code is current, importable, and exposes every RPC of DESIGN.md §3."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import MethodDescriptor

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "generate_protos.py"

EXPECTED_RPCS: dict[str, set[str]] = {
    "auth": {
        "ValidateToken",
        "GetUser",
        "GetUserPermissions",
        "CreateServiceAccount",
        "HealthCheck",
        "RegisterUser",
        "Login",
        "RefreshToken",
        "RevokeToken",
        "IssueServiceToken",
        "GetJwks",
        "ListRevocations",
    },
    "project": {
        "GetProject",
        "ListUserProjects",
        "CreateProject",
        "UpdateProject",
        "CheckProjectAccess",
        "DeleteProject",
        "AddProjectMember",
        "RemoveProjectMember",
        "ListProjectMembers",
    },
    "billing": {
        "GetUserSubscription",
        "CheckSubscriptionLimits",
        "RecordUsage",
        "GetSubscriptionPlans",
        "ChangeSubscription",
    },
    "notification": {
        "SendEmail",
        "SendSMS",
        "SendPushNotification",
        "GetNotificationHistory",
        "GetNotification",
    },
    "analytics": {
        "TrackEvent",
        "TrackPageView",
        "TrackEvents",
        "IngestEvents",
        "GetAnalytics",
        "GetRealTimeAnalytics",
    },
}

SERVICE_NAMES = {
    "auth": "AuthService",
    "project": "ProjectService",
    "billing": "BillingService",
    "notification": "NotificationService",
    "analytics": "AnalyticsService",
}


def _service(svc: str):
    pb2 = importlib.import_module(f"zoptal.{svc}.v1.{svc}_pb2")
    return pb2.DESCRIPTOR.services_by_name[SERVICE_NAMES[svc]]


def test_regenerating_changes_nothing() -> None:
    """Fails when the committed code differs from what protos/ generates (run `make proto`)."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        "generated code is stale or buf lint failed; run `make proto`\n"
        f"{result.stdout}\n{result.stderr}"
    )


def test_a_breaking_change_fails_the_check(tmp_path: Path) -> None:
    """buf breaking against the last release catches a removed field (the check can fail)."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    proto = tmp_path / "protos" / "zoptal" / "project" / "v1" / "project.proto"
    text = proto.read_text()
    field = "  string description = 3;\n"
    assert field in text, "pick another field to remove"
    proto.write_text(text.replace(field, "", 1))
    (release,) = sorted((ROOT / "protos" / "releases").glob("v*.binpb"))[-1:]
    buf = Path(sys.executable).parent / "buf"
    result = subprocess.run(
        [str(buf), "breaking", "--against", str(release)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "description" in result.stdout + result.stderr


@pytest.mark.parametrize("svc", sorted(EXPECTED_RPCS))
def test_service_has_expected_rpcs(svc: str) -> None:
    service = _service(svc)
    assert service.full_name == f"zoptal.{svc}.v1.{SERVICE_NAMES[svc]}"
    assert {m.name for m in service.methods} == EXPECTED_RPCS[svc]


@pytest.mark.parametrize("svc", sorted(EXPECTED_RPCS))
def test_rpcs_use_their_own_request_and_response(svc: str) -> None:
    for method in _service(svc).methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"


@pytest.mark.parametrize("svc", sorted(EXPECTED_RPCS))
def test_grpc_module_has_stub_and_servicer(svc: str) -> None:
    grpc_mod = importlib.import_module(f"zoptal.{svc}.v1.{svc}_pb2_grpc")
    name = SERVICE_NAMES[svc]
    assert hasattr(grpc_mod, f"{name}Stub")
    assert hasattr(grpc_mod, f"{name}Servicer")
    assert hasattr(grpc_mod, f"add_{name}Servicer_to_server")
    servicer = getattr(grpc_mod, f"{name}Servicer")
    for rpc in EXPECTED_RPCS[svc]:
        assert callable(getattr(servicer, rpc))


@pytest.mark.parametrize("svc", sorted(EXPECTED_RPCS))
def test_typed_stubs_exist(svc: str) -> None:
    pkg = ROOT / "libs" / "zoptal-api" / "src" / "zoptal" / svc / "v1"
    assert (pkg / f"{svc}_pb2.pyi").is_file()
    assert (pkg / f"{svc}_pb2_grpc.pyi").is_file()


def test_ingest_events_is_client_streaming() -> None:
    method = _service("analytics").methods_by_name["IngestEvents"]
    assert method.client_streaming
    assert not method.server_streaming


@pytest.mark.parametrize("svc", sorted(EXPECTED_RPCS))
def test_enums_start_with_unspecified(svc: str) -> None:
    pb2 = importlib.import_module(f"zoptal.{svc}.v1.{svc}_pb2")
    for enum in pb2.DESCRIPTOR.enum_types_by_name.values():
        zero = enum.values_by_number[0]
        assert zero.name.endswith("_UNSPECIFIED"), enum.full_name


def test_read_rpcs_are_marked_side_effect_free() -> None:
    """The retry policy relies on idempotency_level; reads must say NO_SIDE_EFFECTS."""
    reads = {
        ("auth", "ValidateToken"),
        ("auth", "GetUser"),
        ("auth", "GetJwks"),
        ("auth", "ListRevocations"),
        ("project", "GetProject"),
        ("project", "ListUserProjects"),
        ("project", "CheckProjectAccess"),
        ("billing", "CheckSubscriptionLimits"),
        ("billing", "GetSubscriptionPlans"),
        ("notification", "GetNotificationHistory"),
        ("analytics", "GetAnalytics"),
        ("analytics", "GetRealTimeAnalytics"),
    }
    for svc, rpc in reads:
        method: MethodDescriptor = _service(svc).methods_by_name[rpc]
        level = method.GetOptions().idempotency_level
        assert level == method.GetOptions().NO_SIDE_EFFECTS, f"{svc}.{rpc}"


def test_every_verifier_reason_has_an_enum_value() -> None:
    """ValidateToken maps meshcore.jwt reasons one to one onto InvalidTokenReason."""
    from meshcore.jwt import REASONS
    from zoptal.auth.v1 import auth_pb2

    names = set(auth_pb2.InvalidTokenReason.keys())
    missing = {r for r in REASONS if f"INVALID_TOKEN_REASON_{r.upper()}" not in names}
    assert not missing

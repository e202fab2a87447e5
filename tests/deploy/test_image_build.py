"""The Dockerfile, checked without a Docker engine.

Its shape is read from the file (targets, user, exec-form entry points, health checks), and its
build step, deploy/build_runtime_env.sh, is replayed into a temporary virtualenv the way the
image's build stage runs it, so a broken lock or a missing package shows up here.
"""

from __future__ import annotations

import glob
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.deploy.support import REPO, SERVICES, site_packages

DOCKERFILE = REPO / "Dockerfile"
WORKER = "notification-worker"


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its (INSTRUCTION, arguments) lines, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            current = []
            result[arguments.split()[-1]] = current
        current.append((instruction.upper(), " ".join(arguments.split())))
    return result


def instruction(stage: str, name: str) -> str:
    found = [args for instr, args in stages()[stage] if instr == name]
    assert len(found) == 1, f"{stage}: expected one {name}, found {found}"
    return found[0]


def exec_form(arguments: str) -> list[str]:
    """An exec-form (JSON array) argument list; fails on shell form."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), arguments
    return [str(item) for item in parsed]


def test_one_target_per_deployable() -> None:
    """auth, project, billing, notification, the worker and analytics, on a shared runtime."""
    assert set(stages()) == {"build", "runtime", *SERVICES, WORKER}
    for target in [*SERVICES, WORKER]:
        assert stages()[target][0] == ("FROM", f"runtime AS {target}")


def test_runtime_runs_as_uid_1000_and_writes_only_tmp() -> None:
    """Non-root user 1000, HOME and TMPDIR in /tmp, no .pyc writes at run time."""
    assert instruction("runtime", "USER") == "1000:1000"
    env = " ".join(args for instr, args in stages()["runtime"] if instr == "ENV")
    for setting in ("HOME=/tmp", "TMPDIR=/tmp", "DATA_DIR=/tmp/data", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env


@pytest.mark.parametrize("svc", SERVICES)
def test_service_target_entry_point_and_health_check(svc: str) -> None:
    """Exec-form `python -m zoptal_<svc>` (SIGTERM reaches Python) and a grpc.health.v1 check."""
    grpc_port, metrics_port, _ = SERVICES[svc]
    assert exec_form(instruction(svc, "ENTRYPOINT")) == ["python", "-m", f"zoptal_{svc}"]
    health = instruction(svc, "HEALTHCHECK")
    command = exec_form(health.split(" CMD ", 1)[1])
    assert command[:3] == ["python", "-m", "meshcore.health_probe"]
    assert f"127.0.0.1:{grpc_port}" in command
    assert instruction(svc, "ENV") == f"GRPC_PORT={grpc_port} METRICS_PORT={metrics_port}"


def test_worker_target_runs_celery() -> None:
    """The worker's entry point is the Celery worker of zoptal_notification.worker."""
    assert exec_form(instruction(WORKER, "ENTRYPOINT")) == [
        "celery",
        "-A",
        "zoptal_notification.worker",
        "worker",
    ]
    exec_form(instruction(WORKER, "CMD"))


def test_dockerfile_passes_hadolint(hadolint: str) -> None:
    """hadolint finds nothing: pinned tools, exec-form commands, no root user at run time."""
    done = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_shell_form_entry_point(hadolint: str, tmp_path: Path) -> None:
    """The lint can fail: a shell-form ENTRYPOINT (SIGTERM would not reach Python) is DL3025."""
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:3.11-slim\nUSER 1000\nENTRYPOINT python -m zoptal_auth\n")
    done = subprocess.run(
        [hadolint, str(broken)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "DL3025" in done.stdout


def workspace_members() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["uv"]["workspace"]["members"]
    return sorted(
        str(Path(p).relative_to(REPO))
        for pattern in patterns
        for p in glob.glob(str(REPO / pattern))
        if (Path(p) / "pyproject.toml").exists()
    )


def test_dependency_layer_copies_every_workspace_member() -> None:
    """`uv sync --frozen` needs every member's pyproject.toml before the sources arrive."""
    copies = {args.split()[0] for instr, args in stages()["build"] if instr == "COPY"}
    missing = [m for m in workspace_members() if f"{m}/pyproject.toml" not in copies]
    assert not missing, f"add COPY lines for {missing}"
    assert "pyproject.toml" in copies


def test_dockerignore_keeps_the_build_context_small_but_complete() -> None:
    """.venv and .git stay out; the workspace, the lock and the build script go in."""
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= ignored
    assert not ignored & {"libs", "services", "uv.lock", "pyproject.toml", "deploy"}


def test_runtime_venv_is_self_contained(runtime_venv: Path) -> None:
    """Workspace packages are installed as wheels (no editable links back to the source tree),
    precompiled, and without the dev group."""
    packages = site_packages(runtime_venv)
    assert not [p.name for p in packages.glob("*.pth") if str(REPO) in p.read_text()]
    assert (packages / "meshcore" / "health_probe.py").exists()
    assert list((packages / "meshcore" / "__pycache__").glob("*.pyc"))
    assert not (packages / "pytest").exists()


def test_health_probe_runs_from_the_runtime_venv(runtime_venv: Path) -> None:
    """The HEALTHCHECK command works with nothing but the image's venv."""
    done = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-m", "meshcore.health_probe", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    assert "--addr" in done.stdout


@pytest.mark.parametrize(
    "module",
    [f"zoptal_{svc}.__main__" for svc in SERVICES] + ["zoptal_notification.worker"],
)
def test_entry_modules_are_in_the_runtime_venv(runtime_venv: Path, module: str) -> None:
    """Each module an ENTRYPOINT names ships in the image once its service has written it."""
    package, _, name = module.partition(".")
    svc = package.removeprefix("zoptal_")
    source = REPO / "services" / svc / "src" / package / f"{name}.py"
    if not source.exists():
        pytest.skip(f"{source.relative_to(REPO)} is not written yet")
    assert (site_packages(runtime_venv) / package / f"{name}.py").exists()

"""Fixtures for the deploy checks: kubectl, and what `kubectl apply -k k8s/` applies."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from tests.deploy.support import (
    INSTALL_HINT,
    K8S,
    SECRETS_SCRIPT,
    Resource,
    build,
    build_runtime_venv,
    find_crd_validator,
    find_hadolint,
    find_kubectl,
    install_deploy_tools,
)
from tests.requirements import requirement_missing

T = TypeVar("T")


def _tool(what: str, find: Callable[[], T | None]) -> T:
    """Find a tool, installing the deploy tools once if it is missing; fail under CI, else skip."""
    found = find()
    if found is None:
        log = install_deploy_tools()
        if hasattr(find, "cache_clear"):
            find.cache_clear()
        found = find()
    if found is None:
        requirement_missing(f"{what} is missing; {INSTALL_HINT} said:\n{log}")
    return found


@pytest.fixture(scope="session")
def kubectl() -> str:
    return _tool("kubectl with kustomize", find_kubectl)


@pytest.fixture(scope="session")
def hadolint() -> str:
    return _tool("hadolint", find_hadolint)


@pytest.fixture(scope="session")
def crd_validator() -> list[str]:
    """`node validate.mjs`: Istio and Prometheus Operator resources against their CRD schemas."""
    return _tool("the Istio CRD schema check", find_crd_validator)


@pytest.fixture(scope="session")
def full_install(kubectl: str) -> list[Resource]:
    """What `kubectl apply -k k8s/` applies."""
    return build(kubectl, K8S)


@pytest.fixture(scope="session")
def generated_secrets(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> list[Resource]:
    """The Secrets scripts/k8s_secrets.sh makes for an install, rendered offline into a temporary
    folder: k8s/ holds none, and none is ever committed."""
    folder = tmp_path_factory.mktemp("k8s-secrets")
    done = subprocess.run(
        ["bash", str(SECRETS_SCRIPT), "--dir", str(folder), "--render"],
        env={**os.environ, "KUBECTL": kubectl},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="session")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /opt/venv, built here by the same script the Dockerfile runs."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    build_runtime_venv(venv)
    return venv

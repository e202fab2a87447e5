"""Fixtures for the deploy checks: kubectl, and what `kubectl apply -k k8s/` applies."""

from __future__ import annotations

import os

import pytest

from tests.deploy.support import INSTALL_HINT, K8S, Resource, build, find_kubectl


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = find_kubectl()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"kubectl with kustomize is missing: {INSTALL_HINT}")
        pytest.skip(f"kubectl with kustomize is missing: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="session")
def full_install(kubectl: str) -> list[Resource]:
    """What `kubectl apply -k k8s/` applies."""
    return build(kubectl, K8S)

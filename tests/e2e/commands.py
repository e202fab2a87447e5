"""Running the ``zoptal`` command line and the load generator against the embedded platform.

Both run as the user would run them: a subprocess of the workspace's Python (``python -m``),
pointed at the platform through the ``<SVC>_ADDR`` variables, with a config dir of the test's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoptal.auth.v1 import auth_pb2
from zoptal.clients.service_identity import ServiceCredential

from tests.e2e.journey import CALL_TIMEOUT, Stubs, bearer
from tests.e2e.platform import EmbeddedPlatform

__all__ = ["Done", "operator_credentials", "platform_env", "run_module"]

COMMAND_TIMEOUT = 120.0


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.stderr)["error"]
        return document


def platform_env(platform: EmbeddedPlatform, config_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("_ADDR") and not key.startswith("ZOPTAL_")
    }
    env.update(
        AUTH_ADDR=platform.auth,
        PROJECT_ADDR=platform.project,
        BILLING_ADDR=platform.billing,
        NOTIFICATION_ADDR=platform.notification,
        ANALYTICS_ADDR=platform.analytics,
        XDG_CONFIG_HOME=str(config_dir),
    )
    return env


def run_module(
    module: str, args: Sequence[str], env: dict[str, str], stdin: str | None = None
) -> Done:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


def operator_credentials(
    platform: EmbeddedPlatform, stubs: Stubs, permissions: Sequence[str], path: Path
) -> ServiceCredential:
    """A service account the platform's admin creates for an operator's tool, saved as the
    ``credentials.json`` the tools read (0600 in a 0700 folder)."""
    login = stubs.auth.Login(
        auth_pb2.LoginRequest(email=platform.admin_email, password=platform.admin_password),
        timeout=CALL_TIMEOUT,
    )
    created = stubs.auth.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(
            name=f"e2e-tool-{uuid.uuid4().hex[:8]}", permissions=list(permissions)
        ),
        metadata=bearer(login.access_token),
        timeout=CALL_TIMEOUT,
    )
    credential = ServiceCredential(
        "operator", created.service_account.client_id, created.client_secret
    )
    credential.write(path)
    return credential

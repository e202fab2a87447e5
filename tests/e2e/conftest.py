"""The embedded platform, started once per test session the way the README starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest
from zoptal_platform.catalogue import installed_services

from tests.e2e.platform import (
    PORT_OFFSET,
    REPO_ROOT,
    START_TIMEOUT_SECONDS,
    EmbeddedPlatform,
    port_open,
    pump_output,
    stop_platform,
)


@pytest.fixture(scope="session")
def embedded_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPlatform]:
    data_dir = tmp_path_factory.mktemp("platform-data")
    env = dict(os.environ, ZOPTAL_PORT_OFFSET=str(PORT_OFFSET), ZOPTAL_DATA_DIR=str(data_dir))
    process = subprocess.Popen(
        ["make", "run"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so Ctrl-C can be imitated exactly
    )
    platform = EmbeddedPlatform(process, data_dir, PORT_OFFSET)
    ready = threading.Event()
    reader = threading.Thread(target=pump_output, args=(process.stdout, platform.output, ready))
    reader.start()
    ready.wait(START_TIMEOUT_SECONDS)
    if "is SERVING" not in platform.text():
        stop_platform(platform)
        reader.join(10)
        pytest.fail("the platform did not start:\n" + platform.text()[-6000:])
    try:
        yield platform
    finally:
        exit_code = stop_platform(platform)
        reader.join(30)
    # Ctrl-C must stop every service cleanly. make itself dies of the SIGINT (exit -2) after
    # waiting for the launcher, which reports the stop; afterwards no service port answers.
    assert exit_code in (0, -signal.SIGINT), platform.text()[-4000:]
    assert "stopped." in platform.text(), platform.text()[-4000:]
    for spec in installed_services():
        assert not port_open(platform.address(spec.grpc_port)), f"{spec.name} still running"

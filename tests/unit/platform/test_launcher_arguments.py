"""The launcher's own arguments and variables: a bad value is a clear refusal, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoptal_platform.__main__ import _parse


def test_the_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOPTAL_DATA_DIR", "/srv/zoptal")
    monkeypatch.setenv("ZOPTAL_PORT_OFFSET", "100")
    arguments = _parse([])
    assert (arguments.command, arguments.data_dir, arguments.port_offset) == (
        "run",
        Path("/srv/zoptal"),
        100,
    )
    assert _parse(["migrate", "--port-offset", "7"]).port_offset == 7


def test_a_port_offset_that_is_not_a_number_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZOPTAL_PORT_OFFSET", "ten")
    with pytest.raises(SystemExit) as exited:
        _parse([])
    assert exited.value.code == 2  # as for any other bad launcher value (docs/operations.md)
    assert "ZOPTAL_PORT_OFFSET: expected an integer, got 'ten'" in capsys.readouterr().err

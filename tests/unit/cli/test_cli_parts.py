"""The command line's and the load generator's parts that need no platform."""

from __future__ import annotations

import stat
from pathlib import Path

import click
import pytest
from meshcore.resilience.breaker import CircuitOpenError
from zoptal_cli.endpoints import resolve_addresses
from zoptal_cli.failures import failure_of
from zoptal_cli.login_cache import CachedLogin, LoginCache, config_dir
from zoptal_cli.output import table
from zoptal_loadgen.app import parse_mix
from zoptal_loadgen.stats import Recorder, quantile

LOGIN = CachedLogin("u1", "a@example.com", "access-secret", 2e9, "refresh-secret", 2e9)


def test_addresses_come_from_the_option_then_the_variable_then_make_run() -> None:
    env = {"BILLING_ADDR": "b1:4003,b2:4003", "ZOPTAL_PORT_OFFSET": "100"}
    addresses = resolve_addresses(["auth=a:1"], env)
    assert addresses["auth"] == ("a:1",)
    assert addresses["billing"] == ("b1:4003", "b2:4003")
    assert addresses["project"] == ("127.0.0.1:4101",)


@pytest.mark.parametrize(
    ("overrides", "env", "names"),
    [
        (["nosuch=a:1"], {}, "--addr 'nosuch=a:1'"),
        (["auth=a"], {}, "--addr 'auth=a'"),
        ([], {"PROJECT_ADDR": "p:x"}, "PROJECT_ADDR"),
        ([], {"ZOPTAL_PORT_OFFSET": "-5"}, "ZOPTAL_PORT_OFFSET"),
    ],
)
def test_a_bad_address_names_its_source(
    overrides: list[str], env: dict[str, str], names: str
) -> None:
    with pytest.raises(ValueError, match=names):
        resolve_addresses(overrides, env)


def test_the_login_cache_is_private_and_never_shows_its_tokens(tmp_path: Path) -> None:
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "zoptal"
    cache = LoginCache(tmp_path / "zoptal")
    assert cache.load() is None
    cache.save(LOGIN)
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert cache.load() == LOGIN
    assert "secret" not in repr(cache.load())
    cache.path.write_text("{}")
    with pytest.raises(ValueError, match="zoptal login"):
        cache.load()
    assert cache.forget() is True
    assert cache.forget() is False


def test_a_failure_raised_before_sending_is_reported_like_a_status() -> None:
    failure = failure_of(CircuitOpenError(2.5, endpoint="auth-1"), hint="wait")
    assert failure.as_dict()["code"] == "UNAVAILABLE"
    assert failure.as_dict()["retry_after_seconds"] == 2.5
    assert failure.lines()[-2:] == ["  retry after: 2.5 s", "  hint: wait"]


def test_tables_align_their_columns() -> None:
    assert table(["A", "LONGER"], [["xx", "1"], ["y", "22"]]).splitlines() == [
        "A   LONGER",
        "xx  1",
        "y   22",
    ]


def test_quantiles_are_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert [quantile(samples, q) for q in (0.5, 0.9, 0.99, 1.0)] == [50.0, 90.0, 99.0, 100.0]
    assert quantile([7.0], 0.99) == 7.0


def test_the_report_counts_failures_per_rpc_and_overall() -> None:
    recorder = Recorder()
    for seconds in (0.01, 0.02, 0.03):
        recorder.call("GetProject", seconds)
    recorder.call("CreateProject", 0.5, "UNAVAILABLE", "down")
    report = recorder.report(2.0)
    assert report["overall"]["calls"] == 4
    assert report["overall"]["success_rate"] == 0.75
    assert report["overall"]["failure_examples"] == {"UNAVAILABLE": "down"}
    assert report["rpcs"]["GetProject"]["p50_ms"] == 20.0
    assert report["calls_per_second"] == 2.0


@pytest.mark.parametrize("mix", ["browse", "nosuch=1", "browse=x", "browse=-1", "browse=0"])
def test_a_bad_mix_is_refused(mix: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_mix(mix)


def test_a_mix_parses_to_weights() -> None:
    assert parse_mix("browse=2, events=0.5") == {"browse": 2.0, "events": 0.5}

"""zoptal_cli.endpoints: where each service is."""

from __future__ import annotations

import pytest
from zoptal_cli.endpoints import resolve_addresses


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

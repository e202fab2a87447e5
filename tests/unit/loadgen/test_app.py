"""zoptal_loadgen.app: the journey mix option."""

from __future__ import annotations

import click
import pytest
from zoptal_loadgen.app import parse_mix


@pytest.mark.parametrize(
    "mix", ["browse", "nosuch=1", "browse=x", "browse=-1", "browse=0", "browse=nan", "browse=inf"]
)
def test_a_bad_mix_is_refused(mix: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_mix(mix)


def test_a_mix_parses_to_weights() -> None:
    assert parse_mix("browse=2, events=0.5") == {"browse": 2.0, "events": 0.5}

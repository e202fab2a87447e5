"""Project's input rules (zoptal_project.validation): every rejection names its field."""

from __future__ import annotations

import pytest
from meshcore.errors import InvalidArgument
from zoptal_project import validation


def test_names_are_trimmed_and_bounded() -> None:
    """Names lose surrounding spaces; empty, too long or control characters are refused."""
    assert validation.name("name", "  Apollo ") == "Apollo"
    for bad in ("", "   ", "x" * 101, "bad\nname", "zero\u200bwidth"):
        with pytest.raises(InvalidArgument) as error:
            validation.name("name", bad)
        assert error.value.field == "name"


def test_name_key_ignores_case_and_compatibility_forms() -> None:
    """Uniqueness is case-insensitive and NFKC-normalised."""
    assert validation.name_key("Apollo") == validation.name_key("APOLLO")
    assert validation.name_key("ﬁle") == validation.name_key("FILE")


def test_ids_are_required_and_bounded() -> None:
    """Ids must be present, at most 64 characters, with no padding or control characters."""
    assert validation.identifier("project_id", "p-1") == "p-1"
    for bad in ("", "x" * 65, " p", "p\x00"):
        with pytest.raises(InvalidArgument, match="project_id"):
            validation.identifier("project_id", bad)


def test_request_id_alphabet() -> None:
    """request_id is optional; when set it is 1..128 characters of [A-Za-z0-9._:-]."""
    assert validation.request_id("request_id", "") is None
    assert validation.request_id("request_id", "abc-1:2.3_4") == "abc-1:2.3_4"
    for bad in ("has space", "x" * 129, "é"):
        with pytest.raises(InvalidArgument, match="request_id"):
            validation.request_id("request_id", bad)


def test_page_and_limit_defaults_and_ranges() -> None:
    """page 0 means 1, limit 0 means 20; negatives and limits over 100 are refused."""
    assert validation.page_and_limit(0, 0) == (1, 20)
    assert validation.page_and_limit(3, 100) == (3, 100)
    with pytest.raises(InvalidArgument, match="page"):
        validation.page_and_limit(-1, 10)
    with pytest.raises(InvalidArgument, match="limit"):
        validation.page_and_limit(1, 101)

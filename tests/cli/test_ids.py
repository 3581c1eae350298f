"""Shortened ids: a unique start or end of a recent one, as the tables show them."""

from __future__ import annotations

import uuid

import pytest

from printfleet.cli.failures import REFUSED, USAGE, CliError
from printfleet.cli.ids import full_id

# Time-ordered ids made in the same moment share their start and differ at their end, as a
# batch of copies does.
BATCH = [
    str(uuid.UUID(f"01a252f4-876f-7290-9db4-1af{tail}")) for tail in ("77fb506f5", "82dc293e6")
]


def recent() -> list[str]:
    """The caller's recent job ids."""
    return list(BATCH)


def test_the_end_a_printer_table_shows_finds_the_job() -> None:
    assert full_id(BATCH[1][-8:], "job", recent) == BATCH[1]
    assert full_id(BATCH[0][-4:], "job", recent) == BATCH[0]


def test_a_unique_start_still_finds_the_job() -> None:
    assert full_id(BATCH[0][:28], "job", recent) == BATCH[0]


def test_a_shared_start_asks_for_more() -> None:
    with pytest.raises(CliError) as shared:
        full_id(BATCH[0][:13], "job", recent)
    assert shared.value.status == USAGE
    assert "starts or ends 2 job ids" in str(shared.value)


def test_an_id_neither_starting_nor_ending_a_recent_one_is_not_found() -> None:
    with pytest.raises(CliError) as missing:
        full_id("876f-7290", "job", recent)
    assert missing.value.status == REFUSED
    assert "starting or ending '876f-7290'" in str(missing.value)


def test_a_full_id_is_taken_as_it_is_without_asking() -> None:
    def never() -> list[str]:
        raise AssertionError("a full id needs no look-up")

    assert full_id(BATCH[0], "job", never) == BATCH[0]

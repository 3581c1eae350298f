"""S10 by construction: printer ids, broker usernames and client ids cannot meet the service's."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printfleet.protocol.identities import (
    CLOUD_USER,
    PRINTER_ID_PATTERN,
    RESERVED_NAMES,
    InvalidPrinterId,
    check_printer_id,
    cloud_client_id,
    is_reserved,
    printer_client_id,
    printer_username,
)

printer_ids = st.from_regex(PRINTER_ID_PATTERN, fullmatch=True)
instances = st.text(min_size=1, max_size=40)


@pytest.mark.parametrize(
    "printer_id",
    [CLOUD_USER, "printfleet", "printfleet-x", "printfleet_cloud", *sorted(RESERVED_NAMES)],
)
def test_service_and_reserved_names_are_refused_as_printer_ids(printer_id: str) -> None:
    with pytest.raises(InvalidPrinterId, match="reserved"):
        check_printer_id(printer_id)


@pytest.mark.parametrize("printer_id", ["", "P1", "printer.p1", "a/b", "a+", "#", "x" * 64, " p"])
def test_ids_outside_the_pattern_are_refused(printer_id: str) -> None:
    with pytest.raises(InvalidPrinterId, match="lower-case letters"):
        check_printer_id(printer_id)


@pytest.mark.parametrize("printer_id", ["p1", "cloud-x", "admin-shop", "x1-01", "printer"])
def test_ordinary_ids_pass(printer_id: str) -> None:
    assert check_printer_id(printer_id) == printer_id


def test_reserved_names_are_matched_in_any_case() -> None:
    assert is_reserved("PrintFleet-Cloud")
    assert is_reserved("ROOT")
    assert not is_reserved("printer.root")


@given(printer_ids, printer_ids, instances)
def test_derived_names_never_meet_ids_service_names_or_each_other(
    printer_id: str, other: str, instance: str
) -> None:
    username, client_id = printer_username(printer_id), printer_client_id(printer_id)
    for name in (username, client_id):
        assert not is_reserved(name)
        assert name != cloud_client_id(instance)
        # Ids have no '.', so neither today's ids nor usernames stored as bare ids can match.
        assert name != other
    if other != printer_id:
        assert printer_username(other) != username
        assert printer_client_id(other) != client_id


@given(instances)
def test_the_clouds_names_are_the_services(instance: str) -> None:
    assert is_reserved(cloud_client_id(instance))
    assert is_reserved(CLOUD_USER)


def test_a_printer_named_after_a_cloud_instance_gets_a_client_id_of_its_own() -> None:
    # Before S10 printer "cloud-x" connected as "printfleet-cloud-x": the client id of cloud
    # instance "x", so each connection would have pushed the other off the broker.
    assert printer_client_id("cloud-x") == printer_username("cloud-x") == "printer.cloud-x"
    assert cloud_client_id("x") == "printfleet-cloud.x"


def test_the_api_docs_list_exactly_the_reserved_names() -> None:
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    rule = text[text.index("- not be a reserved name:") : text.index("`protocol.identities.")]
    assert set(re.findall(r"`([a-z]+)`", rule)) == RESERVED_NAMES

"""The nozzle a G-code file was sliced for, from its slicer comments: in micrometres, the first
extruder's, and nothing where a file states none or one no printer has."""

from __future__ import annotations

import pytest

from printfleet.gcode.metadata import (
    MetadataReader,
    SlicerCommentKind,
    parse_metadata,
    read_slicer_comment,
)


@pytest.mark.parametrize(
    ("line", "nozzle_um"),
    [
        ("; nozzle_diameter = 0.4", 400),
        ("; nozzle_diameter = 0.6,0.4", 600),
        (";NOZZLE_DIAMETER = 0.25", 250),
        (";EXTRUDER_TRAIN.0.NOZZLE.DIAMETER:0.8", 800),
        ("; nozzle_diameter = 0.05", None),
        ("; nozzle_diameter = 2.5", None),
        ("; nozzle_diameter = big", None),
        ("; nozzle_type = hardened_steel", None),
    ],
)
def test_the_nozzle_is_read_in_micrometres(line: str, nozzle_um: int | None) -> None:
    assert parse_metadata(["G1 X1", line]).nozzle_um == nozzle_um


def test_the_comment_is_recognised() -> None:
    found = read_slicer_comment(" nozzle_diameter = 0.4,0.6")
    assert found is not None
    assert found.kind is SlicerCommentKind.NOZZLE_DIAMETER
    assert found.values == (0.4, 0.6)


def test_an_upload_read_in_blocks_finds_the_nozzle_at_the_end() -> None:
    # PrusaSlicer writes its configuration after the last move.
    reader = MetadataReader()
    reader.feed_lines("G1 X1 E1\nG1 X2 E2\n" * 100)
    reader.feed_lines("; filament_type = PETG\n; nozzle_diameter = 0.4\n")
    result = reader.result()
    assert (result.material, result.nozzle_um) == ("PETG", 400)


def test_a_file_without_the_comment_knows_no_nozzle() -> None:
    assert parse_metadata(["; filament_type = PLA", "G1 X1"]).nozzle_um is None

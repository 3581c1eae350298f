"""Slicer comments in G-code: estimated time, layers, filament — for the runner and for uploads.

No I/O: callers pass lines (an open text file, a list, any iterable of str), so the cloud can reuse
`parse_metadata` on an upload stream as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "GcodeMetadata",
    "SlicerComment",
    "SlicerCommentKind",
    "comment_of",
    "format_duration",
    "parse_duration",
    "parse_metadata",
    "read_slicer_comment",
]


class SlicerCommentKind(StrEnum):
    """The slicer comments printfleet understands."""

    ESTIMATED_TIME = "estimated_time"
    """Whole-print estimate, seconds."""
    TOTAL_LAYERS = "total_layers"
    LAYER_CHANGE = "layer_change"
    """PrusaSlicer/BambuStudio: a new layer starts (value unused)."""
    LAYER_INDEX = "layer_index"
    """Cura: the 0-based index of the layer that starts (negative for raft layers)."""
    FILAMENT_MM = "filament_mm"
    FILAMENT_G = "filament_g"


@dataclass(frozen=True, slots=True)
class SlicerComment:
    """One recognised comment and its value (0 where the kind carries none)."""

    kind: SlicerCommentKind
    value: float


@dataclass(frozen=True, slots=True)
class GcodeMetadata:
    """What a G-code file says about itself; `None` where it says nothing."""

    estimated_time_s: float | None
    layer_count: int | None
    filament_mm: float | None
    filament_g: float | None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_DURATION_FULL = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[dhms])+\s*")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_NUMBERS = rf"{_NUMBER}(?:\s*,\s*{_NUMBER})*"

# Each pattern matches the comment text after ';' with surrounding blanks removed.
_PRUSA_TIME = re.compile(r"estimated printing time \(normal mode\)\s*=\s*(.+)", re.IGNORECASE)
_BAMBU_TIME = re.compile(r"total estimated time\s*:\s*([\d.dhms ]+)", re.IGNORECASE)
_CURA_TIME = re.compile(rf"TIME:({_NUMBER})")
_TOTAL_LAYERS = re.compile(r"total layer number\s*[:=]\s*(\d+)", re.IGNORECASE)
_CURA_LAYER_COUNT = re.compile(r"LAYER_COUNT:(\d+)")
_CURA_LAYER = re.compile(r"LAYER:(-?\d+)")
_LAYER_CHANGE = frozenset({"LAYER_CHANGE", "CHANGE_LAYER"})
_FILAMENT_MM = re.compile(
    rf"(?:filament used \[mm\]\s*=|total filament length \[mm\]\s*:)\s*({_NUMBERS})",
    re.IGNORECASE,
)
_FILAMENT_G = re.compile(
    rf"(?:filament used \[g\]\s*=|total filament weight \[g\]\s*:)\s*({_NUMBERS})",
    re.IGNORECASE,
)
_CURA_FILAMENT = re.compile(rf"Filament used:\s*({_NUMBER})m?((?:\s*,\s*{_NUMBER}m?)*)")


def parse_duration(text: str) -> float | None:
    """Seconds in a slicer duration such as ``1d 2h 3m 4s`` or ``25m 5s``; `None` if malformed."""
    if not _DURATION_FULL.fullmatch(text):
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """Format whole seconds as PrusaSlicer does: ``1d 2h 3m 4s``, leading zero units left out."""
    remaining = round(seconds)
    parts: list[str] = []
    for unit in "dhm":
        count, remaining = divmod(remaining, int(_UNIT_SECONDS[unit]))
        if count or parts:
            parts.append(f"{count}{unit}")
    parts.append(f"{remaining}s")
    return " ".join(parts)


def _sum(numbers: str) -> float:
    return sum(float(n.strip().rstrip("m")) for n in numbers.split(",") if n.strip())


def read_slicer_comment(comment: str) -> SlicerComment | None:
    """Recognise one comment's text (what follows ``;``), or return `None`."""
    text = comment.strip()
    if not text:
        return None
    if text in _LAYER_CHANGE:
        return SlicerComment(SlicerCommentKind.LAYER_CHANGE, 0.0)
    if match := _CURA_LAYER.fullmatch(text):
        return SlicerComment(SlicerCommentKind.LAYER_INDEX, float(match[1]))
    if match := _CURA_TIME.fullmatch(text):
        return SlicerComment(SlicerCommentKind.ESTIMATED_TIME, float(match[1]))
    if match := _CURA_LAYER_COUNT.fullmatch(text):
        return SlicerComment(SlicerCommentKind.TOTAL_LAYERS, float(match[1]))
    if match := _TOTAL_LAYERS.fullmatch(text):
        return SlicerComment(SlicerCommentKind.TOTAL_LAYERS, float(match[1]))
    for pattern in (_PRUSA_TIME, _BAMBU_TIME):
        if (match := pattern.search(text)) and (seconds := parse_duration(match[1])) is not None:
            return SlicerComment(SlicerCommentKind.ESTIMATED_TIME, seconds)
    if match := _FILAMENT_MM.fullmatch(text):
        return SlicerComment(SlicerCommentKind.FILAMENT_MM, _sum(match[1]))
    if match := _FILAMENT_G.fullmatch(text):
        return SlicerComment(SlicerCommentKind.FILAMENT_G, _sum(match[1]))
    if match := _CURA_FILAMENT.fullmatch(text):
        # Cura gives metres per extruder: "1.23456m, 0m".
        return SlicerComment(SlicerCommentKind.FILAMENT_MM, 1000.0 * _sum(match[1] + match[2]))
    return None


def comment_of(line: str) -> str | None:
    """The comment part of a G-code line (after the first ``;``), or `None` if it has none."""
    _, sep, comment = line.partition(";")
    return comment if sep else None


def parse_metadata(lines: Iterable[str]) -> GcodeMetadata:
    """Read a whole G-code file's slicer metadata in one streaming pass.

    Slicers put some facts at the top and some at the end (PrusaSlicer writes its time estimate
    after the last move), so every line is read, but only one at a time. Without a total-layers
    comment the layer count is the number of layer-change markers, if any.
    """
    estimated: float | None = None
    total_layers: int | None = None
    filament_mm: float | None = None
    filament_g: float | None = None
    layer_markers = 0
    marker_kind: SlicerCommentKind | None = None
    for line in lines:
        comment = comment_of(line)
        if comment is None:
            continue
        found = read_slicer_comment(comment)
        if found is None:
            continue
        match found.kind:
            case SlicerCommentKind.ESTIMATED_TIME:
                # The first estimate wins: a file that states two (normal and a later summary)
                # repeats the same figure.
                estimated = found.value if estimated is None else estimated
            case SlicerCommentKind.TOTAL_LAYERS:
                total_layers = int(found.value)
            case SlicerCommentKind.LAYER_CHANGE | SlicerCommentKind.LAYER_INDEX:
                # Count one marker style only, the first seen, in case a post-processor added
                # the other; Cura's raft layers (negative indices) count like any layer.
                if marker_kind is None:
                    marker_kind = found.kind
                if found.kind is marker_kind:
                    layer_markers += 1
            case SlicerCommentKind.FILAMENT_MM:
                filament_mm = found.value
            case SlicerCommentKind.FILAMENT_G:
                filament_g = found.value
    if total_layers is None and layer_markers > 0:
        total_layers = layer_markers
    return GcodeMetadata(
        estimated_time_s=estimated,
        layer_count=total_layers,
        filament_mm=filament_mm,
        filament_g=filament_g,
    )

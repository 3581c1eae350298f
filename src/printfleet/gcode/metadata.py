"""Slicer comments in G-code: estimated time, layers, filament and its material, the nozzle — for
the runner and for uploads.

No I/O: callers pass lines (an open text file, a list, any iterable of str) to `parse_metadata`,
or whole blocks of lines to a `MetadataReader`, which is how the cloud reads an upload: a block at
a time, with only the comments that can matter looked at in Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "GcodeMetadata",
    "MetadataReader",
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
    FILAMENT_SLOTS = "filament_slots"
    """BambuStudio's ``; filament: 1,3``: the 1-based slots the print uses, in `values`."""
    MATERIAL = "material"
    """PrusaSlicer/SuperSlicer/OrcaSlicer/BambuStudio ``filament_type``: one per extruder in
    `SlicerComment.texts` (value unused)."""
    NOZZLE_DIAMETER = "nozzle_diameter"
    """PrusaSlicer/OrcaSlicer/BambuStudio ``nozzle_diameter = 0.4`` (one per extruder, in
    `values`), Cura ``EXTRUDER_TRAIN.0.NOZZLE.DIAMETER:0.4``; millimetres."""


@dataclass(frozen=True, slots=True)
class SlicerComment:
    """One recognised comment and its value (0 where the kind carries none).

    ``values`` are a filament comment's per-extruder figures (``value`` is their sum); ``texts``
    are a material comment's per-extruder names, upper-case, "" where one is not a material name.
    """

    kind: SlicerCommentKind
    value: float
    values: tuple[float, ...] = ()
    texts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GcodeMetadata:
    """What a G-code file says about itself; `None` where it says nothing."""

    estimated_time_s: float | None
    layer_count: int | None
    filament_mm: float | None
    filament_g: float | None
    material: str | None = None
    """The upper-case material (PLA, PETG) of the extruders that print: of those the file shows
    using filament, else of the first; several different ones joined by ``+`` (PETG+PLA)."""
    nozzle_um: int | None = None
    """The nozzle the file was sliced for, in micrometres (400 = 0.4 mm): the first extruder's
    when there are several; `None` if not stated or outside 100..2000."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_DURATION_FULL = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[dhms])+\s*")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# Bounded digit counts: a longer number is no slicer's, and would overflow to infinity.
_NUMBER = r"[-+]?\d{1,15}(?:\.\d{1,15})?"
_NUMBERS = rf"{_NUMBER}(?:\s*,\s*{_NUMBER})*"

# Each pattern matches the comment text after ';' with surrounding blanks removed.
_PRUSA_TIME = re.compile(r"estimated printing time \(normal mode\)\s*=\s*(.+)", re.IGNORECASE)
_BAMBU_TIME = re.compile(r"total estimated time\s*:\s*([\d.dhms ]+)", re.IGNORECASE)
_CURA_TIME = re.compile(rf"TIME:({_NUMBER})")
_TOTAL_LAYERS = re.compile(r"total layer number\s*[:=]\s*(\d{1,9})", re.IGNORECASE)
_CURA_LAYER_COUNT = re.compile(r"LAYER_COUNT:(\d{1,9})")
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
_FILAMENT_SLOTS = re.compile(r"filament\s*:\s*(\d{1,3}(?:\s*,\s*\d{1,3})*)", re.IGNORECASE)
_FILAMENT_TYPE = re.compile(r"filament_type\s*=\s*(.*)", re.IGNORECASE)
_MATERIAL_NAME = re.compile(r"[A-Z0-9][A-Z0-9+._/ -]{0,31}")
"""What printfleet keeps as a material name: anything else in ``filament_type`` is dropped."""
_NOZZLE_DIAMETER = re.compile(rf"nozzle_diameter\s*=\s*({_NUMBERS})", re.IGNORECASE)
_CURA_NOZZLE = re.compile(rf"EXTRUDER_TRAIN\.0\.NOZZLE\.DIAMETER:({_NUMBER})")
NOZZLE_UM_RANGE = range(100, 2001)
"""The nozzles printfleet knows of, in micrometres (the protocol's ``NozzleUm``)."""
_CURA_FILAMENT = re.compile(rf"Filament used:\s*({_NUMBER})m?((?:\s*,\s*{_NUMBER}m?)*)")
_MAYBE_SLICER_COMMENT = re.compile(
    r"^[^;\n]*;([^\n]*?(?:layer|time|filament|nozzle)[^\n]*)", re.IGNORECASE | re.MULTILINE
)
"""The comment of each line that mentions a word every pattern above contains (case-insensitively,
as the loosest of them), so the rest never costs a Python call: a superset of what
`read_slicer_comment` recognises."""


def parse_duration(text: str) -> float | None:
    """Seconds in a slicer duration such as ``1d 2h 3m 4s`` or ``25m 5s``; `None` if malformed."""
    if not _DURATION_FULL.fullmatch(text):
        return None
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return seconds if math.isfinite(seconds) else None


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


def _numbers(numbers: str) -> tuple[float, ...]:
    return tuple(float(n.strip().rstrip("m")) for n in numbers.split(",") if n.strip())


def _sum(numbers: str) -> float:
    return sum(_numbers(numbers))


def _material_name(text: str) -> str:
    name = text.strip().upper()
    return name if _MATERIAL_NAME.fullmatch(name) else ""


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
        values = _numbers(match[1])
        return SlicerComment(SlicerCommentKind.FILAMENT_MM, sum(values), values)
    if match := _FILAMENT_G.fullmatch(text):
        values = _numbers(match[1])
        return SlicerComment(SlicerCommentKind.FILAMENT_G, sum(values), values)
    if match := _FILAMENT_SLOTS.fullmatch(text):
        return SlicerComment(SlicerCommentKind.FILAMENT_SLOTS, 0.0, _numbers(match[1]))
    if match := _FILAMENT_TYPE.fullmatch(text):
        # One per extruder (or AMS slot), ';'-separated: "PLA;PETG".
        texts = tuple(_material_name(name) for name in match[1].split(";"))
        return SlicerComment(SlicerCommentKind.MATERIAL, 0.0, texts=texts)
    if match := _NOZZLE_DIAMETER.fullmatch(text):
        return SlicerComment(SlicerCommentKind.NOZZLE_DIAMETER, 0.0, _numbers(match[1]))
    if match := _CURA_NOZZLE.fullmatch(text):
        return SlicerComment(SlicerCommentKind.NOZZLE_DIAMETER, 0.0, (float(match[1]),))
    if match := _CURA_FILAMENT.fullmatch(text):
        # Cura gives metres per extruder: "1.23456m, 0m".
        return SlicerComment(SlicerCommentKind.FILAMENT_MM, 1000.0 * _sum(match[1] + match[2]))
    return None


def comment_of(line: str) -> str | None:
    """The comment part of a G-code line (after the first ``;``), or `None` if it has none."""
    _, sep, comment = line.partition(";")
    return comment if sep else None


class MetadataReader:
    """Slicer metadata read in one streaming pass, a line or a block of whole lines at a time.

    Slicers put some facts at the top and some at the end (PrusaSlicer writes its time estimate
    after the last move), so every line is read, but only one block at a time. Without a
    total-layers comment the layer count is the number of layer-change markers, if any.
    """

    def __init__(self) -> None:
        self._estimated: float | None = None
        self._total_layers: int | None = None
        self._filament_mm: float | None = None
        self._filament_g: float | None = None
        self._used: tuple[float, ...] = ()
        self._slots: tuple[int, ...] = ()
        self._materials: tuple[str, ...] = ()
        self._nozzles_mm: tuple[float, ...] = ()
        self._layer_markers = 0
        self._marker_kind: SlicerCommentKind | None = None

    def feed_line(self, line: str) -> None:
        """Read one line."""
        comment = comment_of(line)
        if comment is not None:
            self._note(read_slicer_comment(comment))

    def feed_lines(self, text: str) -> None:
        """Read a block of whole lines (``\\n``-separated; the last may lack its newline)."""
        # One C-level scan of the block; a file of millions of moves costs no Python per line.
        for match in _MAYBE_SLICER_COMMENT.finditer(text):
            self._note(read_slicer_comment(match[1]))

    def _note(self, found: SlicerComment | None) -> None:
        if found is None:
            return
        match found.kind:
            case SlicerCommentKind.ESTIMATED_TIME:
                # The first estimate wins: a file that states two (normal and a later summary)
                # repeats the same figure.
                if self._estimated is None:
                    self._estimated = found.value
            case SlicerCommentKind.TOTAL_LAYERS:
                self._total_layers = int(found.value)
            case SlicerCommentKind.LAYER_CHANGE | SlicerCommentKind.LAYER_INDEX:
                # Count one marker style only, the first seen, in case a post-processor added
                # the other; Cura's raft layers (negative indices) count like any layer.
                if self._marker_kind is None:
                    self._marker_kind = found.kind
                if found.kind is self._marker_kind:
                    self._layer_markers += 1
            case SlicerCommentKind.FILAMENT_MM:
                self._filament_mm = found.value
                self._used = found.values or self._used
            case SlicerCommentKind.FILAMENT_G:
                self._filament_g = found.value
                self._used = found.values or self._used
            case SlicerCommentKind.FILAMENT_SLOTS:
                self._slots = tuple(int(slot) for slot in found.values)
            case SlicerCommentKind.MATERIAL:
                self._materials = found.texts
            case SlicerCommentKind.NOZZLE_DIAMETER:
                self._nozzles_mm = found.values

    def _material(self) -> str | None:
        """The materials of the extruders used: by the slots the file names, else by the
        per-extruder use if it lines up with the materials, else the first material."""
        materials = self._materials
        if self._slots and all(1 <= slot <= len(materials) for slot in self._slots):
            materials = tuple(materials[slot - 1] for slot in self._slots)
        elif len(self._used) == len(materials) and any(self._used):
            materials = tuple(m for m, used in zip(materials, self._used, strict=True) if used)
        else:
            materials = materials[:1]
        names = sorted({m for m in materials if m})
        # An unreadable name among the used ones makes the whole unknown, not a part of it.
        if not names or len(names) < len(set(materials)):
            return None
        return "+".join(names)

    def _nozzle_um(self) -> int | None:
        if not self._nozzles_mm:
            return None
        micrometres = round(self._nozzles_mm[0] * 1000)
        return micrometres if micrometres in NOZZLE_UM_RANGE else None

    def result(self) -> GcodeMetadata:
        """What the lines read so far say."""
        total_layers = self._total_layers
        if total_layers is None and self._layer_markers > 0:
            total_layers = self._layer_markers
        return GcodeMetadata(
            estimated_time_s=self._estimated,
            layer_count=total_layers,
            filament_mm=self._filament_mm,
            filament_g=self._filament_g,
            material=self._material(),
            nozzle_um=self._nozzle_um(),
        )


def parse_metadata(lines: Iterable[str]) -> GcodeMetadata:
    """Read a whole G-code file's slicer metadata in one streaming pass (see `MetadataReader`)."""
    reader = MetadataReader()
    for line in lines:
        reader.feed_line(line)
    return reader.result()

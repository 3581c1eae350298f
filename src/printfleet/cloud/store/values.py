"""Value types the store's tables and records share: roles, kinds, actors, JSON documents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
"""Anything that survives a round trip through a JSON column."""

JSONObject: TypeAlias = "dict[str, JSONValue]"


class Role(StrEnum):
    """What a user may do with a printer, strongest first."""

    OWNER = "owner"
    OPERATOR = "operator"
    """May submit and control jobs, and confirm the plate."""
    VIEWER = "viewer"
    """May watch."""


class ShareRole(StrEnum):
    """The roles a printer can be shared with; ownership is not shared."""

    OPERATOR = "operator"
    VIEWER = "viewer"


class ActorKind(StrEnum):
    """Who or what caused something the audit log records."""

    USER = "user"
    PRINTER = "printer"
    SYSTEM = "system"
    """The cloud itself, e.g. the dispatcher or expiry."""


class Severity(StrEnum):
    """How urgent an alert, and the notification it becomes, is; the same three levels as a
    printer's ``AlertBody``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class ChannelKind(StrEnum):
    """How a notification leaves the cloud."""

    WEBHOOK = "webhook"
    APPRISE = "apprise"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who or what acted: a user id, a printer id, or a part of the cloud (``dispatcher``)."""

    kind: ActorKind
    id: str

    @classmethod
    def user(cls, user_id: str) -> Actor:
        """An authenticated user."""
        return cls(ActorKind.USER, user_id)

    @classmethod
    def printer(cls, printer_id: str) -> Actor:
        """A printer, by what it reported."""
        return cls(ActorKind.PRINTER, printer_id)

    @classmethod
    def system(cls, component: str) -> Actor:
        """A part of the cloud, named by role (``dispatcher``, ``expiry``)."""
        return cls(ActorKind.SYSTEM, component)


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An audit entry to write in the same transaction as a job change.

    The job id and printer id come from the job itself; ``command_id`` names the command the
    change is about (a start's id when recording :func:`~printfleet.protocol.dispatch.dispatched`).
    """

    actor: Actor
    action: str
    command_id: str | None = None
    detail: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileMetadata:
    """What the slicer said about a file, as far as it could be read."""

    estimated_s: int | None = None
    layers: int | None = None
    filament_mm: float | None = None
    has_thumbnail: bool = False
    filament_g: float | None = None
    material: str | None = None
    """Upper-case, as the slicer named it (PLA, PETG); several used ones joined by ``+``."""
    nozzle_um: int | None = None
    """The nozzle the file was sliced for, in micrometres (400 = 0.4 mm)."""

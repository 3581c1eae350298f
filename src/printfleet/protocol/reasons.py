"""Reason codes a printer gives when it refuses a command, and which of them a retry can cure."""

from enum import StrEnum


class Reason(StrEnum):
    """Why a printer refused a command. Every rejection carries exactly one."""

    MALFORMED = "MALFORMED"
    """The payload is not a well-formed command of this protocol version."""
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    """The envelope names a protocol version this printer does not speak."""
    BAD_SIGNATURE = "BAD_SIGNATURE"
    """The signature is missing or does not verify against the pinned cloud key."""
    WRONG_PRINTER = "WRONG_PRINTER"
    """The command is addressed to another printer."""
    DUPLICATE = "DUPLICATE"
    """This command id was already evaluated; the first evaluation's answer stands."""
    ALREADY_STARTED = "ALREADY_STARTED"
    """This job already started on this printer (under another command id)."""
    CLOCK_UNSYNCED = "CLOCK_UNSYNCED"
    """The printer cannot bound its offset to cloud time tightly enough to judge deadlines."""
    WINDOW_TOO_LONG = "WINDOW_TOO_LONG"
    """The command's validity window is longer than a printer accepts."""
    NOT_YET_VALID = "NOT_YET_VALID"
    """The command claims to be issued in the future."""
    STALE = "STALE"
    """The command's deadline has passed (or may have passed, given the clock bound)."""
    JOB_CANCELLED = "JOB_CANCELLED"
    """The job was cancelled on this printer; it can never start here."""
    BUSY = "BUSY"
    """The printer is not idle."""
    THERMAL_FAULT = "THERMAL_FAULT"
    """A thermal fault is latched; nothing may heat or start until a person clears it."""
    PLATE_NOT_CLEAR = "PLATE_NOT_CLEAR"
    """The plate sensor does not read clear."""
    PLATE_UNCONFIRMED = "PLATE_UNCONFIRMED"
    """No fresh confirmation that the plate is clear since the last print ended."""
    CONFIRMATION_OUTDATED = "CONFIRMATION_OUTDATED"
    """A plate confirmation that predates the end of the last print."""
    NOT_STAGED = "NOT_STAGED"
    """The job's file is not staged on this printer, or its checksum differs."""
    NO_SUCH_JOB = "NO_SUCH_JOB"
    """The command names a job this printer is not running."""
    NOT_PAUSED = "NOT_PAUSED"
    """Resume was asked of a printer that is not paused."""
    CLOUD_DISABLED = "CLOUD_DISABLED"
    """The printer is in LAN-only mode and takes no commands from the cloud."""
    STAGE_FAILED = "STAGE_FAILED"
    """The file could not be fetched, or its checksum did not match."""
    NOT_SIMULATED = "NOT_SIMULATED"
    """A ``simulate`` command reached a printer that is not a simulated one."""


TRANSIENT_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.BUSY,
        Reason.THERMAL_FAULT,
        Reason.PLATE_NOT_CLEAR,
        Reason.PLATE_UNCONFIRMED,
        Reason.CONFIRMATION_OUTDATED,
        Reason.CLOCK_UNSYNCED,
        Reason.STALE,
        Reason.NOT_YET_VALID,
        Reason.NOT_STAGED,
        Reason.STAGE_FAILED,
    }
)
"""Refusals after which the same job may be dispatched again while its window is open.

Every other reason ends the job as ``rejected``: retrying would meet the same refusal.
"""


def is_transient(reason: Reason) -> bool:
    """Whether a job refused for ``reason`` may go back to the queue."""
    return reason in TRANSIENT_REASONS

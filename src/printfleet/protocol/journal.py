"""What a printer must persist, before acting, so that S3 and S6 survive crashes and restarts.

The durable facts: every command id the printer has evaluated (accepted or not: a command is
judged once, so a late copy of a refused start cannot succeed after the cloud has moved the
job elsewhere); every job the printer started, finished or had cancelled; a latched thermal
fault until a person clears it; and the owner's plate-check setting. Records are written
ahead: the agent stores them durably before it touches the hardware or replies.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from printfleet.protocol.messages import (
    PROTOCOL_VERSION,
    FileName,
    JobOutcome,
    JournalStatus,
    LocalJobBody,
    MessageId,
    Millis,
    StartSource,
    WireModel,
    canonical_bytes,
)


class RecordKind(StrEnum):
    """The kinds of journal record."""

    COMMAND_SEEN = "command_seen"
    JOB_STARTED = "job_started"
    JOB_ENDED = "job_ended"
    JOB_CANCELLED = "job_cancelled"
    FAULT_LATCHED = "fault_latched"
    FAULT_CLEARED = "fault_cleared"
    PLATE_CHECK_SET = "plate_check_set"
    LOCAL_JOB_REPORT = "local_job_report"
    LOCAL_JOB_ACKED = "local_job_acked"


class JournalRecord(WireModel):
    """One line of a printer's journal.

    ``keep_until`` (cloud ms) lets a printer drop command ids that could no longer pass the
    freshness check anyway; job records carry ``None`` and are kept for good.
    """

    v: Literal[1] = PROTOCOL_VERSION
    kind: RecordKind
    job_id: MessageId | None = None
    command_id: MessageId | None = None
    keep_until: Millis | None = None
    outcome: JobOutcome | None = None
    """For ``job_ended``: how the print ended."""
    detail: Annotated[str, Field(max_length=500)] = ""
    """For ``fault_latched``: the fault's message; for ``fault_cleared``: who cleared it."""
    enabled: bool | None = None
    """For ``plate_check_set``."""
    source: StartSource | None = None
    """For ``job_started``: who asked for the print (None: the cloud, as before LAN mode)."""
    name: FileName | None = None
    """For a local ``job_started``: the file printed."""
    local_job: LocalJobBody | None = None
    """For ``local_job_report``: the report to deliver until the cloud acknowledges it."""

    def encode(self) -> bytes:
        """One canonical line (without the newline)."""
        return canonical_bytes(self.model_dump(mode="json"))


class Journal:
    """The in-memory view of a printer's journal; the agent rebuilds it from stored records."""

    def __init__(self) -> None:
        self._commands: dict[str, int | None] = {}
        self._jobs: dict[str, JournalStatus] = {}
        self.fault: str | None = None
        """The latched fault's message, if one is latched."""
        self.plate_check: bool | None = None
        """The owner's last plate-check choice, if they ever made one."""
        self._local_starts: dict[str, tuple[StartSource, str]] = {}
        self._reports: dict[str, LocalJobBody] = {}

    @classmethod
    def replay(cls, records: "list[JournalRecord]") -> "Journal":
        """Rebuild the view from records in the order they were written."""
        journal = cls()
        for record in records:
            journal.apply(record)
        return journal

    def apply(self, record: JournalRecord) -> None:
        """Fold one record into the view."""
        if record.kind is RecordKind.COMMAND_SEEN and record.command_id is not None:
            self._commands[record.command_id] = record.keep_until
        elif record.kind is RecordKind.FAULT_LATCHED:
            self.fault = record.detail or "thermal fault"
        elif record.kind is RecordKind.FAULT_CLEARED:
            self.fault = None
        elif record.kind is RecordKind.PLATE_CHECK_SET and record.enabled is not None:
            self.plate_check = record.enabled
        elif record.kind is RecordKind.LOCAL_JOB_REPORT:
            if record.job_id is not None and record.local_job is not None:
                self._reports[record.job_id] = record.local_job
        elif record.kind is RecordKind.LOCAL_JOB_ACKED:
            if record.job_id is not None:
                self._reports.pop(record.job_id, None)
        elif record.job_id is not None:
            previous = self.job_status(record.job_id)
            if record.kind is RecordKind.JOB_STARTED:
                status = JournalStatus.STARTED
                source, name = record.source, record.name
                if source is not None and source is not StartSource.CLOUD and name is not None:
                    self._local_starts[record.job_id] = (source, name)
            elif record.kind is RecordKind.JOB_ENDED:
                status = JournalStatus(record.outcome or JobOutcome.FAILED)
                self._local_starts.pop(record.job_id, None)
            elif previous is JournalStatus.UNKNOWN:
                status = JournalStatus.CANCELLED
            else:
                # A cancellation never hides a start: the print's own end record follows.
                return
            self._jobs[record.job_id] = status

    def seen_command(self, command_id: str) -> bool:
        """Whether this command id was evaluated before."""
        return command_id in self._commands

    def job_status(self, job_id: str) -> JournalStatus:
        """What this printer did about ``job_id``."""
        return self._jobs.get(job_id, JournalStatus.UNKNOWN)

    def local_start(self, job_id: str) -> tuple[StartSource, str] | None:
        """Who started a running local job, and its file; None for cloud jobs and ended ones."""
        return self._local_starts.get(job_id)

    def unacknowledged_reports(self) -> dict[str, LocalJobBody]:
        """Local jobs whose report the cloud has not acknowledged yet, oldest first."""
        return dict(self._reports)

    def interrupted(self) -> list[str]:
        """Jobs recorded as started that never recorded an end: a restart cut them short."""
        return [job_id for job_id, status in self._jobs.items() if status is JournalStatus.STARTED]

    def prune(self, cloud_now_earliest: int) -> list[str]:
        """Forget command ids whose ``keep_until`` has surely passed; returns those dropped."""
        dropped = [
            command_id
            for command_id, keep_until in self._commands.items()
            if keep_until is not None and keep_until < cloud_now_earliest
        ]
        for command_id in dropped:
            del self._commands[command_id]
        return dropped

    def live_records(self) -> list[JournalRecord]:
        """The records that rebuild this view: what a compacted journal file holds."""
        records = [
            JournalRecord(kind=RecordKind.COMMAND_SEEN, command_id=command_id, keep_until=until)
            for command_id, until in self._commands.items()
        ]
        for job_id, status in self._jobs.items():
            if status is JournalStatus.STARTED:
                source, name = self._local_starts.get(job_id, (None, None))
                records.append(
                    JournalRecord(
                        kind=RecordKind.JOB_STARTED, job_id=job_id, source=source, name=name
                    )
                )
            elif status is JournalStatus.CANCELLED:
                records.append(JournalRecord(kind=RecordKind.JOB_CANCELLED, job_id=job_id))
            elif status is not JournalStatus.UNKNOWN:
                outcome = JobOutcome(status.value)
                records.append(
                    JournalRecord(kind=RecordKind.JOB_ENDED, job_id=job_id, outcome=outcome)
                )
        if self.fault is not None:
            records.append(JournalRecord(kind=RecordKind.FAULT_LATCHED, detail=self.fault))
        if self.plate_check is not None:
            records.append(JournalRecord(kind=RecordKind.PLATE_CHECK_SET, enabled=self.plate_check))
        records.extend(
            JournalRecord(kind=RecordKind.LOCAL_JOB_REPORT, job_id=job_id, local_job=report)
            for job_id, report in self._reports.items()
        )
        return records

    @property
    def command_count(self) -> int:
        """How many command ids are remembered."""
        return len(self._commands)

"""The cloud-side job lifecycle: every legal move of a job, in one table.

A job ends in exactly one terminal state (S7). ``expired`` from ``dispatched`` is legal only
once the dispatcher has settled that the start cannot have happened (see ``dispatch``).
"""

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is."""

    QUEUED = "queued"
    STAGED = "staged"
    DISPATCHED = "dispatched"
    PRINTING = "printing"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """Whether the job is over."""
        return self in TERMINAL_STATES


class JobEvent(StrEnum):
    """What can happen to a job."""

    STAGED = "staged"
    """The file is on the chosen printer."""
    DISPATCHED = "dispatched"
    """A start command was issued (recorded before it is published)."""
    STARTED = "started"
    """The printer accepted the start, or its journal says it started."""
    PAUSED = "paused"
    RESUMED = "resumed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    """Refused for a reason a retry cannot cure."""
    REQUEUED = "requeued"
    """Refused for a transient reason, or settled as never started, while the window is open."""
    EXPIRED = "expired"
    """The start window closed before the job could start."""


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.REJECTED,
        JobState.EXPIRED,
    }
)

_Q, _S, _D, _P, _PA = (
    JobState.QUEUED,
    JobState.STAGED,
    JobState.DISPATCHED,
    JobState.PRINTING,
    JobState.PAUSED,
)

TRANSITIONS: dict[tuple[JobState, JobEvent], JobState] = {
    (_Q, JobEvent.STAGED): _S,
    (_Q, JobEvent.REJECTED): JobState.REJECTED,
    (_Q, JobEvent.CANCELLED): JobState.CANCELLED,
    (_Q, JobEvent.EXPIRED): JobState.EXPIRED,
    (_S, JobEvent.DISPATCHED): _D,
    (_S, JobEvent.REQUEUED): _Q,
    (_S, JobEvent.REJECTED): JobState.REJECTED,
    (_S, JobEvent.CANCELLED): JobState.CANCELLED,
    (_S, JobEvent.EXPIRED): JobState.EXPIRED,
    (_D, JobEvent.STARTED): _P,
    (_D, JobEvent.REQUEUED): _Q,
    (_D, JobEvent.REJECTED): JobState.REJECTED,
    (_D, JobEvent.EXPIRED): JobState.EXPIRED,
    (_D, JobEvent.CANCELLED): JobState.CANCELLED,
    # The start's ack can be lost while the print runs to its end.
    (_D, JobEvent.COMPLETED): JobState.COMPLETED,
    (_D, JobEvent.FAILED): JobState.FAILED,
    (_P, JobEvent.PAUSED): _PA,
    (_P, JobEvent.COMPLETED): JobState.COMPLETED,
    (_P, JobEvent.FAILED): JobState.FAILED,
    (_P, JobEvent.CANCELLED): JobState.CANCELLED,
    (_PA, JobEvent.RESUMED): _P,
    (_PA, JobEvent.COMPLETED): JobState.COMPLETED,
    (_PA, JobEvent.FAILED): JobState.FAILED,
    (_PA, JobEvent.CANCELLED): JobState.CANCELLED,
}
"""(state, event) -> next state. Anything absent is illegal."""


class IllegalTransitionError(ValueError):
    """A move the lifecycle does not allow; always a bug or a forged message."""

    def __init__(self, state: JobState, event: JobEvent) -> None:
        super().__init__(f"a {state.value} job cannot be {event.value}")
        self.state = state
        self.event = event


def transition(state: JobState, event: JobEvent) -> JobState:
    """The state after ``event``; raises :class:`IllegalTransitionError` if it may not happen."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransitionError(state, event) from None


def can(state: JobState, event: JobEvent) -> bool:
    """Whether ``event`` may happen to a job in ``state``."""
    return (state, event) in TRANSITIONS

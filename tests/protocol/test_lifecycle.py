"""The job lifecycle: the table is the whole truth, and nothing leaves a terminal state."""

import itertools

import pytest

from printfleet.protocol.lifecycle import (
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransitionError,
    JobEvent,
    JobState,
    can,
    transition,
)


@pytest.mark.parametrize(("state", "event"), sorted(TRANSITIONS))
def test_every_listed_transition_is_legal(state: JobState, event: JobEvent) -> None:
    assert transition(state, event) is TRANSITIONS[(state, event)]
    assert can(state, event)


def test_every_other_pair_raises() -> None:
    illegal = [
        (state, event)
        for state, event in itertools.product(JobState, JobEvent)
        if (state, event) not in TRANSITIONS
    ]
    assert illegal
    for state, event in illegal:
        assert not can(state, event)
        with pytest.raises(IllegalTransitionError, match=f"a {state.value} job cannot be"):
            transition(state, event)


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL_STATES:
        assert state.terminal
        assert not [event for event in JobEvent if can(state, event)]


def test_every_state_can_reach_an_end() -> None:
    """S7 at the level of the table: from anywhere a job can still end."""
    for state in JobState:
        reachable, frontier = {state}, [state]
        while frontier:
            current = frontier.pop()
            for (source, _), target in TRANSITIONS.items():
                if source is current and target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
        assert reachable & TERMINAL_STATES


def test_a_start_is_recorded_before_it_can_be_acknowledged() -> None:
    assert not can(JobState.STAGED, JobEvent.STARTED)
    assert not can(JobState.QUEUED, JobEvent.DISPATCHED)
    # Expiry from dispatched exists only for the settled case; the dispatcher guards it.
    assert can(JobState.DISPATCHED, JobEvent.EXPIRED)

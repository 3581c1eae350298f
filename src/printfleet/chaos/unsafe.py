"""The fleet without its safeguards, built from outside by wrapping ports.

``--safeguards off`` must still let the chaos checkers find violations: that is how they are
shown to work. The gate, the planner and the link supervisor have no switch to turn a check off,
so the unsafe fleet is assembled here, and only here, from stand-ins that take their place:

- :class:`PermissiveGate`, the printer's gate with S2 to S6 checks skipped (as printers before
  the 2023 remedies behaved: no deadline, no duplicate check, no plate check, busy or not);
- :func:`plan_without_safeguards`, the planner believing every online printer ready, every
  submitter allowed and the link up;
- :class:`CredulousLink`, the cloud's broker link that, when told to, takes its client library's
  word that it is connected (the 2023 lie);
- :func:`plan_ignoring_requirements`, the planner blind to what a job needs of a printer (its
  material and nozzle), as a cloud before farms' queues routed by loadout.

A printer owner's plate-check setting is not among these: it is a product feature, on by
default, and the permissive gate only skips the check the way a printer without the remedy did.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace

from printfleet.cloud.dispatch.link import LinkSupervisor
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobView,
    LinkEvidence,
    PrinterView,
    Requirements,
)
from printfleet.protocol.gate import Refusal, SafetyGate
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import PlateStatus, PrinterStatus


def _waived(*args: object, **kwargs: object) -> Refusal | None:
    """A check that passes whatever it is asked."""
    del args, kwargs
    return None


class PermissiveGate(SafetyGate):
    """A gate that believes every signature and skips the freshness, duplicate, once, idle,
    plate and heating-while-faulted checks. A cancelled job, a latched fault at start, a wrong
    printer and LAN-only mode are still refused, as they were before there were safeguards.

    Everything else is the real gate's: its entry points and handlers judge, and only the checks
    named here pass whatever they are asked.
    """

    check_signature = staticmethod(_waived)  # anyone may speak for the cloud
    check_duplicate = staticmethod(_waived)  # a copy is obeyed again
    check_fresh = staticmethod(_waived)  # no deadline, no clock
    check_plate = staticmethod(_waived)  # whatever lies on the plate
    check_once = staticmethod(_waived)  # a job may start again
    check_idle = staticmethod(_waived)  # busy or not
    check_may_heat = staticmethod(_waived)  # heat with a latched fault


def plan_without_safeguards(
    now: int,
    jobs: Iterable[JobView],
    printers: Mapping[str, PrinterView],
    link: LinkEvidence,
    policy: DispatchPolicy,
) -> list[dispatch.Decision]:
    """The real :func:`~printfleet.protocol.dispatch.plan`, fed what an unsafe cloud believes
    when it stages and starts: the link is up whatever the evidence (S8), every online printer
    is idle, clear, synced and freshly heard from (S4, S5), and every submitter may print
    anywhere (S1).

    What such a cloud sends of its own accord it still plans from what the printers report: the
    owners' settings, on the link's real evidence, and cancels of jobs a printer still runs.
    """
    every_job = list(jobs)
    up = LinkEvidence(verified_at=now, probe_interval_ms=link.probe_interval_ms)
    settings = dispatch.plan_settings(now, printers, link, policy)
    cancelled = [job for job in every_job if job.state is JobState.CANCELLED]
    cancels = [
        decision
        for decision in dispatch.plan(now, cancelled, printers, up, policy)
        if isinstance(decision, dispatch.CancelOnPrinter)
    ]
    submitters = frozenset(job.submitter for job in every_job)
    believed = {
        printer_id: _looks_ready(view, now, submitters) if view.online else view
        for printer_id, view in printers.items()
    }
    starts = [
        decision
        for decision in dispatch.plan(now, every_job, believed, up, policy)
        if not isinstance(decision, dispatch.ApplySettings | dispatch.CancelOnPrinter)
    ]
    return [*settings, *cancels, *starts]


def plan_ignoring_requirements(
    now: int,
    jobs: Iterable[JobView],
    printers: Mapping[str, PrinterView],
    link: LinkEvidence,
    policy: DispatchPolicy,
) -> list[dispatch.Decision]:
    """The real :func:`~printfleet.protocol.dispatch.plan`, told that no job needs any
    material or nozzle: every other safeguard holds, and files and starts go to printers
    without the job's spool."""
    blind = [replace(job, requirements=Requirements()) for job in jobs]
    return dispatch.plan(now, blind, printers, link, policy)


def _looks_ready(view: PrinterView, now: int, submitters: frozenset[str]) -> PrinterView:
    return replace(
        view,
        reported_at=now,
        status=PrinterStatus.IDLE,
        plate=PlateStatus.CLEAR,
        fault=None,
        clock_synced=True,
        cloud_enabled=True,
        job_id=None,
        reported=view.desired,
        operators=view.operators | submitters,
    )


class CredulousLink(LinkSupervisor):
    """The cloud's link supervisor, which, while :attr:`believing` is set, calls the link
    verified without round-trip evidence and so publishes into whatever its client holds."""

    believing: bool = False
    """Set by the false-reconnect injector: take the client library's word for it."""

    def verified(self) -> bool:
        """Verified on the library's word while believing it, else on evidence (S8)."""
        return self.believing or super().verified()

"""Jobs: submit (safely retried with an ``Idempotency-Key``), follow, cancel, pause, resume.

A job carries its reason and its audit trail, which answers "who or what caused this
command?" for every command sent about it (S1).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES, error_responses
from printfleet.cloud.api.schemas import AuditOut, JobChange, JobDetail, JobOut, NewJob
from printfleet.cloud.usecases.jobs import FROM_FILE
from printfleet.protocol.lifecycle import JobState

router = APIRouter(prefix="/api/v1", tags=["jobs"], responses=ERROR_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Retries with the same key return the job the first request created.",
    ),
]


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": JobOut, "description": "An earlier request with this key"}},
)
async def submit_job(
    body: NewJob,
    principal: Writer,
    context: Context,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a print of an uploaded file on a printer, on any printer of a model, or on any
    printer of one of your pools.

    A model-wide or pool job means "any printer of that model (or pool) that I may operate":
    printers the caller owns or that are shared with them as operator, judged again at every
    dispatch round, so a share revoked while the job waits takes that printer out of its reach.
    ``material`` and ``nozzle_um`` left out come from the file's slicer metadata; null means
    any. ``copies`` queues several jobs at once, sharing a ``batch_id`` (the answer is the
    first; ``GET /jobs?batch_id=`` lists them all); one ``Idempotency-Key`` covers them all.

    The job must start within ``start_within_s`` (default one hour) or it expires, and the
    submitter is told. Retrying with the same ``Idempotency-Key`` is safe: the answer is the
    job the first request created (200 instead of 201); reusing a key for a different
    request is 422.
    """
    created = await context.service.jobs.submit_job(
        principal,
        file_id=body.file_id,
        printer_id=body.printer_id,
        model=body.model,
        pool_id=body.pool_id,
        start_within_s=body.start_within_s,
        idempotency_key=idempotency_key,
        notify_completion=body.notify_completion,
        priority=body.priority,
        copies=body.copies,
        material=body.material if body.given("material") else FROM_FILE,
        nozzle_um=body.nozzle_um if body.given("nozzle_um") else FROM_FILE,
    )
    if not created.created:
        response.status_code = status.HTTP_200_OK
    return JobOut.of(created.job)


@router.get("/jobs")
async def list_jobs(
    *,
    principal: Reader,
    context: Context,
    state: Annotated[list[JobState] | None, Query(description="Only jobs in these states")] = None,
    printer_id: Annotated[str | None, Query(description="Only jobs for this printer")] = None,
    batch_id: Annotated[str | None, Query(description="Only the copies of one submission")] = None,
    older_than: Annotated[
        str | None, Query(description="The last job id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[JobOut]:
    """The caller's jobs, newest first, a page at a time."""
    jobs = await context.service.jobs.jobs_for(
        principal,
        states=state,
        printer_id=printer_id,
        batch_id=batch_id,
        older_than=older_than,
        limit=limit,
    )
    return [JobOut.of(job) for job in jobs]


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, principal: Reader, context: Context) -> JobDetail:
    """One job, with its reason and its audit trail."""
    job = await context.service.jobs.job(principal, job_id)
    audit = await context.service.jobs.job_audit(principal, job_id)
    return JobDetail(**JobOut.of(job).model_dump(), audit=[AuditOut.of(entry) for entry in audit])


@router.patch("/jobs/{job_id}", responses=error_responses(409))
async def change_job(job_id: str, body: JobChange, principal: Writer, context: Context) -> JobOut:
    """Reorder the queue: give a waiting job (queued or staged) a new priority; its submitter
    or its printer's owner may. A job that has started or ended is 409."""
    return JobOut.of(await context.service.jobs.set_priority(principal, job_id, body.priority))


@router.post("/jobs/{job_id}/cancel", responses=error_responses(409))
async def cancel_job(job_id: str, principal: Writer, context: Context) -> JobOut:
    """Cancel a job; a printer it was sent to is told, now and again while it still runs it."""
    return JobOut.of(await context.service.jobs.cancel_job(principal, job_id))


@router.post("/jobs/{job_id}/pause", status_code=status.HTTP_202_ACCEPTED)
async def pause_job(job_id: str, principal: Writer, context: Context) -> JobOut:
    """Pause a printing job; its state changes when the printer reports it paused."""
    await context.service.jobs.pause_or_resume(principal, job_id, pause=True)
    return JobOut.of(await context.service.jobs.job(principal, job_id))


@router.post("/jobs/{job_id}/resume", status_code=status.HTTP_202_ACCEPTED)
async def resume_job(job_id: str, principal: Writer, context: Context) -> JobOut:
    """Resume a paused job; its state changes when the printer reports it printing."""
    await context.service.jobs.pause_or_resume(principal, job_id, pause=False)
    return JobOut.of(await context.service.jobs.job(principal, job_id))

"""Commands about print jobs: ``upload``, ``print`` (or ``submit``: through the cloud or, with
``--lan``, straight to a printer), ``jobs`` (and ``jobs priority``, which reorders the queue) and
``cancel``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from printfleet.cli.failures import REFUSED, USAGE, CliError, lan_error, reported
from printfleet.cli.ids import full_id
from printfleet.cli.output import (
    JOB_STYLE,
    JsonOption,
    err,
    nozzle,
    out,
    print_json,
    styled,
    when,
)
from printfleet.cli.profiles import ProfileOption, connected
from printfleet.client import Client, Job
from printfleet.client.calls import FROM_FILE, FromFile
from printfleet.protocol.lifecycle import JobState

ANY = "any"
"""What ``--material`` and ``--nozzle`` take for "no requirement"."""
TOP_PRIORITY = 100
"""The highest priority a job may have."""


def parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r}: give a positive duration like 90s, 30m, 2h or 1d")
    if not match.group(2):
        # "5" could be seconds, minutes or hours: a window too short by 60x expires silently.
        number = match.group(1)
        raise typer.BadParameter(f"{text!r} has no unit: say {number}s, {number}m or {number}h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def parse_material(text: str | None) -> str | FromFile | None:
    """``--material``: a material name (upper-cased), ``any``, or left out (the file's)."""
    if text is None:
        return FROM_FILE
    if text.strip().lower() == ANY:
        return None
    name = text.strip().upper()
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{0,15}", name):
        raise typer.BadParameter(f"{text!r}: give one material like PLA, PETG or PA-CF, or any")
    return name


def parse_nozzle(text: str | None) -> int | FromFile | None:
    """``--nozzle``: millimetres (0.4) as micrometres, ``any``, or left out (the file's)."""
    if text is None:
        return FROM_FILE
    if text.strip().lower() == ANY:
        return None
    try:
        millimetres = float(text.strip().removesuffix("mm"))
    except ValueError:
        millimetres = 0.0
    micrometres = round(millimetres * 1000)
    if not 100 <= micrometres <= 2000:  # noqa: PLR2004 - the protocol's NozzleUm bounds
        raise typer.BadParameter(f"{text!r}: give a nozzle in millimetres like 0.4, or any")
    return micrometres


def full_pool_id(client: Client, text: str) -> str:
    """A pool's id from its name (or its id)."""
    for pool in client.list_pools():
        if text in (pool.name, pool.id):
            return pool.id
    raise CliError(f"not found: you have no pool {text!r} (see printfleet pools)", REFUSED)


def full_job_id(client: Client, text: str) -> str:
    """A full job id from a full one or from a unique start or end of one among the caller's
    recent jobs."""
    return full_id(text, "job", lambda: [job.id for job in client.list_jobs(limit=200)])


def upload(
    path: Annotated[Path, typer.Argument(help="A .gcode or .gcode.3mf file.")],
    name: Annotated[str | None, typer.Option(help="The name to store it under.")] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Upload a print file, with a progress bar; prints its id."""
    login, client = connected(profile)
    with reported(login.url), client:
        file = upload_file(client, path, name, quiet=json_output)
        if json_output:
            print_json(file)
        else:
            out.print(f"uploaded {file.name} ({file.size} bytes): [bold]{file.id}[/]")


def upload_file(client: Client, path: Path, name: str | None, *, quiet: bool) -> Any:
    if not path.is_file():
        raise CliError(f"no such file: {path}", USAGE)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task(f"uploading {path.name}", total=path.stat().st_size)
        return client.upload(
            path, name=name, progress=lambda sent, total: bar.update(task, completed=sent)
        )


def print_(
    target: Annotated[
        str, typer.Argument(help="A file to upload and print, or the id of an uploaded file.")
    ],
    printer: Annotated[str | None, typer.Option(help="Print on this printer.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Print on whichever printer of this model that you may operate (yours, or "
            "shared with you as operator) is free first."
        ),
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option(help="Print on whichever printer of this pool of yours (name or id) is free."),
    ] = None,
    copies: Annotated[
        int, typer.Option(min=1, max=50, help="Queue this many copies at once (1..50).")
    ] = 1,
    priority: Annotated[
        int,
        typer.Option(min=-100, max=100, help="Higher starts first (-100..100; default 0)."),
    ] = 0,
    material: Annotated[
        str | None,
        typer.Option(
            help="The material a printer must have loaded (PETG), or any; default: the one "
            "the file's slicer wrote."
        ),
    ] = None,
    nozzle: Annotated[
        str | None,
        typer.Option(
            help="The nozzle a printer must have, in mm (0.4), or any; default: the file's."
        ),
    ] = None,
    start_within: Annotated[
        str | None,
        typer.Option(
            help="Give up if it has not started within this long (90s, 30m, 2h; default 1h)."
        ),
    ] = None,
    notify: Annotated[bool, typer.Option(help="Be notified when it completes.")] = False,
    lan: Annotated[
        str | None,
        typer.Option(
            help="Print straight on the printer at this address (host, or host:port; port "
            "8090 if none), without the cloud."
        ),
    ] = None,
    access_code: Annotated[
        str | None,
        typer.Option(envvar="PRINTFLEET_ACCESS_CODE", help="The printer's LAN access code."),
    ] = None,
    confirm_plate: Annotated[
        bool, typer.Option(help="With --lan: you have looked, and the plate is clear.")
    ] = False,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Print a file on a printer, on any printer of a model or pool, or with --lan directly.

    A model or pool job goes to any printer of it that you may operate (yours, or shared with
    you as operator).

    The job waits (at most --start-within) until a printer is free, has its material and
    nozzle, and its plate is known to be clear; a printer without a plate sensor asks for
    `printfleet confirm-plate`. `printfleet jobs` says why each job waits.
    """
    if lan is not None:
        print_on_lan(lan, access_code, Path(target), confirm_plate, json_output)
        return
    with reported():
        if sum(target is not None for target in (printer, model, pool)) != 1:
            raise CliError(
                "say where to print: --printer ID, --model MODEL or --pool NAME (one)", USAGE
            )
        window = parse_duration(start_within) if start_within is not None else None
        wanted_material, wanted_nozzle = parse_material(material), parse_nozzle(nozzle)
    login, client = connected(profile)
    with reported(login.url), client:
        path = Path(target)
        if path.is_file():
            file_id = upload_file(client, path, None, quiet=json_output).id
        elif os.sep in target or "." in target:
            raise CliError(f"no such file: {target}", USAGE)
        else:
            file_id = target
        job = client.create_job(
            file_id,
            printer_id=printer,
            model=model,
            pool_id=full_pool_id(client, pool) if pool is not None else None,
            start_within_s=window,
            notify_completion=notify,
            priority=priority,
            copies=copies,
            material=wanted_material,
            nozzle_um=wanted_nozzle,
        )
        if json_output:
            print_json(job)
            return
        where = f"printer {printer}" if printer else f"pool {pool}" if pool else f"a {model}"
        what = f"{copies} copies, the first" if copies > 1 else "job"
        out.print(
            f"{what} [bold]{job.id}[/] {job.state} for {where}{needs(job)}; "
            f"it starts by {when(job.start_by)} or not at all"
        )
        if job.batch_id is not None:
            out.print(f"all copies: printfleet jobs --batch {job.batch_id}")


def needs(job: Job) -> str:
    """What a job requires of a printer, as words (" with PETG and a 0.4 mm nozzle")."""
    parts = []
    if job.requirements.material is not None:
        parts.append(job.requirements.material)
    if job.requirements.nozzle_um is not None:
        parts.append(f"a {nozzle(job.requirements.nozzle_um)} nozzle")
    return f" with {' and '.join(parts)}" if parts else ""


def print_on_lan(
    host: str, access_code: str | None, path: Path, confirm_plate: bool, json_output: bool
) -> None:
    with reported(host):
        if access_code is None:
            raise CliError("--lan needs the printer's --access-code", USAGE)
        from printfleet.client.lan import lan_print  # noqa: PLC0415 - only --lan needs it

        try:
            job = lan_print(host, access_code, path, confirm_plate=confirm_plate)
        except FileNotFoundError:
            raise
        except Exception as error:  # noqa: BLE001 - lan_error re-raises what it does not know
            raise lan_error(error) from None
        if json_output:
            print_json(job)
        else:
            out.print(f"printing {job.file} on {host}: job [bold]{job.job_id}[/]")


def jobs(
    job_id: Annotated[
        str | None,
        typer.Argument(
            help="Show this job and its audit trail; or `priority` to reorder one: "
            "`printfleet jobs priority ID 10`, `... ID --top`, or `... ID -- -5` (a negative "
            "priority after --)."
        ),
    ] = None,
    rest: Annotated[
        list[str] | None, typer.Argument(help="For `priority`: the job and its new priority.")
    ] = None,
    top: Annotated[
        bool, typer.Option("--top", help="For `priority`: put the job ahead of all yours.")
    ] = False,
    state: Annotated[
        list[JobState] | None, typer.Option(help="Only jobs in this state (repeatable).")
    ] = None,
    printer: Annotated[str | None, typer.Option(help="Only jobs for this printer.")] = None,
    batch: Annotated[str | None, typer.Option(help="Only the copies of one submission.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 20,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Your jobs, newest first, and why each waits; one job with its audit trail; or
    `jobs priority ID 10` to reorder the queue.

    With a job id (or its start or end): the job, the sentence saying why it waits, and who or
    what caused each of its commands.
    """
    if job_id == "priority":
        set_priority(rest or [], top=top, json_output=json_output, profile=profile)
        return
    with reported():
        if rest:
            raise CliError(f"unexpected {' '.join(rest)!r}: give one job id", USAGE)
    login, client = connected(profile)
    with reported(login.url), client:
        if job_id is not None:
            show_job(client, full_job_id(client, job_id), json_output=json_output)
            return
        found = client.list_jobs(states=state, printer_id=printer, batch_id=batch, limit=limit)
        if json_output:
            print_json(found)
            return
        if not found:
            out.print("no jobs")
            return
        pooled = any(job.pool_id for job in found)
        names = {pool.id: pool.name for pool in client.list_pools()} if pooled else {}
        out.print(jobs_table(found, names))


def show_job(client: Client, job_id: str, *, json_output: bool) -> None:
    """One job, why it waits, and its audit trail."""
    detail = client.get_job(job_id)
    if json_output:
        print_json(detail)
        return
    out.print(
        f"job [bold]{detail.id}[/] {detail.name}: "
        f"{styled(str(detail.state), {str(k): v for k, v in JOB_STYLE.items()})}"
        + (f" ({detail.reason})" if detail.reason and detail.wait is None else "")
    )
    if detail.wait is not None:
        out.print(f"waiting: {detail.wait.text} [dim]({detail.wait.code})[/]")
    where = detail.assigned_printer or detail.printer_id
    target = where or (f"pool {detail.pool_id}" if detail.pool_id else f"any {detail.model}")
    out.print(f"on {target}{needs(detail)}, priority {detail.priority}")
    if detail.batch_id is not None:
        out.print(f"copy {detail.copy_index} of {detail.copies} (batch {detail.batch_id})")
    trail = Table("at", "who", "action", "printer")
    for entry in detail.audit:
        who = f"{entry.actor.kind}:{entry.actor.id}"
        trail.add_row(when(entry.at), who, entry.action, entry.printer_id or "-")
    out.print(trail)


def jobs_table(found: list[Job], pool_names: Mapping[str, str]) -> Table:
    """Jobs as a table: what, where (a pool by its name in `pool_names`), why they wait, when."""
    table = Table("file", "state", "wait", "prio", "printer", "created", "starts by / ended")
    # Whole ids, folded to fit: time-ordered ids differ at their end, not at their start.
    table.add_column("job", overflow="fold", min_width=12)
    for job in found:
        where = job.assigned_printer or job.printer_id
        if where is None:
            where = (
                f"pool {pool_names.get(job.pool_id, job.pool_id)}"
                if job.pool_id
                else f"any {job.model}"
            )
        table.add_row(
            job.name,
            Text(str(job.state), style=JOB_STYLE.get(job.state, "")),
            Text(job.wait.code, style="yellow") if job.wait is not None else Text("-", "dim"),
            str(job.priority),
            where,
            when(job.created_at),
            when(job.ended_at if job.ended_at is not None else job.start_by),
            job.id,
        )
    return table


def set_priority(args: list[str], *, top: bool, json_output: bool, profile: str | None) -> None:
    """`jobs priority ID PRIORITY` or `jobs priority ID --top`."""
    with reported():
        if top and len(args) == 2:  # noqa: PLR2004 - a job and a priority
            raise CliError(
                "give a priority or --top, not both: printfleet jobs priority ID 10 "
                "(or printfleet jobs priority ID --top)",
                USAGE,
            )
        if len(args) != (1 if top else 2):
            raise CliError(
                "say which job and its priority: printfleet jobs priority ID 10 "
                "(or printfleet jobs priority ID --top)",
                USAGE,
            )
        wanted = None if top else _priority(args[1])
    login, client = connected(profile)
    with reported(login.url), client:
        job_id = full_job_id(client, args[0])
        if wanted is None:
            waiting = client.list_jobs(states=[JobState.QUEUED, JobState.STAGED], limit=200)
            highest = max((job.priority for job in waiting if job.id != job_id), default=0)
            wanted = min(TOP_PRIORITY, highest + 1)
        job = client.set_priority(job_id, wanted)
        if json_output:
            print_json(job)
        else:
            out.print(f"job {job.id} now has priority {job.priority}")


def _priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = TOP_PRIORITY + 1
    if not -TOP_PRIORITY <= value <= TOP_PRIORITY:
        raise CliError(f"{text!r}: a priority is a whole number from -100 to 100, e.g. 10", USAGE)
    return value


def cancel(
    job_id: Annotated[str, typer.Argument(help="The job to cancel.")],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Cancel a job (its id, or its start or end); a printer already running it is told to stop."""
    login, client = connected(profile)
    with reported(login.url), client:
        job = client.cancel_job(full_job_id(client, job_id))
        if json_output:
            print_json(job)
        else:
            out.print(f"job {job.id} {job.state}")

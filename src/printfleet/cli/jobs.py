"""Commands about print jobs: ``upload``, ``print`` (through the cloud or, with ``--lan``,
straight to a printer), ``jobs`` and ``cancel``."""

from __future__ import annotations

import os
import re
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

from printfleet.cli.failures import USAGE, CliError, lan_error, reported
from printfleet.cli.ids import full_id
from printfleet.cli.output import JOB_STYLE, JsonOption, err, out, print_json, styled, when
from printfleet.cli.profiles import ProfileOption, connected
from printfleet.client import Client
from printfleet.protocol.lifecycle import JobState


def parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r}: give a positive duration like 90s, 30m, 2h or 1d")
    if not match.group(2):
        # "5" could be seconds, minutes or hours: a window too short by 60x expires silently.
        number = match.group(1)
        raise typer.BadParameter(f"{text!r} has no unit: say {number}s, {number}m or {number}h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def full_job_id(client: Client, text: str) -> str:
    """A full job id from a full one or from a unique start of one among the caller's recent
    jobs."""
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
    """Print a file on a printer, or on any printer of a model you may operate; or, with --lan,
    directly.

    The job waits (at most --start-within) until the printer is free and its plate is known
    to be clear; a printer without a plate sensor asks for `printfleet confirm-plate`.
    """
    if lan is not None:
        print_on_lan(lan, access_code, Path(target), confirm_plate, json_output)
        return
    with reported():
        if (printer is None) == (model is None):
            raise CliError("say where to print: --printer ID or --model MODEL", USAGE)
        window = parse_duration(start_within) if start_within is not None else None
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
            start_within_s=window,
            notify_completion=notify,
        )
        if json_output:
            print_json(job)
            return
        where = f"printer {printer}" if printer else f"a {model}"
        out.print(
            f"job [bold]{job.id}[/] {job.state} for {where}; "
            f"it starts by {when(job.start_by)} or not at all"
        )


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
    job_id: Annotated[str | None, typer.Argument(help="Show this job and its audit trail.")] = None,
    state: Annotated[
        list[JobState] | None, typer.Option(help="Only jobs in this state (repeatable).")
    ] = None,
    printer: Annotated[str | None, typer.Option(help="Only jobs for this printer.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 20,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Your jobs, newest first; or one job (its id, or the start of it) with who or what caused
    each of its commands."""
    login, client = connected(profile)
    with reported(login.url), client:
        if job_id is not None:
            detail = client.get_job(full_job_id(client, job_id))
            if json_output:
                print_json(detail)
                return
            out.print(
                f"job [bold]{detail.id}[/] {detail.name}: "
                f"{styled(str(detail.state), {str(k): v for k, v in JOB_STYLE.items()})}"
                + (f" ({detail.reason})" if detail.reason else "")
            )
            trail = Table("at", "who", "action", "printer")
            for entry in detail.audit:
                who = f"{entry.actor.kind}:{entry.actor.id}"
                trail.add_row(when(entry.at), who, entry.action, entry.printer_id or "-")
            out.print(trail)
            return
        found = client.list_jobs(states=state, printer_id=printer, limit=limit)
        if json_output:
            print_json(found)
            return
        table = Table("file", "state", "printer", "created", "starts by / ended", "reason")
        # Whole ids, folded to fit: time-ordered ids differ at their end, not at their start.
        table.add_column("job", overflow="fold", min_width=12)
        for job in found:
            where = job.assigned_printer or job.printer_id or f"any {job.model}"
            table.add_row(
                job.name,
                Text(str(job.state), style=JOB_STYLE.get(job.state, "")),
                where,
                when(job.created_at),
                when(job.ended_at if job.ended_at is not None else job.start_by),
                job.reason or "",
                job.id,
            )
        out.print(table if found else "no jobs")


def cancel(
    job_id: Annotated[str, typer.Argument(help="The job to cancel.")],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Cancel a job (its id, or the start of it); a printer already running it is told to stop."""
    login, client = connected(profile)
    with reported(login.url), client:
        job = client.cancel_job(full_job_id(client, job_id))
        if json_output:
            print_json(job)
        else:
            out.print(f"job {job.id} {job.state}")

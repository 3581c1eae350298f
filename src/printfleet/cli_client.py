"""The client commands of ``printfleet``: log in, see printers, upload, print, follow and act.

Each command is a thin shell over :class:`printfleet.client.Client` (or, with ``--lan``, over
:mod:`printfleet.agent.lan_client`): it finds the server and token (``--profile``, or the
``PRINTFLEET_URL`` / ``PRINTFLEET_TOKEN`` environment), calls, and shows the answer as a table
or, with ``--json``, as JSON. Every failure ends in one line on stderr and an exit code from
:data:`EXIT_CODES`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
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

from printfleet.client import (
    BreakerOpen,
    Client,
    Forbidden,
    NotFound,
    Overloaded,
    Printer,
    PrintfleetError,
    RateLimited,
    RetryPolicy,
    ServerError,
    StreamEvent,
    Unauthenticated,
    Unreachable,
)
from printfleet.protocol.lifecycle import JobState

__all__ = ["EXIT_CODES", "EXIT_CODES_HELP", "install"]

EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "the server (or printer) refused: invalid, not found, not allowed, or a conflict",
    2: "wrong usage: an unknown option or a bad value",
    3: "not logged in, or the token is wrong, expired or revoked",
    4: "the server (or printer) cannot be reached",
    5: "the server is busy or rate-limits this token (429/503): the message says how long to wait",
    6: "the server failed (5xx)",
    130: "interrupted (Ctrl-C)",
}
"""What each exit status of a client command means."""

EXIT_CODES_HELP = "Exit codes of the client commands:\n\n" + "\n\n".join(
    f"{code:>3}  {what}" for code, what in EXIT_CODES.items()
)

REFUSED, USAGE, AUTH, UNREACHABLE, BUSY, SERVER_FAILED, INTERRUPTED = 1, 2, 3, 4, 5, 6, 130

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# -- profiles --------------------------------------------------------------------------------------

PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_PROFILE = "default"

ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        envvar="PRINTFLEET_PROFILE",
        help="Which saved login to use (see `printfleet login`); default: the last one saved.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class CliError(Exception):
    """A failure to report in one line, with its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def config_path() -> Path:
    """Where profiles are kept: ``$XDG_CONFIG_HOME/printfleet/client.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "printfleet" / "client.toml"


@dataclass
class Profiles:
    """The saved logins: a server URL and a token each (never a password)."""

    default: str | None = None
    entries: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Profiles:
        """The profiles in ``path`` (none if it does not exist)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise CliError(f"cannot read {path}: {error}", USAGE) from None
        entries = data.get("profiles", {})
        if not isinstance(entries, dict):
            raise CliError(f"{path}: [profiles] must be a table", USAGE)
        clean = {
            name: {k: v for k, v in values.items() if isinstance(v, str)}
            for name, values in entries.items()
            if isinstance(values, dict)
        }
        default = data.get("default")
        return cls(default if isinstance(default, str) else None, clean)

    def save(self, path: Path) -> None:
        """Write to ``path``, readable by its owner only (it holds tokens)."""
        lines = [f"default = {json.dumps(self.default)}"] if self.default else []
        for name, values in sorted(self.entries.items()):
            # JSON string escapes are valid TOML basic-string escapes.
            lines += ["", f"[profiles.{name}]"]
            lines += [f"{key} = {json.dumps(value)}" for key, value in sorted(values.items())]
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write("\n".join(lines) + "\n")
        temporary.replace(path)


@dataclass(frozen=True)
class Login:
    """Where to send requests and as whom."""

    url: str
    token: str | None
    profile: str | None


def _login_for(profile: str | None) -> Login:
    env_url, env_token = os.environ.get("PRINTFLEET_URL"), os.environ.get("PRINTFLEET_TOKEN")
    saved = Profiles.load(config_path())
    name = profile or saved.default or DEFAULT_PROFILE
    entry = saved.entries.get(name, {})
    if profile is not None and not entry and not env_url:
        raise CliError(
            f"no profile {profile!r} in {config_path()}: "
            f"log in with `printfleet login URL --email you@example.org --profile {profile}`",
            AUTH,
        )
    url = env_url or entry.get("url")
    if not url:
        raise CliError(
            "not logged in: run `printfleet login URL --email you@example.org`, "
            "or set PRINTFLEET_URL and PRINTFLEET_TOKEN",
            AUTH,
        )
    return Login(url, env_token or entry.get("token"), name if entry else None)


def _client(login: Login) -> Client:
    try:
        # A person is waiting: give up on long server-requested waits and say so instead.
        return Client(login.url, login.token, policy=RetryPolicy(max_retry_after=10.0))
    except ValueError as error:
        raise CliError(str(error), USAGE) from None


# -- errors ----------------------------------------------------------------------------------------


def _wait_hint(seconds: float | None) -> str:
    return f"try again in {seconds:.0f} s" if seconds is not None else "try again shortly"


def _explain(error: PrintfleetError, url: str) -> CliError:
    message = error.message
    if isinstance(error, Unreachable):
        return CliError(f"{message} (is the server running, and is the URL right?)", UNREACHABLE)
    if isinstance(error, BreakerOpen):
        return CliError(message, UNREACHABLE)
    if isinstance(error, Unauthenticated):
        return CliError(
            f"{url} did not accept the login: {message}; log in again with `printfleet login`",
            AUTH,
        )
    if isinstance(error, RateLimited):
        return CliError(f"too many requests: {message}; {_wait_hint(error.retry_after)}", BUSY)
    if isinstance(error, Overloaded):
        return CliError(f"the server is busy: {message}; {_wait_hint(error.retry_after)}", BUSY)
    if isinstance(error, ServerError):
        return CliError(f"the server failed: {message}", SERVER_FAILED)
    if isinstance(error, Forbidden):
        return CliError(f"not allowed: {message}", REFUSED)
    if isinstance(error, NotFound):
        return CliError(f"not found: {message}", REFUSED)
    return CliError(message, REFUSED)


def _lan_error(error: Exception) -> CliError:
    from printfleet.agent.lan_client import (  # noqa: PLC0415 - only --lan needs it
        LanAuthError,
        LanError,
        LanRateLimitedError,
        LanRefusedError,
    )

    if isinstance(error, LanAuthError):
        return CliError(f"the printer refused the access code: {error.detail}", AUTH)
    if isinstance(error, LanRateLimitedError):
        return CliError(
            f"the printer locked out this address: {error.detail}; {_wait_hint(error.retry_after)}",
            BUSY,
        )
    if isinstance(error, LanRefusedError):
        return CliError(f"the printer refused: {error.reason}: {error.detail}", REFUSED)
    if isinstance(error, LanError):
        if error.status == 0:
            return CliError(f"cannot reach the printer: {error.detail}", UNREACHABLE)
        return CliError(f"the printer answered {error.status}: {error.detail}", REFUSED)
    if isinstance(error, ValueError):  # pydantic's ValidationError: not what a printer says
        return CliError(f"unexpected answer from the printer: {error}"[:300], SERVER_FAILED)
    raise error


def _fail(error: CliError) -> NoReturn:
    err.print(f"[red]error:[/] {Text(str(error))}", soft_wrap=True)
    raise typer.Exit(error.status)


@contextlib.contextmanager
def _reported(url: str = "") -> Iterator[None]:
    """Turns every expected failure into one line on stderr and its exit status."""
    try:
        yield
    except CliError as error:
        _fail(error)
    except PrintfleetError as error:
        _fail(_explain(error, url))
    except FileNotFoundError as error:
        _fail(CliError(str(error), USAGE))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(INTERRUPTED) from None


def _connected(profile: str | None) -> tuple[Login, Client]:
    with _reported():
        login = _login_for(profile)
        return login, _client(login)


# -- output ----------------------------------------------------------------------------------------


def _print_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    typer.echo(json.dumps(data, indent=2))


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:  # noqa: PLR2004 - below two minutes, seconds read best
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"


STATE_STYLE = {
    "idle": "green",
    "printing": "cyan",
    "paused": "yellow",
    "error": "bold red",
    "offline": "dim",
}
PLATE_STYLE = {"clear": "green", "occupied": "red", "needs_confirmation": "yellow"}
JOB_STYLE = {
    JobState.COMPLETED: "green",
    JobState.PRINTING: "cyan",
    JobState.FAILED: "red",
    JobState.REJECTED: "red",
    JobState.EXPIRED: "yellow",
    JobState.CANCELLED: "dim",
}


def _styled(value: str | None, styles: dict[str, str]) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text(value, style=styles.get(value, ""))


def _heater(current: float | None, target: float | None) -> str:
    if current is None:
        return "-"
    return f"{current:.0f}/{target:.0f}°C" if target else f"{current:.0f}°C"


@dataclass
class PrinterRow:
    """What the fleet view shows of one printer, updated from the event stream."""

    id: str
    name: str
    model: str
    online: bool
    status: str | None
    plate: str | None
    fault: str | None
    job_id: str | None
    hotend: tuple[float | None, float | None] = (None, None)
    bed: tuple[float | None, float | None] = (None, None)
    percent: int | None = None
    reported_at: float | None = None
    """``time.monotonic()`` when the printer last reported, so that its age keeps counting."""
    link_evidence_at: float | None = None
    """``time.monotonic()`` of the cloud's latest broker-link evidence, as last fetched."""

    @classmethod
    def of(cls, printer: Printer) -> PrinterRow:
        """From the API's printer."""
        temps = printer.temperatures
        return cls(
            id=printer.id,
            name=printer.name,
            model=printer.model,
            online=printer.online,
            status=str(printer.status) if printer.status is not None else None,
            plate=str(printer.plate) if printer.plate is not None else None,
            fault=printer.fault,
            job_id=printer.job_id,
            hotend=(temps.hotend.current_c, temps.hotend.target_c) if temps else (None, None),
            bed=(temps.bed.current_c, temps.bed.target_c) if temps else (None, None),
            percent=printer.progress.percent if printer.progress else None,
            reported_at=_instant(printer.report_age_s),
            link_evidence_at=_instant(printer.link_evidence_age_s),
        )

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        """A ``printer_state`` or ``printer_telemetry`` event's data (docs/api.md 2.2)."""
        if kind == "printer_state":
            self.online = bool(data.get("online", self.online))
            for name in ("status", "plate", "fault", "job_id"):
                if name in data:
                    setattr(self, name, data[name])
        elif kind == "printer_telemetry":
            self.status = data.get("status", self.status)
            for heater in ("hotend", "bed"):
                reading = data.get(heater)
                if isinstance(reading, dict):
                    setattr(self, heater, (reading.get("current_c"), reading.get("target_c")))
            progress = data.get("progress")
            self.percent = progress.get("percent") if isinstance(progress, dict) else None
        self.reported_at = time.monotonic()


def _instant(age_s: float | None) -> float | None:
    return None if age_s is None else time.monotonic() - age_s


def _printers_table(rows: list[PrinterRow], title: str = "printers") -> Table:
    now = time.monotonic()
    table = Table(title=title, title_justify="left")
    for column in ("printer", "model", "state", "hotend", "bed", "plate", "job", "heard"):
        table.add_column(column)
    table.add_column("link evidence", justify="right")
    for row in rows:
        state = (row.status or "online") if row.online else "offline"
        if row.fault:
            state = f"error: {row.fault}"
        job = "-" if row.job_id is None else row.job_id[-8:]
        if row.percent is not None:
            job = f"{job} {row.percent}%"
        table.add_row(
            Text.assemble(row.id, "\n", (row.name, "dim")),
            row.model,
            _styled(state, STATE_STYLE) if not row.fault else Text(state, style="bold red"),
            _heater(*row.hotend),
            _heater(*row.bed),
            _styled(row.plate, PLATE_STYLE),
            job,
            _age(None if row.reported_at is None else now - row.reported_at),
            _age(None if row.link_evidence_at is None else now - row.link_evidence_at),
        )
    return table


def _parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r}: give a positive duration like 90s, 30m, 2h or 1d")
    if not match.group(2):
        # "5" could be seconds, minutes or hours: a window too short by 60x expires silently.
        number = match.group(1)
        raise typer.BadParameter(f"{text!r} has no unit: say {number}s, {number}m or {number}h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


ID_LENGTH = 36
"""A full id (a UUID in its text form)."""
MIN_PREFIX = 4


def _job_id(client: Client, text: str) -> str:
    """A full job id from a full one or from a unique start of one among the caller's recent
    jobs (ids are time-ordered, so recent jobs share their first characters: give enough)."""
    text = text.strip()
    if len(text) >= ID_LENGTH:
        return text
    if len(text) < MIN_PREFIX:
        raise CliError(f"{text!r}: give at least {MIN_PREFIX} characters of a job id", USAGE)
    matches = [job.id for job in client.list_jobs(limit=200) if job.id.startswith(text)]
    if not matches:
        raise CliError(f"not found: none of your recent jobs has an id starting {text!r}", REFUSED)
    if len(matches) > 1:
        raise CliError(
            f"{text!r} starts {len(matches)} job ids ({', '.join(matches[:3])}, ...): "
            "give more characters",
            USAGE,
        )
    return matches[0]


# -- commands --------------------------------------------------------------------------------------


def login(
    url: Annotated[str, typer.Argument(help="The server, e.g. https://print.example.org")],
    email: Annotated[
        str | None, typer.Option("--email", "-e", help="Your account's e-mail address.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="PRINTFLEET_PASSWORD", help="Your password (asked for when not given)."
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="An API token to save instead of logging in.")
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="The name to save this login under.")
    ] = DEFAULT_PROFILE,
) -> None:
    """Log in to a printfleet server and save the server and a token as a profile.

    With --email, a new token is made from your password (which is never saved); with
    --token, that token is checked and saved. Profiles live in
    $XDG_CONFIG_HOME/printfleet/client.toml (mode 0600); the last one saved is the default.
    """
    with _reported(url):
        if not PROFILE_NAME.match(profile):
            raise CliError("a profile name is 1-64 letters, digits, '-' or '_'", USAGE)
        if (email is None) == (token is None):
            raise CliError("log in with either --email (and a password) or --token", USAGE)
        with _client(Login(url, token, profile)) as client:
            if token is None:
                assert email is not None  # noqa: S101 - checked just above
                if password is None:
                    password = typer.prompt("password", hide_input=True)
                issued = client.login(
                    email, password, token_name=f"cli@{socket.gethostname()}"[:100]
                )
                token, who = issued.token, email
            else:
                client.list_tokens()  # proves the token works (and may read)
                who = "the token's owner"
        saved = Profiles.load(config_path())
        saved.entries[profile] = {"url": client.url, "token": token}
        saved.default = profile
        saved.save(config_path())
        out.print(f"logged in to {client.url} as {who}; saved as profile {profile!r}")


def printers(
    printer: Annotated[str | None, typer.Argument(help="Only this printer.")] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Your printers: state, temperatures, plate, and how fresh the cloud's evidence is."""
    login, client = _connected(profile)
    with _reported(login.url), client:
        found = [client.get_printer(printer)] if printer else client.list_printers()
        if json_output:
            _print_json(found)
            return
        if not found:
            out.print("no printers yet: provision one with the API or the web page")
            return
        out.print(_printers_table([PrinterRow.of(p) for p in found]))


def upload(
    path: Annotated[Path, typer.Argument(help="A .gcode or .gcode.3mf file.")],
    name: Annotated[str | None, typer.Option(help="The name to store it under.")] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Upload a print file, with a progress bar; prints its id."""
    login, client = _connected(profile)
    with _reported(login.url), client:
        file = _upload(client, path, name, quiet=json_output)
        if json_output:
            _print_json(file)
        else:
            out.print(f"uploaded {file.name} ({file.size} bytes): [bold]{file.id}[/]")


def _upload(client: Client, path: Path, name: str | None, *, quiet: bool) -> Any:
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
        typer.Option(help="Print straight on the printer at this address, without the cloud."),
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
        _print_on_lan(lan, access_code, Path(target), confirm_plate, json_output)
        return
    with _reported():
        if (printer is None) == (model is None):
            raise CliError("say where to print: --printer ID or --model MODEL", USAGE)
        window = _parse_duration(start_within) if start_within is not None else None
    login, client = _connected(profile)
    with _reported(login.url), client:
        path = Path(target)
        if path.is_file():
            file_id = _upload(client, path, None, quiet=json_output).id
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
            _print_json(job)
            return
        where = f"printer {printer}" if printer else f"a {model}"
        out.print(
            f"job [bold]{job.id}[/] {job.state} for {where}; "
            f"it starts by {_when(job.start_by)} or not at all"
        )


def _print_on_lan(
    host: str, access_code: str | None, path: Path, confirm_plate: bool, json_output: bool
) -> None:
    with _reported(host):
        if access_code is None:
            raise CliError("--lan needs the printer's --access-code", USAGE)
        from printfleet.agent.lan_client import lan_print  # noqa: PLC0415 - only --lan needs it

        try:
            job = lan_print(host, access_code, path, confirm_plate=confirm_plate)
        except FileNotFoundError:
            raise
        except Exception as error:  # noqa: BLE001 - _lan_error re-raises what it does not know
            raise _lan_error(error) from None
        if json_output:
            _print_json(job)
        else:
            out.print(f"printing {job.file} on {host}: job [bold]{job.job_id}[/]")


def status(
    lan: Annotated[
        str | None, typer.Option(help="Ask the printer at this address instead of the cloud.")
    ] = None,
    access_code: Annotated[
        str | None,
        typer.Option(envvar="PRINTFLEET_ACCESS_CODE", help="The printer's LAN access code."),
    ] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """The cloud's health; or, with --lan, one printer's state straight from it."""
    if lan is not None:
        with _reported(lan):
            if access_code is None:
                raise CliError("--lan needs the printer's --access-code", USAGE)
            from printfleet.agent.lan_client import lan_status  # noqa: PLC0415

            try:
                state = lan_status(lan, access_code)
            except Exception as error:  # noqa: BLE001 - _lan_error re-raises what it does not know
                raise _lan_error(error) from None
            if json_output:
                _print_json(state)
                return
            table = Table(
                title=f"{state.printer_id} ({state.model}, {state.mode})", show_header=False
            )
            for key, value in state.model_dump(mode="json").items():
                table.add_row(key, "-" if value is None else str(value))
            out.print(table)
        return
    login, client = _connected(profile)
    with _reported(login.url), client:
        health = client.health()
        if json_output:
            _print_json(health)
        else:
            link = health.link
            evidence = "-" if link is None else _age(link.evidence_age_s)
            style = "green" if health.status == "ok" else "bold red"
            out.print(
                f"{client.url}: [{style}]{health.status}[/]; store "
                f"{'ok' if health.store.ok else health.store.error}; broker link "
                f"{'verified' if link and link.verified else 'not verified'}, evidence {evidence}"
            )
        if health.status != "ok":
            raise typer.Exit(BUSY)


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
    login, client = _connected(profile)
    with _reported(login.url), client:
        if job_id is not None:
            detail = client.get_job(_job_id(client, job_id))
            if json_output:
                _print_json(detail)
                return
            out.print(
                f"job [bold]{detail.id}[/] {detail.name}: "
                f"{_styled(str(detail.state), {str(k): v for k, v in JOB_STYLE.items()})}"
                + (f" ({detail.reason})" if detail.reason else "")
            )
            trail = Table("at", "who", "action", "printer")
            for entry in detail.audit:
                who = f"{entry.actor.kind}:{entry.actor.id}"
                trail.add_row(_when(entry.at), who, entry.action, entry.printer_id or "-")
            out.print(trail)
            return
        found = client.list_jobs(states=state, printer_id=printer, limit=limit)
        if json_output:
            _print_json(found)
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
                _when(job.created_at),
                _when(job.ended_at if job.ended_at is not None else job.start_by),
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
    login, client = _connected(profile)
    with _reported(login.url), client:
        job = client.cancel_job(_job_id(client, job_id))
        if json_output:
            _print_json(job)
        else:
            out.print(f"job {job.id} {job.state}")


def confirm_plate(
    printer: Annotated[str, typer.Argument(help="The printer whose plate you have looked at.")],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Confirm a printer's plate is clear (for printers without a plate sensor)."""
    login, client = _connected(profile)
    with _reported(login.url), client:
        sent = client.confirm_plate(printer)
        if json_output:
            _print_json(sent)
        else:
            out.print(f"told {sent.printer_id} its plate is clear")


def share(
    printer: Annotated[str, typer.Argument(help="A printer you own.")],
    email: Annotated[str | None, typer.Argument(help="Share it with this person.")] = None,
    role: Annotated[
        str, typer.Option(help="operator (may print on it) or viewer (may only watch it).")
    ] = "operator",
    remove: Annotated[
        bool, typer.Option("--remove", help="Take this person's share away instead.")
    ] = False,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Who may use your printer: with no e-mail, list its shares; with one, share it as
    operator (may print on it) or viewer, or --remove the share (that person's waiting jobs
    leave the printer at once, and a job they run there can no longer be paused by them)."""
    with _reported():
        if role not in {"operator", "viewer"}:
            raise CliError(f"--role must be operator or viewer, not {role!r}", USAGE)
        if remove and email is None:
            raise CliError(
                "say whose share to remove: printfleet share PRINTER EMAIL --remove", USAGE
            )
    login, client = _connected(profile)
    with _reported(login.url), client:
        if email is None:
            found = client.shares(printer)
            if json_output:
                _print_json(found)
                return
            table = Table("shared with", "role")
            for share in found:
                table.add_row(share.email, share.role)
            out.print(table if found else f"{printer} is not shared with anyone")
            return
        if remove:
            share = client.unshare_printer(printer, email)
        else:
            share = client.share_printer(
                printer, email, "operator" if role == "operator" else "viewer"
            )
        if json_output:
            _print_json(share)
        elif remove:
            out.print(f"{share.email} may no longer use {share.printer_id}")
        else:
            out.print(f"{share.email} is now {share.role} of {share.printer_id}")


alerts_app = typer.Typer(help="Alerts from your printers: list them, acknowledge them.")


@alerts_app.callback(invoke_without_command=True)
def alerts(
    context: typer.Context,
    all_alerts: Annotated[bool, typer.Option("--all", help="Include acknowledged alerts.")] = False,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Alerts nobody acknowledged yet (with --all, every recent one), newest first."""
    if context.invoked_subcommand is not None:
        return
    login, client = _connected(profile)
    with _reported(login.url), client:
        found = client.list_alerts(unacked=not all_alerts)
        if json_output:
            _print_json(found)
            return
        table = Table("alert", "printer", "kind", "severity", "message", "raised", "acked")
        for alert in found:
            style = SEVERITY_STYLE.get(alert.severity, "")
            table.add_row(
                alert.id,
                alert.printer_id,
                alert.kind,
                Text(alert.severity, style=style),
                alert.message,
                _when(alert.created_at),
                _when(alert.acked_at),
            )
        out.print(table if found else "no alerts")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="The alert to acknowledge.")],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Acknowledge an alert (the first acknowledgement stands)."""
    login, client = _connected(profile)
    with _reported(login.url), client:
        alert = client.ack_alert(alert_id)
        if json_output:
            _print_json(alert)
        else:
            out.print(f"acknowledged {alert.kind} on {alert.printer_id}")


SEVERITY_STYLE = {"critical": "bold white on red", "warning": "bold yellow", "info": ""}


@dataclass
class FleetView:
    """The live view: the printers, and the latest notifications with alerts highlighted."""

    refetch: Callable[[], list[Printer]]
    only: str | None
    rows: dict[str, PrinterRow] = field(default_factory=dict)
    log: list[Text] = field(default_factory=list)
    fetched_at: float = 0.0

    REFETCH_S: ClassVar[float] = 5.0
    """How often the printers are fetched again: the stream carries no link evidence."""

    def fetch(self) -> None:
        """Fetch the printers afresh."""
        # A new dict, not an update: the refresh thread may be drawing the old one.
        self.rows = {p.id: PrinterRow.of(p) for p in self.refetch() if self._wanted(p.id)}
        self.fetched_at = time.monotonic()

    def apply(self, event: StreamEvent) -> None:
        """Fold one stream block into the view."""
        if event.kind in {"dropped", "resync"}:
            self.fetch()
            self._note(Text(f"{event.kind}: refetched the printers", style="dim"))
            return
        if time.monotonic() - self.fetched_at > self.REFETCH_S:
            self.fetch()
        note = event.notification
        if note is None or not self._wanted(note.printer_id):
            return
        row = self.rows.get(note.printer_id or "")
        if row is not None and note.kind in {"printer_state", "printer_telemetry"}:
            row.apply(note.kind, note.data)
            return
        style = SEVERITY_STYLE.get(note.severity, "") if note.is_alert else ""
        stamp = note.created_at[11:19]
        self._note(Text(f"{stamp} {note.kind} {note.printer_id or ''}: {note.title}", style=style))

    def _wanted(self, printer_id: str | None) -> bool:
        return self.only is None or printer_id == self.only

    def _note(self, line: Text) -> None:
        self.log = [*self.log, line][-12:]

    def __rich__(self) -> Group:
        """The view as rich renderables (Live redraws it, so ages keep counting)."""
        title = f"printer {self.only}" if self.only else "fleet"
        log = Text("\n").join(self.log) if self.log else Text("waiting for events", style="dim")
        return Group(
            _printers_table(list(self.rows.values()), title=f"{title} (live; Ctrl-C to stop)"),
            Panel(log, title="events", title_align="left"),
        )


def watch(
    printer: Annotated[str | None, typer.Argument(help="Only this printer.")] = None,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many events (default: never).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print each event as one line of JSON instead.")
    ] = False,
    profile: ProfileOption = None,
) -> None:
    """Follow your fleet (or one printer) live from the server's event stream.

    Alerts are highlighted; the stream reconnects by itself and resumes where it left off.
    """
    login, client = _connected(profile)
    with _reported(login.url), client:
        seen = 0
        events = client.events()
        if json_output:
            for event in events:
                typer.echo(json.dumps({"kind": event.kind, "id": event.id, "data": event.data}))
                seen += 1
                if count is not None and seen >= count:
                    break
            events.close()
            return
        if printer is not None:
            client.get_printer(printer)  # fails early, and clearly, for an unknown printer
        view = FleetView(client.list_printers, printer)
        view.fetch()
        with Live(view, console=out, refresh_per_second=4) as live:
            for event in events:
                view.apply(event)
                live.refresh()
                seen += 1
                if count is not None and seen >= count:
                    break
        events.close()


def install(app: typer.Typer) -> None:
    """Register the client commands on the ``printfleet`` app."""
    app.command()(login)
    app.command()(printers)
    app.command()(upload)
    app.command("print")(print_)
    app.command()(jobs)
    app.command()(cancel)
    app.command()(watch)
    app.command("confirm-plate")(confirm_plate)
    app.command()(share)
    app.add_typer(alerts_app, name="alerts")
    app.command()(status)

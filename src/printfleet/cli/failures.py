"""What a client command's failure looks like: one line on stderr and an exit code from
:data:`EXIT_CODES`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer
from rich.text import Text

from printfleet.cli.output import err
from printfleet.client import (
    BreakerOpen,
    Forbidden,
    NotFound,
    Overloaded,
    PrintfleetError,
    RateLimited,
    ServerError,
    Unauthenticated,
    Unreachable,
)

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


class CliError(Exception):
    """A failure to report in one line, with its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def wait_hint(seconds: float | None) -> str:
    """When to try again, as the server said (or "shortly")."""
    return f"try again in {seconds:.0f} s" if seconds is not None else "try again shortly"


def explain(error: PrintfleetError, url: str) -> CliError:
    """An SDK error as one line for a person, with its exit status."""
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
        return CliError(f"too many requests: {message}; {wait_hint(error.retry_after)}", BUSY)
    if isinstance(error, Overloaded):
        return CliError(f"the server is busy: {message}; {wait_hint(error.retry_after)}", BUSY)
    if isinstance(error, ServerError):
        return CliError(f"the server failed: {message}", SERVER_FAILED)
    if isinstance(error, Forbidden):
        return CliError(f"not allowed: {message}", REFUSED)
    if isinstance(error, NotFound):
        return CliError(f"not found: {message}", REFUSED)
    return CliError(message, REFUSED)


def lan_error(error: Exception) -> CliError:
    """A LAN client error as one line for a person, with its exit status; re-raises others."""
    from printfleet.client.lan import (  # noqa: PLC0415 - only --lan needs it
        LanAuthError,
        LanError,
        LanRateLimitedError,
        LanRefusedError,
    )

    if isinstance(error, LanAuthError):
        return CliError(f"the printer refused the access code: {error.detail}", AUTH)
    if isinstance(error, LanRateLimitedError):
        return CliError(
            f"the printer locked out this address: {error.detail}; {wait_hint(error.retry_after)}",
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


def fail(error: CliError) -> NoReturn:
    """Print ``error`` on stderr and exit with its status."""
    err.print(f"[red]error:[/] {Text(str(error))}", soft_wrap=True)
    raise typer.Exit(error.status)


@contextlib.contextmanager
def reported(url: str = "") -> Iterator[None]:
    """Turns every expected failure into one line on stderr and its exit status."""
    try:
        yield
    except CliError as error:
        fail(error)
    except PrintfleetError as error:
        fail(explain(error, url))
    except FileNotFoundError as error:
        fail(CliError(str(error), USAGE))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(INTERRUPTED) from None

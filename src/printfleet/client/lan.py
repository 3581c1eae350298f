"""The client side of a printer's LAN API: what ``printfleet print --lan`` and the screen use.

Everything here talks straight to one printer's agent over the local network, with its access
code; no broker and no cloud are involved. The printer's safety gate judges every action
exactly as it judges cloud commands, so a refusal comes back with the same reason codes. The
agent's LAN API (``printfleet.agent.lan``) answers with the models defined here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict

__all__ = [
    "DEFAULT_LAN_PORT",
    "LanAuthError",
    "LanClient",
    "LanError",
    "LanFile",
    "LanJob",
    "LanProgress",
    "LanRateLimitedError",
    "LanRefusedError",
    "LanStatus",
    "lan_base_url",
    "lan_print",
    "lan_status",
]

DEFAULT_LAN_PORT = 8090
"""Where an agent's LAN API listens unless its config says otherwise."""
API_PREFIX = "/lan/v1"
ACCESS_CODE_HEADER = "X-Access-Code"
SHA256_HEADER = "X-Sha256"

StartedBy = Literal["lan", "screen"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class LanProgress(_Model):
    """Where the running print is."""

    percent: int
    layer: int
    total_layers: int
    time_left_s: int


class LanFile(_Model):
    """A file on the printer's storage (its SD card)."""

    name: str
    size: int


class LanStatus(_Model):
    """A printer's state as its LAN API reports it."""

    printer_id: str
    model: str
    mode: Literal["cloud+lan", "lan-only"]
    status: str
    """``idle``, ``printing``, ``paused`` or ``error``."""
    job_id: str | None = None
    file: str | None = None
    """The file being printed, if any."""
    plate: str
    """``clear``, ``occupied``, ``needs_confirmation`` or ``unchecked``."""
    fault: str | None = None
    broker_connected: bool
    progress: LanProgress | None = None
    hotend_c: float
    bed_c: float


class LanJob(_Model):
    """A print the printer accepted: the id it reports under, and its file."""

    job_id: str
    file: str
    started_by: StartedBy


class LanError(Exception):
    """The printer answered with an error; ``status`` is the HTTP status, ``detail`` its words."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class LanAuthError(LanError):
    """The access code is wrong (HTTP 401)."""


class LanRateLimitedError(LanError):
    """Too many wrong access codes from this address; try again after ``retry_after`` s."""

    def __init__(self, status: int, detail: str, retry_after: float) -> None:
        super().__init__(status, detail)
        self.retry_after = retry_after


class LanRefusedError(LanError):
    """The printer's safety gate refused the action; ``reason`` is a protocol reason code
    (``PLATE_UNCONFIRMED``, ``BUSY``, ``THERMAL_FAULT``, ...)."""

    def __init__(self, status: int, detail: str, reason: str) -> None:
        super().__init__(status, detail)
        self.args = (f"{status}: {reason}: {detail}",)
        self.reason = reason


def lan_base_url(host: str, port: int = DEFAULT_LAN_PORT) -> str:
    """The API's base URL for ``host``: a name or address, ``host:port``, or a full URL."""
    host = host.strip().rstrip("/")
    if not host:
        msg = "a LAN host is needed (a name, an address, host:port or http://host:port)"
        raise ValueError(msg)
    if "://" in host:
        parsed = httpx.URL(host)
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            msg = f"not an http(s) URL: {host!r}"
            raise ValueError(msg)
        return f"{host}{API_PREFIX}"
    if host.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        name, _, port_text = host.partition(":")
        if not port_text.isdigit() or not name:
            msg = f"not host:port: {host!r}"
            raise ValueError(msg)
        return f"http://{name}:{int(port_text)}{API_PREFIX}"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{API_PREFIX}"


class LanClient:
    """A synchronous client of one printer's LAN API. Use as a context manager, or ``close()``.

    ``host`` is what :func:`lan_base_url` takes; ``transport`` lets tests and unusual networks
    choose how requests travel (a source address, say).
    """

    def __init__(
        self,
        host: str,
        access_code: str,
        *,
        port: int = DEFAULT_LAN_PORT,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not access_code:
            msg = "an access code is needed (it is in the printer's agent config)"
            raise ValueError(msg)
        self.base_url = lan_base_url(host, port)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={ACCESS_CODE_HEADER: access_code},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> LanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def status(self) -> LanStatus:
        """The printer's state now."""
        return LanStatus.model_validate(self._call("GET", "/status"))

    def files(self) -> list[LanFile]:
        """The files on the printer's storage, by name."""
        answer = self._call("GET", "/files")
        return [LanFile.model_validate(item) for item in _list(answer)]

    def upload(self, path: Path, *, name: str | None = None) -> LanFile:
        """Copy a local file to the printer's storage as ``name`` (default: its own name).

        The printer checks the sha256 sent along, so a file damaged on the way is not kept.
        """
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        stored = name or path.name
        answer = self._call(
            "PUT", f"/files/{_quote(stored)}", content=data, headers={SHA256_HEADER: digest}
        )
        return LanFile.model_validate(answer)

    def print_file(self, name: str, *, started_by: StartedBy = "lan") -> LanJob:
        """Print a file already on the printer's storage; raises LanRefusedError if the gate
        refuses (busy, plate not known clear, a latched fault)."""
        answer = self._call("POST", "/print", json={"file": name, "started_by": started_by})
        return LanJob.model_validate(answer)

    def confirm_plate(self, by: str = "a person on the LAN") -> None:
        """Tell the printer its plate is clear (made after the last print ended)."""
        self._call("POST", "/confirm-plate", json={"by": by})

    def clear_fault(self, by: str = "a person on the LAN") -> None:
        """Clear a latched thermal fault, once the cause is dealt with."""
        self._call("POST", "/clear-fault", json={"by": by})

    def pause(self) -> None:
        """Pause the running print."""
        self._call("POST", "/pause")

    def resume(self) -> None:
        """Resume the paused print (judged like a start: refused with a latched fault)."""
        self._call("POST", "/resume")

    def cancel(self) -> None:
        """Cancel the running or paused print."""
        self._call("POST", "/cancel")

    def _call(self, method: str, path: str, **kwargs: object) -> object:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as error:
            msg = f"cannot reach the printer at {self.base_url}: {error}"
            raise LanError(0, msg) from error
        return _answer(response)


def _quote(name: str) -> str:
    return httpx.URL(path=name).raw_path.decode()


def _list(answer: object) -> list[object]:
    if not isinstance(answer, list):
        raise LanError(0, f"unexpected answer from the printer: {answer!r}"[:300])
    return answer


def _answer(response: httpx.Response) -> object:
    """The JSON body of a success, or the matching LanError."""
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:300]}
    if response.is_success:
        return body
    detail = str(body.get("detail", "")) if isinstance(body, dict) else str(body)
    status = response.status_code
    if status == httpx.codes.UNAUTHORIZED:
        raise LanAuthError(status, detail or "wrong access code")
    if status == httpx.codes.TOO_MANY_REQUESTS:
        retry_after = float(response.headers.get("Retry-After", "60"))
        raise LanRateLimitedError(status, detail, retry_after)
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        raise LanRefusedError(status, detail, body["reason"])
    raise LanError(status, detail)


def lan_status(
    host: str,
    access_code: str,
    *,
    port: int = DEFAULT_LAN_PORT,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> LanStatus:
    """A printer's state, asked over the local network (no broker, no cloud).

    ``host`` is a name or address (``port`` applies), ``host:port`` or ``http(s)://host:port``;
    ``access_code`` is the printer's LAN access code. Raises :class:`LanAuthError` for a wrong
    code, :class:`LanRateLimitedError` after too many, and :class:`LanError` for anything else
    (``status`` 0 when the printer cannot be reached).
    """
    with LanClient(host, access_code, port=port, timeout=timeout, transport=transport) as client:
        return client.status()


def lan_print(
    host: str,
    access_code: str,
    file: Path,
    *,
    port: int = DEFAULT_LAN_PORT,
    name: str | None = None,
    confirm_plate: bool = False,
    confirmed_by: str = "a person on the LAN",
    timeout: float = 60.0,
    transport: httpx.BaseTransport | None = None,
) -> LanJob:
    """Upload ``file`` to a printer's storage over the local network and start printing it.

    ``name`` is the name on the printer (default: the file's own). ``confirm_plate`` first tells
    a printer without a plate sensor that its plate is clear: pass it only when a person has
    looked (``confirmed_by`` names them in the printer's report). The printer's gate decides
    as for any start; a refusal raises :class:`LanRefusedError` with its reason code (``BUSY``,
    ``PLATE_UNCONFIRMED``, ``PLATE_NOT_CLEAR``, ``THERMAL_FAULT``, ...). Other errors as
    :func:`lan_status`. Raises FileNotFoundError if ``file`` does not exist.
    """
    if not file.is_file():
        msg = f"no such file: {file}"
        raise FileNotFoundError(msg)
    with LanClient(host, access_code, port=port, timeout=timeout, transport=transport) as client:
        stored = client.upload(file, name=name)
        if confirm_plate:
            client.confirm_plate(confirmed_by)
        return client.print_file(stored.name)

"""Shared builders for protocol tests: a cloud signer, a printer core with a synced clock."""

import itertools
import uuid
from collections.abc import Callable, Iterator

import pytest

from printfleet.protocol.gate import Gate, GateSettings, PrinterState
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import TimeRequestEvent, encode
from printfleet.protocol.printer import PrinterCore
from printfleet.protocol.signing import CommandSigner, CommandVerifier

OFFSET = 1_700_000_000_000
"""Cloud time minus printer-local time in these tests."""


def counter_ids() -> Callable[[], str]:
    """Deterministic, valid message ids."""
    numbers: Iterator[int] = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(numbers)))


@pytest.fixture
def signer() -> CommandSigner:
    return CommandSigner.generate()


@pytest.fixture
def issuer(signer: CommandSigner) -> CommandIssuer:
    return CommandIssuer(signer, counter_ids())


def make_printer(
    signer: CommandSigner,
    *,
    sensor: bool = False,
    settings: GateSettings | None = None,
    printer_id: str = "p1",
    gate: Gate | None = None,
) -> PrinterCore:
    return PrinterCore(
        PrinterState(printer_id=printer_id, has_plate_sensor=sensor),
        verifier=CommandVerifier(signer.public_key),
        new_id=counter_ids(),
        settings=settings,
        gate=gate,
    )


def sync_clock(printer: PrinterCore, issuer: CommandIssuer, local: int, rtt: int = 20) -> None:
    """One time round trip of ``rtt`` ms, answered by the cloud at its midpoint."""
    request = printer.request_time(local)
    assert isinstance(request, TimeRequestEvent)
    reply = issuer.time_reply(
        printer.state.printer_id,
        now=local + rtt // 2 + OFFSET,
        nonce=request.body.nonce,
        request_sent_local=request.body.sent_local,
    )
    output = printer.receive(encode(reply), local + rtt)
    assert output.decision.accepted, output.decision.detail


@pytest.fixture
def printer(signer: CommandSigner, issuer: CommandIssuer) -> PrinterCore:
    """A sensorless printer whose clock is synced at local time 1000."""
    core = make_printer(signer)
    sync_clock(core, issuer, 1_000)
    return core

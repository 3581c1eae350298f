"""Hostile MQTT payloads into the printer's core and the cloud's ingestion: never a crash.

Whatever arrives on a printer's commands topic, the core answers with a refusal that names a
reason and starts nothing; whatever arrives on a printer's topics at the cloud is either a
well-formed message of that printer or counted and dropped. Payloads are arbitrary bytes,
arbitrary JSON, and real signed commands with one field replaced (where a parser is likeliest to
trip), including integers too long for Python's int-from-string limit.
"""

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printfleet.cloud.dispatch.fleet_view import FleetView
from printfleet.protocol.gate import PrinterState, StartPrint
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import (
    DecodeError,
    RejectedEvent,
    decode_command,
    decode_event,
    decode_presence,
    decode_telemetry,
    encode,
)
from printfleet.protocol.printer import PrinterCore
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner, CommandVerifier
from printfleet.protocol.topics import Topics

SIGNER = CommandSigner.from_private_bytes(bytes(range(32)))
ISSUER = CommandIssuer(SIGNER, lambda: str(uuid.uuid4()))
PRINTER = "fuzz-1"
NOW = 1_800_000_000_000
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Integers beyond CPython's 4,300-digit str-to-int limit make json.loads raise ValueError.
HUGE_INTEGER = st.integers(4_301, 6_000).map(lambda digits: "9" * digits)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _real_commands() -> list[dict[str, Any]]:
    """One of each command a printer gets, signed, as JSON objects."""
    commands = [
        ISSUER.start(
            PRINTER,
            str(uuid.uuid4()),
            now=NOW,
            not_after=NOW + 20_000,
            sha256="a" * 64,
            name="x.gcode",
        ),
        ISSUER.stage(
            PRINTER,
            str(uuid.uuid4()),
            now=NOW,
            file_url="http://127.0.0.1:1/f",
            sha256="b" * 64,
            size=10,
            name="x.gcode",
        ),
        ISSUER.cancel(PRINTER, str(uuid.uuid4()), now=NOW),
        ISSUER.confirm_plate(PRINTER, now=NOW, by="alice"),
        ISSUER.journal_query(PRINTER, (str(uuid.uuid4()),), now=NOW),
    ]
    return [json.loads(encode(command)) for command in commands]


REAL_COMMANDS = _real_commands()


@st.composite
def mutated_command(draw: st.DrawFn) -> bytes:
    """A real signed command with one top-level or body field replaced, added or removed."""
    document = json.loads(json.dumps(draw(st.sampled_from(REAL_COMMANDS))))
    target = document
    if isinstance(document.get("body"), dict) and draw(st.booleans()):
        target = document["body"]
    key = draw(st.sampled_from([*sorted(target), "extra"]))
    action = draw(st.sampled_from(["replace", "remove", "huge"]))
    if action == "remove":
        target.pop(key, None)
        return json.dumps(document).encode()
    if action == "huge":
        marker = "HUGE-INTEGER-MARKER"
        target[key] = marker
        return json.dumps(document).replace(f'"{marker}"', draw(HUGE_INTEGER)).encode()
    target[key] = draw(JSON_VALUE)
    return json.dumps(document).encode()


HOSTILE_PAYLOAD = st.one_of(
    st.binary(max_size=300),
    JSON_VALUE.map(lambda value: json.dumps(value).encode()),
    HUGE_INTEGER.map(lambda digits: f'{{"v": 1, "id": {digits}}}'.encode()),
    mutated_command(),
)


def _printer() -> PrinterCore:
    return PrinterCore(
        PrinterState(printer_id=PRINTER, has_plate_sensor=True),
        verifier=CommandVerifier(SIGNER.public_key),
        new_id=lambda: str(uuid.uuid4()),
    )


@FUZZ
@given(payload=HOSTILE_PAYLOAD)
def test_every_decoder_rejects_hostile_bytes_with_a_decode_error(payload: bytes) -> None:
    for decoder in (decode_command, decode_event, decode_telemetry, decode_presence):
        refusal: DecodeError | None = None
        try:
            decoder(payload)
        except DecodeError as error:
            refusal = error
        if refusal is not None:
            assert refusal.reason in {Reason.MALFORMED, Reason.UNSUPPORTED_VERSION}
            assert refusal.detail


@FUZZ
@given(payload=HOSTILE_PAYLOAD)
def test_the_printer_refuses_hostile_commands_with_a_reason_and_starts_nothing(
    payload: bytes,
) -> None:
    core = _printer()
    output = core.receive(payload, 5_000)
    assert not any(isinstance(action, StartPrint) for action in output.actions)
    if output.decision.accepted:
        # Only a command the cloud really signed can pass (an unchanged field, say).
        assert output.command is not None
        return
    assert output.decision.reason is not None
    rejected = [event for event in output.events if isinstance(event, RejectedEvent)]
    assert [event.body.reason for event in rejected] == [output.decision.reason]


def test_an_integer_beyond_the_parser_limit_is_malformed_not_a_crash() -> None:
    payload = ('{"v": 1, "id": ' + "7" * 5_000 + "}").encode()
    output = _printer().receive(payload, 5_000)
    assert output.decision.reason is Reason.MALFORMED
    assert "not JSON" in output.decision.detail


TOPICS = Topics()
TOPIC = st.one_of(
    st.sampled_from(
        [
            TOPICS.events(PRINTER),
            TOPICS.telemetry(PRINTER),
            TOPICS.presence(PRINTER),
            TOPICS.commands(PRINTER),
        ]
    ),
    st.text(max_size=60),
)


@FUZZ
@given(topic=TOPIC, payload=HOSTILE_PAYLOAD)
def test_the_cloud_drops_and_counts_what_it_cannot_use(topic: str, payload: bytes) -> None:
    fleet = FleetView(lambda: NOW, topics=TOPICS)
    ingested = fleet.ingest(topic, payload)
    stats = fleet.stats
    if ingested is None:
        assert stats.malformed + stats.spoofed + stats.unknown_topic == 1
        assert fleet.views() == {}
    else:
        assert stats.accepted == 1
        assert ingested.printer_id == PRINTER

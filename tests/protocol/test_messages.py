"""Messages: one canonical encoding, strict decoding, clear errors for bad payloads."""

import json
import typing
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import (
    MAX_PAYLOAD_BYTES,
    AckBody,
    Command,
    CommandType,
    DecodeError,
    Heater,
    HeaterTelemetry,
    PlateStatus,
    Presence,
    PrinterStatus,
    Telemetry,
    canonical_bytes,
    decode_command,
    decode_event,
    decode_presence,
    decode_telemetry,
    encode,
    make_event,
)
from printfleet.protocol.reasons import Reason

JOB = "00000000-0000-0000-0000-0000000000aa"
SHA = "ab" * 32


def every_command(issuer: CommandIssuer) -> list[object]:
    now = 1_700_000_000_000
    return [
        issuer.stage("p1", JOB, now=now, file_url="http://x/f", sha256=SHA, size=3, name="a.gcode"),
        issuer.start("p1", JOB, now=now, not_after=now + 10_000, sha256=SHA, name="a.gcode"),
        issuer.pause("p1", JOB, now=now),
        issuer.resume("p1", JOB, now=now),
        issuer.cancel("p1", JOB, now=now),
        issuer.confirm_plate("p1", now=now, by="alice"),
        issuer.clear_fault("p1", now=now, by="alice"),
        issuer.set_plate_check("p1", now=now, enabled=False, by="alice"),
        issuer.set_temperature("p1", now=now, heater=Heater.BED, target=60),
        issuer.journal_query("p1", (JOB,), now=now),
        issuer.time_reply("p1", now=now, nonce=JOB, request_sent_local=5),
    ]


def test_every_command_round_trips_byte_for_byte(issuer: CommandIssuer) -> None:
    for command in every_command(issuer):
        payload = encode(command)  # type: ignore[arg-type]
        decoded = decode_command(payload)
        assert decoded == command
        assert encode(decoded) == payload


def test_encoding_is_canonical() -> None:
    assert canonical_bytes({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


def test_events_round_trip() -> None:
    body = AckBody(command_id=JOB, command_type="start")
    event = make_event(body, event_id=JOB, printer_id="p1", job_id=JOB, sent_at=5)
    assert decode_event(encode(event)) == event


def test_telemetry_and_presence_round_trip() -> None:
    telemetry = Telemetry(
        printer_id="p1",
        seq=3,
        sent_at=None,
        status=PrinterStatus.IDLE,
        plate=PlateStatus.CLEAR,
        hotend=HeaterTelemetry(temp_dc=250, target_dc=0),
        bed=HeaterTelemetry(temp_dc=250, target_dc=0),
    )
    assert decode_telemetry(encode(telemetry)) == telemetry
    presence = Presence(printer_id="p1", online=False)
    assert decode_presence(encode(presence)) == presence


@pytest.mark.parametrize(
    ("payload", "reason", "fragment"),
    [
        (b"\xff\xfe garbage", Reason.MALFORMED, "not JSON"),
        (b"[1, 2]", Reason.MALFORMED, "not a JSON object"),
        (b'{"v": 2, "type": "start"}', Reason.UNSUPPORTED_VERSION, "version 2"),
        (b'{"v": true, "type": "pause"}', Reason.UNSUPPORTED_VERSION, "version True"),
        (b'{"v": 1.0, "type": "pause"}', Reason.UNSUPPORTED_VERSION, "version 1.0"),
        (b'{"v": 1, "type": "launch_rocket"}', Reason.MALFORMED, "type"),
        (b'{"v": 1, "type": "pause"}', Reason.MALFORMED, "id"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), Reason.MALFORMED, "too large"),
        (b"[" * 100_000, Reason.MALFORMED, ""),
    ],
)
def test_bad_payloads_get_a_reason(payload: bytes, reason: Reason, fragment: str) -> None:
    with pytest.raises(DecodeError) as error:
        decode_command(payload)
    assert error.value.reason is reason
    assert fragment in error.value.detail


def test_unknown_fields_are_refused(issuer: CommandIssuer) -> None:
    command = issuer.cancel("p1", JOB, now=1)
    document = json.loads(encode(command))
    document["priority"] = "urgent"
    with pytest.raises(DecodeError, match="priority"):
        decode_command(json.dumps(document).encode())


def test_printer_ids_cannot_smuggle_topic_characters(issuer: CommandIssuer) -> None:
    for bad in ("a/b", "a+b", "#", "UPPER", ""):
        with pytest.raises(ValueError, match="printer_id"):
            issuer.cancel(bad, JOB, now=1)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_decoders(payload: bytes) -> None:
    reasons = set()
    for decoder in (decode_command, decode_event, decode_telemetry, decode_presence):
        try:
            decoder(payload)
        except DecodeError as error:
            reasons.add(error.reason)
    assert reasons <= {Reason.MALFORMED, Reason.UNSUPPORTED_VERSION}


def test_command_type_names_every_command_exactly_as_the_wire_does() -> None:
    union, _ = typing.get_args(Command)
    on_the_wire = {cls.model_fields["type"].default for cls in typing.get_args(union)}
    assert on_the_wire == {kind.value for kind in CommandType}
    # Acks and rejections carry the word itself: the enum compares equal to it.
    ack = AckBody(command_id=str(uuid.uuid4()), command_type=CommandType.START)
    assert ack.model_dump_json().endswith('"command_type":"start"}')
    assert ack.command_type == CommandType.START

"""End to end: a printer's alerts reach every channel (S6), once, through a real Mosquitto, a real
agent on a simulated printer, the real cloud app, a webhook receiver that verifies the HMAC and a
real SMTP server (aiosmtpd); on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest
from tests.cloud.test_api import sign_up, unique
from tests.cloud.test_e2e_jobs import (
    HOOK_SECRET,
    EventFeed,
    Shop,
    api_database_url,
    shop,
    webhook_channel,
)
from tests.cloud.test_notify_support import WebhookReceiver, plain_body, smtp_server

from printfleet.agent.hardware import HeaterId
from printfleet.protocol.topics import Topics
from printfleet.sim.thermal import HeaterFault
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name

WITHIN_S = 2.0
"""From the fault happening to a person being told, on every channel."""


@pytest.mark.asyncio
async def test_a_thermal_fault_reaches_the_stream_a_webhook_and_email_within_2s_once(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(HOOK_SECRET)
    with smtp_server() as smtp:
        async with shop(tmp_path, api_database_url, mosquitto, "owner@example.org") as s:
            x1 = await s.printer("x1")
            await s.call("POST", "/api/v1/channels", json={"kind": "apprise", "target": smtp.url()})
            async with (
                webhook_channel(s, receiver),
                s.feed().open() as feed,
                _event_copier(mosquitto, x1.id) as copies,
            ):
                faulted_at = time.monotonic()
                x1.hardware.inject_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
                streamed = await feed.wait_for("thermal_fault", within=WITHIN_S + 1)
                hooks = await asyncio.wait_for(receiver.wait_for(1), WITHIN_S + 1)
                mails = await smtp.wait_for(1, timeout_s=WITHIN_S + 1)
                mailed_at = time.monotonic()

                assert streamed["received_at"] - faulted_at < WITHIN_S
                assert hooks[0].at - faulted_at < WITHIN_S
                assert mailed_at - faulted_at < WITHIN_S
                assert streamed["severity"] == "critical"
                assert streamed["printer_id"] == x1.id
                (hook,) = hooks
                assert hook.signature_error is None
                assert json.loads(hook.body)["id"] == streamed["id"]
                assert hook.headers["x-printfleet-event"] == "thermal_fault"
                (mail,) = mails
                assert "Thermal fault" in str(mail["Subject"])
                assert x1.id in plain_body(mail)

                # The broker delivers the printer's alert again (QoS 1 allows it): nothing new.
                await copies.send_again("alert")
                # Events are handled in order: once the fault is cleared and told, the copy was
                # handled before it.
                x1.hardware.clear_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
                await s.call("POST", f"/api/v1/printers/{x1.id}/clear-fault")
                await feed.wait_for("fault_cleared")
                await receiver.wait_for(2)

            assert len(feed.of("thermal_fault")) == 1
            kinds = [json.loads(r.body)["kind"] for r in receiver.received]
            assert kinds.count("thermal_fault") == 1
            alerts = await s.call("GET", "/api/v1/alerts")
            assert [a["kind"] for a in alerts].count("thermal_fault") == 1
            await smtp.wait_for(2, timeout_s=5)  # the clearing, by e-mail too
            subjects = [str(m["Subject"]) for m in smtp.messages]
            assert sum("Thermal fault" in subject for subject in subjects) == 1


@pytest.mark.asyncio
async def test_a_printer_going_offline_is_an_alert_for_everyone_who_can_see_it(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, "owner@example.org") as s:
        p1 = await s.printer("p1")
        viewer = await _sign_up_viewer(s, p1.id)
        stranger = await sign_up(s.client, "stranger@example.org")
        async with (
            s.feed().open() as mine,
            EventFeed(s.client, viewer).open() as theirs,
            EventFeed(s.client, stranger).open() as strangers,
        ):
            await p1.power_off()
            for feed in (mine, theirs):
                offline = await feed.wait_for("printer_offline", within=10)
                assert offline["printer_id"] == p1.id
                assert offline["severity"] == "warning"
                state = await feed.wait_for(
                    "printer_state", where=lambda e: not e["data"]["online"]
                )
                assert state["printer_id"] == p1.id
            await p1.power_on()
            went = state["received_at"]
            await mine.wait_for(
                "printer_state", where=lambda e: e["data"]["online"] and e["received_at"] > went
            )
        assert strangers.events == []
        (alert,) = [
            a for a in await s.call("GET", "/api/v1/alerts") if a["kind"] == "printer_offline"
        ]
        assert alert["printer_id"] == p1.id


@pytest.mark.asyncio
async def test_a_printer_back_online_resolves_its_offline_alert(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, "owner@example.org") as s:
        p1 = await s.printer("p1")
        async with s.feed().open() as feed:
            await p1.power_off()
            raised = await feed.wait_for("printer_offline", within=10)
            (alert,) = await s.call("GET", "/api/v1/alerts?unacked=true")
            assert alert["id"] == raised["data"]["alert_id"]
            assert alert["acked_at"] is None
            await p1.power_on()
            # The printer's return, not a state change it announced before it went away.
            await feed.wait_for(
                "printer_state",
                where=lambda e: e["data"]["online"] and e["received_at"] > raised["received_at"],
            )
        # Resolved before the printer's return was announced, and by it: no person acknowledged
        # it, and it no longer needs attention.
        (alert,) = [a for a in await s.call("GET", "/api/v1/alerts") if a["id"] == alert["id"]]
        assert alert["resolved_at"] is not None
        assert alert["resolved_at"] >= alert["created_at"]
        assert alert["resolution"] == f"{p1.id} is back online"
        assert alert["acked_at"] is None
        assert alert["acked_by"] is None
        assert alert["duration_s"] == (alert["resolved_at"] - alert["created_at"]) / 1000
        assert await s.call("GET", "/api/v1/alerts?unacked=true") == []


async def _sign_up_viewer(s: Shop, printer_id: str) -> str:
    token = await sign_up(s.client, "viewer@example.org")
    await s.call(
        "POST",
        f"/api/v1/printers/{printer_id}/shares",
        json={"email": "viewer@example.org", "role": "viewer"},
    )
    return token


@dataclass
class _Copies:
    """The printer's own event messages as the broker carried them, to send once more."""

    client: aiomqtt.Client
    topic: str
    payloads: list[bytes] = field(default_factory=list)

    async def send_again(self, event_type: str) -> None:
        [payload] = [p for p in self.payloads if json.loads(p)["type"] == event_type]
        await self.client.publish(self.topic, payload, qos=1)


@contextlib.asynccontextmanager
async def _event_copier(mosquitto: MosquittoBroker, printer_id: str) -> AsyncIterator[_Copies]:
    topic = Topics().events(printer_id)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=unique("copier")) as client:
        await client.subscribe(topic, qos=1)
        copies = _Copies(client, topic)

        async def record() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                copies.payloads.append(message.payload)

        task = asyncio.create_task(record(), name="event copier")
        try:
            yield copies
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Outbound requests (SSRF): webhooks and Apprise channels reach only what the outbound policy
allows, when a channel is added and at every connection; redirects are not followed; the
deliveries list never shows what a receiver sent.

The "internal service" is a real TCP listener on 127.0.0.1 that counts the connections it gets;
the cloud is the real app under uvicorn, on SQLite, against the suite's Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
import stamina
from apprise.apprise import N_MGR
from tests.cloud.test_api import Running, bearer, serving, settings_for, sign_up
from tests.cloud.test_e2e_jobs import until
from tests.cloud.test_notify_support import (
    Reply,
    WebhookReceiver,
    plain_body,
    serve_asgi,
    smtp_server,
)

from printfleet.cloud.app import Settings
from printfleet.cloud.notify import (
    APPRISE_SERVICES,
    AppriseSender,
    Notification,
    NotificationKind,
    OutboundPolicy,
    OutboundRefused,
    WebhookSender,
    check_apprise_url,
    outbound_client,
    vetted_resolution,
)
from printfleet.cloud.notify.outbound import AllowEntry, address_rule
from printfleet.cloud.store import ChannelKind
from printfleet.testing import MosquittoBroker

SECRET = "outbound-test-secret-0123456789"
TOP_SECRET = b"top-secret-banner-7f3a"


class InternalService:
    """A TCP service on 127.0.0.1 that must stay out of reach: it counts every connection and
    answers ``reply`` (if any) once it has read a request's head."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.reply)
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> InternalService:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


class RebindingResolver:
    """A DNS server under an attacker's control: ``name`` resolves to a public address the
    first time it is asked (when the channel is checked), then to loopback."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answers = 0

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host != self.name:
            raise socket.gaierror(socket.EAI_NONAME, "unknown to this resolver")
        self.answers += 1
        address = "93.184.216.34" if self.answers == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]


def alert() -> Notification:
    return Notification.create(
        NotificationKind.THERMAL_FAULT,
        title="Thermal fault on p1: heaters are off",
        message="Hotend thermal runaway at 287 C",
        user_ids=["alice"],
        printer_id="p1",
    )


@contextlib.asynccontextmanager
async def a_cloud(
    tmp_path: Path, mosquitto: MosquittoBroker, *allow: str
) -> AsyncIterator[tuple[Running, dict[str, str]]]:
    """A cloud whose allow-list is ``allow``, and a signed-up user's auth header."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    settings = settings_for(tmp_path, database, mosquitto.url, outbound_allow=allow)
    async with serving(settings) as cloud:
        yield cloud, bearer(await sign_up(cloud.client, "ops@example.org"))


async def add_channel(
    cloud: Running, auth: dict[str, str], kind: str, target: str
) -> tuple[int, dict[str, Any]]:
    body = {"kind": kind, "target": target, "secret": SECRET if kind == "webhook" else None}
    response = await cloud.client.post("/api/v1/channels", headers=auth, json=body)
    answer: dict[str, Any] = response.json()
    return response.status_code, answer


async def settled_deliveries(
    cloud: Running, auth: dict[str, str], channel_id: str
) -> list[dict[str, Any]]:
    """Send the channel a test and wait until its delivery is delivered or given up."""
    sent = await cloud.client.post(f"/api/v1/channels/{channel_id}/test", headers=auth)
    assert sent.status_code == 202, sent.text
    url = f"/api/v1/channels/{channel_id}/deliveries"
    rows: list[dict[str, Any]] = []

    async def settled() -> bool:
        nonlocal rows
        rows = (await cloud.client.get(url, headers=auth)).json()
        return bool(rows) and all(row["state"] != "pending" for row in rows)

    await until(settled, within=20)
    return rows


# ---------------------------------------------------------------------------------------------
# The policy itself.


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address judged, not bound
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.31.255.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "CGNAT"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("64:ff9b::7f00:1", "loopback, inside an IPv6 address"),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("192.0.0.8", "reserved"),
        ("198.18.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("2001:db8::1", "reserved"),
    ],
)
def test_every_internal_address_form_has_a_rule(address: str, rule: str) -> None:
    named = address_rule(ipaddress.ip_address(address))
    assert named is not None
    assert rule in named


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111"])
def test_public_addresses_have_none(address: str) -> None:
    assert address_rule(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "017700000001"])
def test_other_spellings_of_loopback_resolve_to_it_and_are_refused(host: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        OutboundPolicy().vetted_addresses(host, 80)
    assert refused.value.rule == "loopback"


def test_the_allow_list_admits_networks_hosts_and_single_ports() -> None:
    policy = OutboundPolicy(["10.20.0.0/16", "localhost", "127.0.0.1:2525", "[::1]:8080"])
    assert policy.refusal("10.20.3.4", ipaddress.ip_address("10.20.3.4"), 443) is None
    assert policy.refusal("10.21.0.1", ipaddress.ip_address("10.21.0.1"), 443) is not None
    assert policy.refusal("localhost", ipaddress.ip_address("127.0.0.1"), 9) is None
    assert policy.refusal("127.0.0.1", ipaddress.ip_address("127.0.0.1"), 2525) is None
    assert policy.refusal("127.0.0.1", ipaddress.ip_address("127.0.0.1"), 2526) == "loopback"
    assert policy.refusal("::1", ipaddress.ip_address("::1"), 8080) is None
    # An IPv4 entry does not open the IPv6 spellings of the same address.
    mapped = ipaddress.ip_address("::ffff:127.0.0.1")
    assert policy.refusal("::ffff:127.0.0.1", mapped, 2525) == "IPv4-mapped IPv6"


@pytest.mark.parametrize(
    "entry", ["not a host", "10.0.0.1:0", "10.0.0.1:http", "[::1", "300.1.2.3"]
)
def test_a_bad_allow_list_entry_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match="allow-list entry"):
        AllowEntry.parse(entry)


def test_the_allow_list_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PRINTFLEET_OUTBOUND_ALLOW", "10.0.0.0/8, hooks.lan 127.0.0.1:2525,[fd00::1]:443"
    )
    settings = Settings.from_env()
    assert settings.outbound_allow == ("10.0.0.0/8", "hooks.lan", "127.0.0.1:2525", "[fd00::1]:443")
    assert Settings().outbound_allow == ()
    monkeypatch.setenv("PRINTFLEET_OUTBOUND_ALLOW", "10.0.0.0/33")
    with pytest.raises(ValueError, match="allow-list entry"):
        Settings.from_env()


def test_the_cloud_own_port_stays_refused_whatever_the_allow_list_says() -> None:
    policy = OutboundPolicy(["0.0.0.0/0", "::/0"], own_urls=["http://127.0.0.1:8123"])
    with pytest.raises(OutboundRefused, match="own address"):
        policy.vetted_addresses("127.0.0.1", 8123)
    with pytest.raises(OutboundRefused, match="own address"):
        policy.vetted_addresses("::ffff:127.0.0.1", 8123)
    assert policy.vetted_addresses("127.0.0.1", 8124) == ["127.0.0.1"]


@pytest.mark.parametrize("scheme", sorted(APPRISE_SERVICES))
def test_every_allowed_apprise_service_connects_through_what_the_policy_sees(scheme: str) -> None:
    # vetted_resolution sees the name lookups of requests/urllib3 and smtplib, nothing else.
    plugin = N_MGR[scheme]
    source = Path(inspect.getsourcefile(plugin) or "").read_text()
    assert "import requests" in source or "import smtplib" in source


# ---------------------------------------------------------------------------------------------
# When a channel is added.

INTERNAL_WEBHOOKS = [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://localhost:9/hook", "loopback"),
    ("http://127.1:9/hook", "loopback"),
    ("http://2130706433:9/hook", "loopback"),
    ("http://0x7f000001:9/hook", "loopback"),
    ("http://[::1]:9/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]:9/hook", "IPv4-mapped IPv6"),
    ("http://[::127.0.0.1]:9/hook", "IPv4-compatible IPv6"),
    ("http://0.0.0.0:9/hook", "unspecified"),
    ("http://[::]:9/hook", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://10.1.2.3/hook", "private (RFC 1918)"),
    ("http://172.16.0.1/hook", "private (RFC 1918)"),
    ("http://192.168.1.1/hook", "private (RFC 1918)"),
    ("http://100.64.0.1/hook", "CGNAT"),
    ("http://[fd00::1]/hook", "unique-local"),
    ("https://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://[64:ff9b::7f00:1]/hook", "loopback, inside an IPv6 address"),
]
INTERNAL_APPRISE = [
    ("json://127.0.0.1:9/hook", "loopback"),
    ("jsons://169.254.169.254/latest", "link-local"),
    ("xml://[fd00::1]/hook", "unique-local"),
    ("form://2130706433:9/hook", "loopback"),
    ("mailto://me:pw@example.org?smtp=10.1.2.3", "private (RFC 1918)"),
    ("mailto://me:pw@example.org?smtp=[::ffff:127.0.0.1]", "IPv4-mapped"),
    ("ntfy://192.168.0.7/alerts", "private (RFC 1918)"),
    ("syslog://", "not a service printfleet sends to"),
    ("rsyslog://127.0.0.1", "not a service printfleet sends to"),
]


@pytest.mark.asyncio
async def test_a_channel_to_an_internal_address_is_refused_naming_the_rule(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    async with a_cloud(tmp_path, mosquitto) as (cloud, auth):
        cases = [("webhook", *case) for case in INTERNAL_WEBHOOKS]
        cases += [("apprise", *case) for case in INTERNAL_APPRISE]
        for kind, target, rule in cases:
            status, answer = await add_channel(cloud, auth, kind, target)
            assert (status, answer["error"]) == (422, "invalid_request"), (target, answer)
            assert rule in answer["message"], (target, answer)
        listed = await cloud.client.get("/api/v1/channels", headers=auth)
        assert listed.json() == []


@pytest.mark.asyncio
async def test_the_cloud_itself_is_refused_even_with_loopback_allowed(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    async with a_cloud(tmp_path, mosquitto, "127.0.0.1") as (cloud, auth):
        port = cloud.url.rsplit(":", 1)[1]
        for kind, target in [
            ("webhook", f"{cloud.url}/api/v1/health"),
            ("webhook", f"http://localhost:{port}/api/v1/health"),
            ("apprise", f"json://127.0.0.1:{port}/api/v1/users"),
        ]:
            status, answer = await add_channel(cloud, auth, kind, target)
            assert status == 422, answer
            assert "the cloud's own address" in answer["message"]


# ---------------------------------------------------------------------------------------------
# What the allow-list opens.


@pytest.mark.asyncio
async def test_an_allow_listed_receiver_gets_its_deliveries_and_no_other_port_opens(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    receiver = WebhookReceiver(SECRET)
    async with (
        serve_asgi(receiver.app) as url,
        InternalService() as other,
    ):
        port = url.rsplit(":", 1)[1]
        with smtp_server() as smtp:
            allow = (f"127.0.0.1:{port}", f"127.0.0.1:{smtp.port}")
            async with a_cloud(tmp_path, mosquitto, *allow) as (cloud, auth):
                status, hook = await add_channel(cloud, auth, "webhook", f"{url}/hook")
                assert status == 201, hook
                status, mail = await add_channel(cloud, auth, "apprise", smtp.url())
                assert status == 201, mail
                status, refused = await add_channel(cloud, auth, "webhook", other.url)
                assert status == 422
                assert "loopback" in refused["message"]

                [delivered] = await settled_deliveries(cloud, auth, hook["id"])
                assert delivered["state"] == "delivered"
                [mailed] = await settled_deliveries(cloud, auth, mail["id"])
                assert mailed["state"] == "delivered"
                (message,) = await smtp.wait_for(1, timeout_s=5)
                assert "This apprise channel reaches" in plain_body(message)
        (hook_received,) = receiver.received
        assert hook_received.signature_error is None
    assert other.connections == 0


# ---------------------------------------------------------------------------------------------
# At connection time.


@pytest.mark.asyncio
async def test_a_name_rebound_to_loopback_after_its_check_is_refused_at_connection() -> None:
    async with InternalService(b"HTTP/1.1 204 No Content\r\n\r\n") as internal:
        webhook_dns = RebindingResolver("hooks.example.net")
        webhook_policy = OutboundPolicy(resolver=webhook_dns)
        url = f"http://hooks.example.net:{internal.port}/hook"
        webhook_policy.check_http_url(url)  # the channel is added: a public address
        async with outbound_client(webhook_policy) as client:
            result = await WebhookSender(client).deliver(alert(), url, SECRET)
        assert (result.delivered, result.attempts) == (False, 1)
        assert result.reason == "refused by the outbound policy: loopback"

        apprise_dns = RebindingResolver("hooks.example.net")
        apprise_policy = OutboundPolicy(resolver=apprise_dns)
        target = f"json://hooks.example.net:{internal.port}/hook"
        await asyncio.to_thread(check_apprise_url, target, apprise_policy)
        sender = AppriseSender(policy=apprise_policy, timeout_s=5)
        (delivery,) = await sender.send(alert(), [target])
        assert not delivery.delivered
        assert delivery.reason == "refused by the outbound policy: loopback"
    assert (webhook_dns.answers, apprise_dns.answers) == (2, 2)
    assert internal.connections == 0


def test_a_name_that_does_not_resolve_is_refused_when_added() -> None:
    policy = OutboundPolicy(resolver=RebindingResolver("hooks.example.net"))
    with pytest.raises(OutboundRefused, match="does not resolve") as refused:
        policy.check_http_url("http://elsewhere.example.net/hook")
    assert refused.value.rule == "unresolvable"


@pytest.mark.asyncio
async def test_a_lookup_that_fails_at_delivery_is_retried_not_given_up_at_once() -> None:
    # A DNS failure may be temporary: like a refused connection, not like a refused address.
    policy = OutboundPolicy(resolver=RebindingResolver("hooks.example.net"))
    with stamina.set_testing(True, attempts=2):
        async with outbound_client(policy) as client:
            result = await WebhookSender(client).deliver(
                alert(), "http://elsewhere.example.net/hook", SECRET
            )
    assert (result.delivered, result.attempts) == (False, 2)
    assert result.reason == "gave up after 2 attempt(s): ConnectError"


@pytest.mark.asyncio
async def test_a_stored_channel_to_an_internal_name_is_refused_when_it_sends(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    # As a channel added before this policy existed, or before its name pointed inside.
    async with (
        InternalService(b"HTTP/1.1 204 No Content\r\n\r\n") as internal,
        a_cloud(tmp_path, mosquitto) as (cloud, auth),
    ):
        store = cloud.context.store
        me = await store.accounts.user_by_email("ops@example.org")
        assert me is not None
        hook = await store.channels.create(
            me.id,
            kind=ChannelKind.WEBHOOK,
            target=f"http://localhost:{internal.port}/hook",
            secret=SECRET,
        )
        mail = await store.channels.create(
            me.id,
            kind=ChannelKind.APPRISE,
            target=f"mailto://localhost:{internal.port}?from=a@example.org&to=b@example.org",
        )
        for channel in (hook, mail):
            [row] = await settled_deliveries(cloud, auth, channel.id)
            assert row["state"] == "dead_letter"
            assert row["last_error"] == "refused by the outbound policy: loopback"
    assert internal.connections == 0


@pytest.mark.asyncio
async def test_a_redirect_to_an_internal_address_is_not_followed() -> None:
    async with InternalService(b"HTTP/1.1 204 No Content\r\n\r\n") as internal:
        receiver = WebhookReceiver(SECRET, [Reply(302, {"Location": internal.url})] * 4)
        async with serve_asgi(receiver.app) as url:
            port = url.rsplit(":", 1)[1]
            policy = OutboundPolicy([f"127.0.0.1:{port}"])

            async with outbound_client(policy) as client:
                result = await WebhookSender(client).deliver(alert(), f"{url}/hook", SECRET)
            assert (result.delivered, result.status_code) == (False, 302)

            sender = AppriseSender(policy=policy, timeout_s=5)
            # Asking Apprise to follow redirects changes nothing.
            targets = [
                f"json://127.0.0.1:{port}/hook",
                f"json://127.0.0.1:{port}/hook?redirect=yes",
            ]
            deliveries = await sender.send(alert(), targets)
            assert [d.delivered for d in deliveries] == [False, False]

            # A client that does follow redirects, inside the vetting, is stopped at the hop.
            def follow() -> None:
                with vetted_resolution(policy) as vetting:
                    with pytest.raises(requests.ConnectionError):
                        requests.post(f"{url}/hook", data=b"{}", timeout=5, allow_redirects=True)
                    assert vetting.refused is not None
                    assert vetting.refused.rule == "loopback"

            await asyncio.to_thread(follow)
        assert len(receiver.received) == 4
    assert internal.connections == 0


# ---------------------------------------------------------------------------------------------
# What the deliveries list shows.


@pytest.mark.asyncio
async def test_deliveries_never_show_what_the_receiver_sent(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    banner = InternalService(b"SSH-2.0-OpenSSH_9.6 " + TOP_SECRET + b"\r\nx: y\r\n\r\n")
    page = InternalService(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 22\r\nConnection: close\r\n\r\n" + TOP_SECRET
    )
    with stamina.set_testing(True, attempts=2):
        async with (
            banner,
            page,
            a_cloud(tmp_path, mosquitto, "127.0.0.1") as (cloud, auth),
        ):
            expected = {
                ("webhook", banner.url): "gave up after 2 attempt(s): RemoteProtocolError",
                ("webhook", page.url): "HTTP 404 is a permanent failure",
                ("apprise", f"json://127.0.0.1:{page.port}/hook"): "Apprise: FAILURE",
            }
            for (kind, target), reason in expected.items():
                status, channel = await add_channel(cloud, auth, kind, target)
                assert status == 201, channel
                [row] = await settled_deliveries(cloud, auth, channel["id"])
                assert row["state"] == "dead_letter"
                assert row["last_error"] == reason
                everything = await cloud.client.get(
                    f"/api/v1/channels/{channel['id']}/deliveries", headers=auth
                )
                assert TOP_SECRET.decode() not in everything.text
    assert banner.connections == 2
    assert page.connections == 2

"""The outbound-request policy: where the cloud may connect on a user's behalf (webhooks, Apprise).

A channel's URL is chosen by a user, so without a policy the cloud would be anyone's proxy into
its own network: loopback services, the cloud's own API, the LAN, a cloud provider's metadata
endpoint. :class:`OutboundPolicy` refuses every address that is not globally routable (loopback,
RFC 1918, CGNAT, link-local with 169.254.169.254, unique-local, IPv4-mapped and -compatible IPv6,
multicast, unspecified, reserved), and the cloud's own address, unless the operator's allow-list
(``PRINTFLEET_OUTBOUND_ALLOW``) names it.

A name is judged by every address it resolves to, and judged again at each connection, so that
a name that resolved to a public address when the channel was added cannot point inside later
(DNS rebinding): webhooks go through :func:`outbound_client`, whose transport resolves, vets and
then connects to the vetted address itself; Apprise sends run inside :func:`vetted_resolution`,
which vets every name resolution its plugins make in that thread.
"""

import asyncio
import contextlib
import contextvars
import ipaddress
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = [
    "ALLOW_VARIABLE",
    "AllowEntry",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboundTransport",
    "outbound_client",
    "vetted_resolution",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_VARIABLE = "PRINTFLEET_OUTBOUND_ALLOW"
"""The environment variable that holds the operator's allow-list."""

OWN_ADDRESS = "the cloud's own address"


def _networks(*texts: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


# First match names the rule. IANA's special-purpose registries, spelled out: Python 3.11's
# ``is_global`` calls ::127.0.0.1, fec0::/10, multicast and 192.0.0.0/24 global.
_RULES: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", _networks("0.0.0.0/8", "::/128")),
    ("loopback", _networks("127.0.0.0/8", "::1/128")),
    ("private (RFC 1918)", _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("shared CGNAT (100.64.0.0/10)", _networks("100.64.0.0/10")),
    (
        "link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10)",
        _networks("169.254.0.0/16", "fe80::/10"),
    ),
    ("unique-local (fc00::/7)", _networks("fc00::/7")),
    ("site-local (fec0::/10)", _networks("fec0::/10")),
    ("multicast", _networks("224.0.0.0/4", "ff00::/8")),
    ("IPv4-mapped IPv6", _networks("::ffff:0:0/96")),
    ("IPv4-compatible IPv6", _networks("::/96")),
    ("IPv4-translated IPv6", _networks("::ffff:0:0:0/96")),
    (
        "reserved",
        _networks(
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "64:ff9b:1::/48",
            "100::/64",
            "2001::/23",
            "2001:db8::/32",
            "3fff::/20",
        ),
    ),
)

# IPv6 forms that carry an IPv4 address the packets end up at: judged by that address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def address_rule(address: IPAddress) -> str | None:
    """The rule that makes ``address`` internal, or None for a public one (allow-list aside)."""
    for rule, networks in _RULES:
        if any(address in network for network in networks):
            return rule
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = address_rule(embedded)
        return f"{inner}, inside an IPv6 address" if inner else None
    return None if address.is_global else "reserved"


class OutboundRefused(OSError):  # noqa: N818 - reads as the condition
    """The outbound policy refuses this destination.

    An ``OSError``, so that a library connecting inside :func:`vetted_resolution` treats it as
    the failed connection it is. ``rule`` is short and fixed (``loopback``, ...): safe to store
    and show; the message says what the operator can do.
    """

    def __init__(self, host: str, rule: str, *, port: int | None = None) -> None:
        self.host = host
        self.rule = rule
        where = f"{host}:{port}" if port is not None and rule == OWN_ADDRESS else host
        if rule == OWN_ADDRESS:
            message = f"{where} is {OWN_ADDRESS}: notifications are never sent to it"
        elif rule == "unresolvable":
            message = f"{host} does not resolve to any address"
        elif rule == "not a TCP/IP destination":
            message = f"{host} is not a TCP/IP destination"
        else:
            message = (
                f"{host} is refused ({rule} address): notifications go only to public "
                f"addresses unless the operator allows this one in {ALLOW_VARIABLE}"
            )
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# The operator's allow-list.

_HOSTNAME = re.compile(r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62}\.?)*[a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allow-list entry: a network (an address is a /32 or /128) or a host name, and
    optionally one port (``10.0.0.0/8``, ``hooks.lan``, ``127.0.0.1:2525``, ``[fd00::1]:443``)."""

    network: IPNetwork | None
    host: str | None
    port: int | None

    @classmethod
    def parse(cls, text: str) -> "AllowEntry":
        """Read one entry; ``ValueError`` says what is wrong with it."""
        entry = text.strip()
        where, port = entry, None
        if entry.startswith("["):
            inside, bracket, rest = entry[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"allow-list entry {text!r}: [IPv6] or [IPv6]:port")
            where, port = inside, _port(text, rest[1:]) if rest else None
        elif entry.count(":") == 1:
            where, _, port_text = entry.partition(":")
            port = _port(text, port_text)
        try:
            return cls(ipaddress.ip_network(where, strict=False), None, port)
        except ValueError:
            pass
        host = _normal_host(where)
        if not _HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
            msg = f"allow-list entry {text!r} is not a network, an address or a host name"
            raise ValueError(msg)
        return cls(None, host, port)

    def admits(self, host: str, address: IPAddress, port: int) -> bool:
        """Whether this entry lets ``host`` (which resolved to ``address``) be reached."""
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == _normal_host(host)
        assert self.network is not None  # noqa: S101 - one of the two, by construction
        return address.version == self.network.version and address in self.network


def _port(entry: str, text: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):  # noqa: PLR2004
        raise ValueError(f"allow-list entry {entry!r}: the port must be 1-65535")
    return int(text)


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def parse_allow_list(entries: Iterable[str] | str) -> tuple[str, ...]:
    """Entries from a list or from a comma- or space-separated string, each checked."""
    items = re.split(r"[,\s]+", entries) if isinstance(entries, str) else list(entries)
    kept = tuple(item.strip() for item in items if item.strip())
    for item in kept:
        AllowEntry.parse(item)
    return kept


# ---------------------------------------------------------------------------------------------
# The policy.

Resolver: TypeAlias = Callable[..., list[tuple[Any, ...]]]
"""``socket.getaddrinfo``'s signature."""

_getaddrinfo: Resolver = socket.getaddrinfo
"""The resolver as it was before :func:`vetted_resolution` wrapped it."""


class OutboundPolicy:
    """Judges destinations; the same object serves channel creation, webhooks and Apprise.

    ``allow`` is the operator's allow-list (see :class:`AllowEntry`). ``own_urls`` are the URLs
    this cloud is reached at (its public URL): their ports, on any address of this machine,
    stay refused whatever the allow-list says, so no notification lands on the cloud's API.
    ``resolver`` answers like ``socket.getaddrinfo`` (the default); tests pass one whose
    answers change, as a rebinding DNS server's do.
    """

    def __init__(
        self,
        allow: Iterable[str] = (),
        *,
        own_urls: Iterable[str] = (),
        resolver: Resolver | None = None,
    ) -> None:
        self.allow = tuple(AllowEntry.parse(entry) for entry in allow)
        self._resolver = resolver or _getaddrinfo
        ports = set()
        for url in own_urls:
            parts = urlsplit(url)
            ports.add(parts.port or (443 if parts.scheme == "https" else 80))
        self._own_ports = frozenset(ports)

    def refusal(self, host: str, address: IPAddress, port: int) -> str | None:
        """Why ``host`` may not be reached at ``address``:``port``, or None if it may."""
        if port in self._own_ports and _is_this_machine(address):
            return OWN_ADDRESS
        if any(entry.admits(host, address, port) for entry in self.allow):
            return None
        return address_rule(address)

    def resolve(
        self, host: str, port: int | str | None, *args: Any, **kwargs: Any
    ) -> list[tuple[Any, ...]]:
        """``socket.getaddrinfo``, refusing the whole answer if any address is refused.

        Blocking (a DNS lookup): call it in a thread. One refused address refuses the name, as
        a connection could go to any of them. A failed lookup raises ``socket.gaierror``, as
        ``getaddrinfo`` does: it may be temporary, and callers may retry it.
        """
        infos = self._resolver(host, port, *args, **kwargs)
        if not infos:
            raise OutboundRefused(host, "unresolvable")
        for info in infos:
            family, sockaddr = info[0], info[4]
            if family not in {socket.AF_INET, socket.AF_INET6}:
                raise OutboundRefused(host, "not a TCP/IP destination")
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            rule = self.refusal(host, address, int(sockaddr[1]))
            if rule is not None:
                raise OutboundRefused(host, rule, port=int(sockaddr[1]))
        return infos

    def vetted_addresses(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` resolves to, all allowed, in the resolver's order. Blocking."""
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        infos = self.resolve(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def check_host(self, host: str, port: int) -> None:
        """Refuse (``OutboundRefused``) a destination a channel names, when it is added; a name
        that does not resolve now is refused too. Blocking."""
        try:
            self.vetted_addresses(host, port)
        except socket.gaierror:
            raise OutboundRefused(host, "unresolvable") from None

    def check_http_url(self, url: str) -> None:
        """Refuse (``OutboundRefused``) an http(s) URL whose host is refused. Blocking."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("a webhook target is an http:// or https:// URL with a host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError("the URL's port is not a number from 0 to 65535") from None
        self.check_host(parts.hostname, port)


def _is_this_machine(address: IPAddress) -> bool:
    """Whether ``address`` reaches this machine: loopback, unspecified, or one of its own."""
    if address.is_loopback or address.is_unspecified:
        return True
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if mapped is not None:
        return _is_this_machine(mapped)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET  # noqa: PLR2004
    # The kernel lets a socket bind only to an address this machine has.
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Webhooks: an httpx transport that connects only to vetted addresses.


class _VettingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's TCP connector, resolving through the policy and connecting to the address
    it vetted (never resolving the name a second time)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await asyncio.to_thread(self._policy.vetted_addresses, host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"{host} does not resolve") from error
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None  # noqa: S101 - vetted_addresses never returns none
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused(path, "not a TCP/IP destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore's exceptions as httpx's, most specific first (what httpx's own transport does).
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


_HTTPCORE_ERRORS = (
    httpcore.ProtocolError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except _HTTPCORE_ERRORS as error:
        mapped = next(
            (kind for core, kind in _HTTPX_ERRORS if isinstance(error, core)), httpx.TransportError
        )
        raise mapped(str(error)) from error


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterator[bytes] | Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


class OutboundTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose every new connection goes through :class:`OutboundPolicy`.

    httpx offers no public hook for httpcore's network backend, hence a transport of its own
    over httpcore's public API. No proxy: a proxy would resolve the name itself, unvetted.
    Connections are pooled by host name, so a kept-alive connection stays with the address
    that was vetted for it.
    """

    def __init__(self, policy: OutboundPolicy, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_VettingBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` over a connection to a vetted address."""
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()


def outbound_client(policy: OutboundPolicy, **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for requests to user-chosen URLs: vetted at every connection,
    no redirects followed, no proxy or other settings taken from the environment."""
    return httpx.AsyncClient(
        transport=OutboundTransport(policy),
        follow_redirects=False,
        trust_env=False,
        **options,
    )


# ---------------------------------------------------------------------------------------------
# Apprise: every name resolution in the sending thread goes through the policy.

_vetting: contextvars.ContextVar["VettedResolution | None"] = contextvars.ContextVar(
    "printfleet_outbound_vetting", default=None
)
_install_lock = threading.Lock()


@dataclass(slots=True)
class VettedResolution:
    """What :func:`vetted_resolution` saw; ``refused`` holds the last refusal, if any."""

    policy: OutboundPolicy
    refused: OutboundRefused | None = None


def _vetting_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    vetting = _vetting.get()
    if vetting is None or host is None:
        return _getaddrinfo(host, port, *args, **kwargs)
    name = host.decode("ascii") if isinstance(host, bytes) else str(host)
    try:
        return vetting.policy.resolve(name, port, *args, **kwargs)
    except OutboundRefused as refused:
        vetting.refused = refused
        raise


@contextlib.contextmanager
def vetted_resolution(policy: OutboundPolicy) -> Iterator[VettedResolution]:
    """Until exit, every ``socket.getaddrinfo`` answer in this context is vetted by ``policy``.

    Every connection the standard library, ``requests`` and ``urllib3`` make (hence Apprise's
    HTTP and SMTP plugins) resolves through ``socket.getaddrinfo`` and connects to the address
    it returned, so each one, redirects included, is vetted. A context variable rather than a
    thread-local: it marks exactly the code run inside, in this thread or in a worker given a
    copy of the context; other threads and the event loop's resolver are untouched.
    """
    with _install_lock:
        if socket.getaddrinfo is not _vetting_getaddrinfo:
            socket.getaddrinfo = _vetting_getaddrinfo
    vetting = VettedResolution(policy)
    token = _vetting.set(vetting)
    try:
        yield vetting
    finally:
        _vetting.reset(token)

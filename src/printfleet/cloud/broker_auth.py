"""Per-printer broker credentials and ACLs for Mosquitto, maintained by the cloud service.

Each printer logs in as its own user (``printer.{id}``, see :mod:`printfleet.protocol.identities`;
printers provisioned before that scheme keep the bare id stored as their username) and may touch
only its own topics: read its commands, write its events and telemetry, and its presence (its
Will included). The cloud's own users read and write everything under the prefix: ``printfleet-
cloud``, and ``printfleet-cloud.{replica}`` for each named replica. Mosquitto reads both files
at start and on SIGHUP.

Client ids are bound to these usernames by Mosquitto's ``use_username_as_clientid true``: the
broker then replaces whatever client id a login asks for with its username, so no login can take
over (and push off the broker) another's session. Replicas sharing one username would then push
each other off; each replica logs in with a username of its own, hence the replica accounts.

No printer account may be a service account or share a username with another (S10): a row that
would be one is set aside by :func:`screen_accounts`, with the reason, and
:func:`write_mosquitto_files` refuses to write it.

Password lines use Mosquitto 2's own format (``$7$``: PBKDF2-HMAC-SHA512 with a random salt),
so the broker needs no extra plugin and no ``mosquitto_passwd`` call.
"""

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from printfleet.protocol.identities import CLOUD_USER, PRINTER_ID_PATTERN, is_reserved
from printfleet.protocol.topics import Topics

__all__ = [
    "CLOUD_USER",
    "FILE_MODE",
    "AccountRefused",
    "BrokerAccount",
    "PrinterAccount",
    "RefusedAccount",
    "acl_text",
    "cloud_replica",
    "cloud_username",
    "hash_password",
    "new_secret",
    "screen_accounts",
    "verify_password",
    "write_mosquitto_files",
]

_ITERATIONS = 101
"""What ``mosquitto_passwd`` uses for ``$7$`` hashes."""
# One token each: Mosquitto splits password lines at ':' and ACL lines at spaces, so anything
# else could smuggle in a second user or a wider topic.
_SAFE_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SAFE_HASH = re.compile(r"[^\s:]+")
_PRINTER_ID = re.compile(PRINTER_ID_PATTERN)
_REPLICA_HEAD = f"{CLOUD_USER}."

FILE_MODE = 0o640
"""The files' mode. Not 0600: Mosquitto drops its privileges to its own user (``mosquitto``)
before it reads them, at start and on every SIGHUP, so it reads them through their group. Put
the directory in a group of Mosquitto's (``chgrp mosquitto DIR; chmod 2750 DIR``: new files
inherit the group). The password lines are PBKDF2 hashes of random 192-bit passwords, and the
cloud's own of the password in its broker URL."""


def cloud_username(replica: str | None = None) -> str:
    """The broker username of the cloud (``replica`` None) or of one named replica of it.

    Raises ValueError for a replica name that is not 1-63 lower-case letters, digits, ``-``
    or ``_`` (the printer id alphabet: safe in both files).
    """
    if replica is None:
        return CLOUD_USER
    if not _PRINTER_ID.fullmatch(replica):
        msg = f"cloud replica name {replica!r} must be 1-63 lower-case letters, digits, '-' or '_'"
        raise ValueError(msg)
    return f"{_REPLICA_HEAD}{replica}"


def cloud_replica(username: str | None) -> str | None:
    """The replica a cloud username names (``printfleet-cloud.b`` -> ``b``); ``""`` for the
    cloud's own ``printfleet-cloud``; None if ``username`` is no cloud username at all."""
    if username == CLOUD_USER:
        return ""
    if username is None or not username.startswith(_REPLICA_HEAD):
        return None
    replica = username[len(_REPLICA_HEAD) :]
    return replica if _PRINTER_ID.fullmatch(replica) else None


def new_secret() -> str:
    """A fresh random broker password."""
    return secrets.token_urlsafe(24)


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS
) -> str:
    """A Mosquitto ``$7$`` password hash."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (what the broker will decide)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    expected = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations)
    )
    return hmac.compare_digest(expected, base64.b64decode(digest))


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    """The cloud's login."""

    username: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class PrinterAccount:
    """A printer's login; the topics it may use follow from ``printer_id``."""

    printer_id: str
    username: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class RefusedAccount:
    """A printer account left out of the files, and why."""

    account: PrinterAccount
    reason: str


class AccountRefused(ValueError):  # noqa: N818 - reads as the condition
    """An account that must not be written (S10); nothing was written."""


def screen_accounts(
    cloud: BrokerAccount, printers: Iterable[PrinterAccount]
) -> tuple[list[PrinterAccount], list[RefusedAccount]]:
    """The printer accounts that may be written, and those that may not with the reason.

    Refused: an id that is not topic-safe (a wildcard would widen its ACL), a username or hash
    that would break the files, a username of the service's (the cloud's, or any reserved
    name), and a username an earlier account already has (the first keeps it).
    """
    taken = {cloud.username: "the cloud"}
    kept: list[PrinterAccount] = []
    refused: list[RefusedAccount] = []
    for account in printers:
        reason = _refusal(account, taken)
        if reason is None:
            taken[account.username] = f"printer {account.printer_id!r}"
            kept.append(account)
        else:
            refused.append(RefusedAccount(account, reason))
    return kept, refused


def _refusal(account: PrinterAccount, taken: dict[str, str]) -> str | None:
    name = account.username
    if not _PRINTER_ID.fullmatch(account.printer_id):
        return f"printer id {account.printer_id!r} is not safe in a topic"
    if not _SAFE_USERNAME.fullmatch(name) or not _SAFE_HASH.fullmatch(account.password_hash):
        return f"broker username {name!r} or its password hash would break the broker's files"
    if name in taken:
        return f"broker username {name!r} is already taken by {taken[name]}"
    if is_reserved(name):
        return f"broker username {name!r} is reserved for the service"
    return None


def acl_text(
    printers: Sequence[PrinterAccount], topics: Topics, cloud_replicas: Sequence[str] = ()
) -> str:
    """The ACL: the cloud (and each named replica) sees everything; each printer only its own
    topics, by its username.

    Explicit ``user`` blocks, not a ``pattern`` over ``%u``: a printer's username is no longer its
    id, and a pattern would also apply to every other login, the cloud's included.
    """
    lines = ["# Written by printfleet; edits are overwritten."]
    for replica in (None, *cloud_replicas):
        lines += [f"user {cloud_username(replica)}", f"topic readwrite {topics.prefix}/#"]
    for account in printers:
        mine = f"{topics.prefix}/printers/{account.printer_id}"
        lines += [
            "",
            f"user {account.username}",
            f"topic read {mine}/commands",
            f"topic write {mine}/events",
            f"topic write {mine}/telemetry",
            f"topic readwrite {mine}/presence",
        ]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    # The broker may reload at any moment: it must never see a half-written file. Created with
    # its final mode, so not even the temporary file is ever readable by everyone.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.chmod(FILE_MODE)  # os.open's mode went through the umask
    temporary.replace(path)


def write_mosquitto_files(
    directory: Path,
    cloud: BrokerAccount,
    printers: Iterable[PrinterAccount] = (),
    topics: Topics | None = None,
    *,
    cloud_replicas: Iterable[str] = (),
) -> tuple[Path, Path]:
    """Write ``passwords`` and ``acl`` into ``directory``; returns their paths.

    ``cloud_replicas`` names replicas that log in as ``printfleet-cloud.{name}`` with the
    cloud's password. Raises :class:`AccountRefused`, writing nothing, if any account fails
    :func:`screen_accounts` (screen them first and deal with the refused ones), or a replica
    name is invalid.
    """
    if cloud.username != CLOUD_USER or not _SAFE_HASH.fullmatch(cloud.password_hash):
        msg = f"invalid broker account for the cloud: {cloud.username!r}"
        raise AccountRefused(msg)
    replicas = sorted(set(cloud_replicas))
    try:
        replica_users = [cloud_username(replica) for replica in replicas]
    except ValueError as error:
        raise AccountRefused(str(error)) from None
    kept, refused = screen_accounts(cloud, printers)
    if refused:
        raise AccountRefused("; ".join(refusal.reason for refusal in refused))
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    passwords = directory / "passwords"
    acl = directory / "acl"
    lines = [f"{user}:{cloud.password_hash}" for user in (cloud.username, *replica_users)]
    lines += [f"{account.username}:{account.password_hash}" for account in kept]
    _write_atomically(passwords, "\n".join(lines) + "\n")
    _write_atomically(acl, acl_text(kept, topics or Topics(), replicas))
    return passwords, acl

"""Per-printer broker credentials and ACLs for Mosquitto, maintained by the cloud service.

Each printer logs in as its own id and may touch only its own topics: read its commands, write
its events and telemetry, and its presence (its Will included). The cloud's own user reads and
writes everything under the prefix. Mosquitto reads both files at start and on SIGHUP.

Password lines use Mosquitto 2's own format (``$7$``: PBKDF2-HMAC-SHA512 with a random salt),
so the broker needs no extra plugin and no ``mosquitto_passwd`` call.
"""

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from printfleet.protocol.topics import Topics

CLOUD_USER = "printfleet-cloud"
_ITERATIONS = 101
"""What ``mosquitto_passwd`` uses for ``$7$`` hashes."""


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
    """One login: a printer (username = printer id) or the cloud."""

    username: str
    password_hash: str


def acl_text(topics: Topics) -> str:
    """The ACL: the cloud sees everything; a printer only its own topics (``%u`` = its id)."""
    mine = f"{topics.prefix}/printers/%u"
    return "\n".join(
        [
            "# Written by printfleet; edits are overwritten.",
            f"user {CLOUD_USER}",
            f"topic readwrite {topics.prefix}/#",
            "",
            "# Every other user is a printer, limited to its own topics.",
            f"pattern read {mine}/commands",
            f"pattern write {mine}/events",
            f"pattern write {mine}/telemetry",
            f"pattern readwrite {mine}/presence",
            "",
        ]
    )


def _write_atomically(path: Path, text: str) -> None:
    # The broker may reload at any moment: it must never see a half-written file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.chmod(0o640)
    temporary.replace(path)


def write_mosquitto_files(
    directory: Path, accounts: Iterable[BrokerAccount], topics: Topics | None = None
) -> tuple[Path, Path]:
    """Write ``passwords`` and ``acl`` into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    passwords = directory / "passwords"
    acl = directory / "acl"
    lines = []
    for account in accounts:
        if ":" in account.username or "\n" in account.username:
            msg = f"invalid broker username {account.username!r}"
            raise ValueError(msg)
        lines.append(f"{account.username}:{account.password_hash}")
    _write_atomically(passwords, "\n".join(lines) + "\n")
    _write_atomically(acl, acl_text(topics or Topics()))
    return passwords, acl

"""Secrets at rest: the store's secret columns sealed with AES-256-GCM under a key that lives in
the cloud's data directory, beside its signing key, and never in the database.

A sealed value reads ``pfsealed:v1:{key id}:{base64url(nonce + ciphertext + tag)}``. Its
associated data names the table, column and row it belongs to, so a sealed value copied into
another row does not open there: whoever can write the database but lacks the key cannot move
someone's webhook secret into a channel of their own. The key file holds one key per line,
newest first: the first seals, every one opens, so a key is rotated by putting a new one on top
(the cloud reseals every row under it when it starts; the old line can go after that).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from printfleet.cloud.store.errors import StoreError

__all__ = [
    "SEALED_PREFIX",
    "SECRETS_KEY_FILE",
    "SecretBox",
    "SecretUnreadable",
    "is_sealed",
    "load_or_create_secret_box",
    "seal_context",
]

log = logging.getLogger(__name__)

SECRETS_KEY_FILE = "cloud-secrets.key"
"""The key file's name in the cloud's data directory; mode 0600; replicas must share it."""
SEALED_PREFIX = "pfsealed:v1:"
"""How every sealed value starts; a value without it was stored before sealing existed."""

_KEY_BYTES = 32
_NONCE_BYTES = 12
_KEY_ID_CHARS = 8


class SecretUnreadable(StoreError):  # noqa: N818 - reads as the condition, as its siblings
    """A sealed value that no key at hand opens: the wrong key file, or a tampered row."""


def seal_context(table: str, column: str, row_id: str) -> str:
    """The associated data that binds a sealed value to its place in the database."""
    return f"{table}.{column}:{row_id}"


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (rather than kept as given, from before sealing)."""
    return stored.startswith(SEALED_PREFIX)


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:_KEY_ID_CHARS]


class SecretBox:
    """Seals and opens secret column values with the data directory's keys (newest first)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a secret box needs at least one key")
        for key in keys:
            if len(key) != _KEY_BYTES:
                raise ValueError(f"a secrets key has {_KEY_BYTES} bytes, not {len(key)}")
        self._sealing_id = _key_id(keys[0])
        self._ciphers = {_key_id(key): AESGCM(key) for key in reversed(keys)}
        self._sealer = self._ciphers[self._sealing_id]

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with a fresh random key (tests and first starts)."""
        return cls([AESGCM.generate_key(bit_length=8 * _KEY_BYTES)])

    @property
    def key_id(self) -> str:
        """The id of the key that seals: a fingerprint, safe to log."""
        return self._sealing_id

    def seal(self, plaintext: str, *, context: str) -> str:
        """``plaintext`` sealed for the place ``context`` names (see :func:`seal_context`)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._sealer.encrypt(nonce, plaintext.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{SEALED_PREFIX}{self._sealing_id}:{body}"

    def open(self, stored: str, *, context: str) -> str:
        """The plaintext of a stored value; one stored before sealing existed comes back as is.

        Raises :class:`SecretUnreadable` if it is sealed under a key this box lacks, for
        another place, or was altered.
        """
        if not is_sealed(stored):
            return stored
        key_id, _, body = stored[len(SEALED_PREFIX) :].partition(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            msg = (
                f"{context} is sealed with key {key_id}, which is not in the data directory's "
                f"{SECRETS_KEY_FILE} (key {self._sealing_id}): replicas must share that file"
            )
            raise SecretUnreadable(msg)
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            plaintext = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError, binascii.Error):
            msg = f"{context} does not open: altered, or moved from elsewhere"
            raise SecretUnreadable(msg) from None
        return plaintext.decode()

    def is_current(self, stored: str) -> bool:
        """Whether a stored value is sealed under the newest key (nothing to reseal)."""
        return stored.startswith(f"{SEALED_PREFIX}{self._sealing_id}:")


def load_or_create_secret_box(path: Path) -> SecretBox:
    """The data directory's secret box from ``path``, made on first start (mode 0600). Blocking.

    One base64url key per line, newest first; blank lines and ``#`` comments are ignored.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return _create(path)
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()  # noqa: PLW2901 - the stripped line is the line
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.urlsafe_b64decode(line.encode())
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != _KEY_BYTES:
            msg = f"{path} line {number} is not a printfleet secrets key (32 bytes, base64url)"
            raise ValueError(msg)
        keys.append(key)
    if not keys:
        raise ValueError(f"{path} holds no key; restore it from a replica or a backup")
    if path.stat().st_mode & 0o077:
        log.warning(
            "%s is readable by others: chmod 600 it; it opens the secrets in the database", path
        )
    return SecretBox(keys)


def _create(path: Path) -> SecretBox:
    key = AESGCM.generate_key(bit_length=8 * _KEY_BYTES)
    text = (
        "# printfleet's key for secrets in its database (newest first). Keep it with the\n"
        "# signing key: replicas need the same file, and without it the secrets are lost.\n"
        f"{base64.urlsafe_b64encode(key).decode()}\n"
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        # As with the signing key: of two replicas starting at once on a shared directory, the
        # first to link wins and the other reads its key, never a half-written file.
        os.link(temporary, path)
    except FileExistsError:
        return load_or_create_secret_box(path)
    finally:
        temporary.unlink()
    box = SecretBox([key])
    log.info("made a new key for secrets at rest in %s (key %s)", path, box.key_id)
    return box

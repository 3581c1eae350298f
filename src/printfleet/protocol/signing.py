"""Ed25519 signatures on commands: the cloud signs, a printer verifies with the key it was given.

The signature covers the canonical encoding of every field but ``sig`` itself, behind a domain
prefix so that no other printfleet message can ever be replayed as a command.
"""

import base64
import binascii
import re
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from printfleet.protocol.messages import CommandBase, canonical_bytes

_DOMAIN = b"printfleet/v1 command\n"
_C = TypeVar("_C", bound=CommandBase)


def _signed_bytes(command: CommandBase) -> bytes:
    fields = command.model_dump(mode="json", exclude={"sig"})
    return _DOMAIN + canonical_bytes(fields)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{86}")
"""An Ed25519 signature is 64 bytes: exactly 86 url-safe base64 characters, unpadded."""
_PUBLIC_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CommandSigner:
    """Holds the cloud's private key and signs outgoing commands."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def generate(cls) -> "CommandSigner":
        """A signer with a fresh random key (tests, demos, first start of a cloud)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> "CommandSigner":
        """Load a key saved with :meth:`private_bytes`."""
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key, for the cloud's own key file."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> str:
        """The public key as printers pin it: url-safe base64 of the raw 32 bytes."""
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return _b64encode(raw)

    def sign(self, command: _C) -> _C:
        """Return ``command`` with its signature filled in."""
        signature = self._key.sign(_signed_bytes(command))
        return command.model_copy(update={"sig": _b64encode(signature)})


class CommandVerifier:
    """Holds the pinned cloud public key and checks incoming commands against it."""

    def __init__(self, public_key: str) -> None:
        if not _PUBLIC_KEY.fullmatch(public_key):
            msg = "not an Ed25519 public key: expected 43 url-safe base64 characters"
            raise ValueError(msg)
        try:
            raw = _b64decode(public_key)
            self._key = Ed25519PublicKey.from_public_bytes(raw)
        except (ValueError, binascii.Error) as error:
            raise ValueError(f"not an Ed25519 public key: {error}") from None

    def verify(self, command: CommandBase) -> bool:
        """Whether ``command`` carries a valid signature by the pinned key."""
        # One spelling per signature: unused trailing bits must be zero, as the encoder makes them.
        if (
            not _SIGNATURE.fullmatch(command.sig)
            or _b64encode(_b64decode(command.sig)) != command.sig
        ):
            return False
        try:
            signature = _b64decode(command.sig)
            self._key.verify(signature, _signed_bytes(command))
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True

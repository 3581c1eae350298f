"""Which bearer tokens the API has verified, and whose they are: admission control runs before
authentication, and learns from this whom a request with a bearer token really comes from."""

from __future__ import annotations

import collections
import hashlib

__all__ = ["VerifiedCallers", "token_digest"]


class VerifiedCallers:
    """Bearer tokens the API has authenticated, and whose account each is: what lets the gate,
    which runs before authentication, count a request against its account.

    Told by the API when a token authenticates (or is issued) and when one fails to; it keeps
    only hashes of tokens, and at most ``max_entries`` of them (the least recently used are
    forgotten, and their next request counts against its address until it authenticates again).
    It decides only whose bucket a request drains, never whether it is allowed: every request
    is still authenticated by the API itself.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._accounts: collections.OrderedDict[str, str] = collections.OrderedDict()

    def verified(self, token: str, account: str) -> None:
        """``token`` authenticated as ``account``."""
        digest = _digest_of(token)
        self._accounts[digest] = account
        self._accounts.move_to_end(digest)
        if len(self._accounts) > self.max_entries:
            self._accounts.popitem(last=False)

    def refused(self, token: str) -> None:
        """``token`` did not authenticate (unknown, revoked, expired): it names no account."""
        self._accounts.pop(_digest_of(token), None)

    def account_of(self, digest: str) -> str | None:
        """The account of a verified token, by its digest (:func:`token_digest`)."""
        account = self._accounts.get(digest)
        if account is not None:
            self._accounts.move_to_end(digest)
        return account

    def __len__(self) -> int:
        return len(self._accounts)


def token_digest(token: bytes) -> str:
    """A bearer token's digest: how the token is remembered (never the token itself)."""
    return hashlib.sha256(token).hexdigest()[:32]


def _digest_of(token: str) -> str:
    # Headers reach the app decoded as latin-1; encoded back the same way, a token has the
    # digest the gate computes from the raw header.
    return token_digest(token.strip().encode("latin-1", "replace"))

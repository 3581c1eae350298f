"""Keeps an external Mosquitto's password file and ACL in step with the provisioned printers.

With ``PRINTFLEET_MOSQUITTO_AUTH_DIR`` set, the cloud writes ``passwords`` and ``acl`` there
(see :mod:`printfleet.cloud.broker_auth`: each printer may use only its own topics) when it
starts and after every provisioning, then tells Mosquitto to reload them with SIGHUP, reading its
pid from ``PRINTFLEET_MOSQUITTO_PID_FILE``. Point Mosquitto's ``password_file`` and ``acl_file``
at the two files, and set ``use_username_as_clientid true`` so that no login can take another's
client id. Cloud replicas named in ``PRINTFLEET_MOSQUITTO_CLOUD_REPLICAS`` get accounts of their
own (``printfleet-cloud.{name}``, the cloud's password): with client ids bound to usernames,
replicas sharing one would push each other off the broker. Bursts of provisioning are coalesced
into one write and one reload.

A stored printer account that must not reach the broker (S10: its username is the cloud's, is
reserved, or is another printer's — rows from before usernames were derived may hold any of
those) is left out: the error is logged, an alert is raised on that printer, and
:attr:`MosquittoAuthSync.refused`, exported as a metric, lists what the latest write left out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Sequence
from pathlib import Path

from printfleet.cloud.broker_auth import (
    CLOUD_USER,
    BrokerAccount,
    PrinterAccount,
    RefusedAccount,
    hash_password,
    screen_accounts,
    write_mosquitto_files,
)
from printfleet.cloud.store import AlreadyExists, Severity, Store, StoreError
from printfleet.protocol.topics import Topics

__all__ = ["REFUSED_ALERT", "MosquittoAuthSync"]

log = logging.getLogger(__name__)

REFUSED_ALERT = "broker_account_refused"
"""The kind of the alert raised on a printer whose broker account was left out."""
_ALERT_IDS = uuid.UUID("5f0c6a8e-2d7b-4f43-9a53-3c1b8f1e6d20")
"""A fixed namespace: an alert's id is a function of the refused row, so it is raised once."""


class MosquittoAuthSync:
    """Writes the broker's accounts from the store and makes Mosquitto reload them."""

    def __init__(
        self,
        directory: Path,
        store: Store,
        *,
        cloud_password: str,
        pid_file: Path | None = None,
        topics: Topics | None = None,
        cloud_replicas: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        self.store = store
        self.pid_file = pid_file
        self.topics = topics or Topics()
        self.cloud_replicas = tuple(sorted(set(cloud_replicas)))
        """Replicas that log in as ``printfleet-cloud.{name}``, each written an account."""
        # Hashed once: the file is rewritten often, and the salt may as well stay put.
        self._cloud = BrokerAccount(CLOUD_USER, hash_password(cloud_password))
        self._wanted = asyncio.Event()
        self.syncs = 0
        self.refused: list[RefusedAccount] = []
        """The printer accounts the latest write left out (S10)."""

    def request(self) -> None:
        """Write and reload soon (a printer was provisioned)."""
        self._wanted.set()

    async def sync(self) -> None:
        """Write both files from the store now, then ask Mosquitto to reload them."""
        printers = await self.store.printers.all()
        # The stored username, not one derived now: printers provisioned before usernames were
        # derived from ids log in with the one they were given.
        kept, refused = screen_accounts(
            self._cloud,
            (PrinterAccount(p.id, p.broker_username, p.broker_password_hash) for p in printers),
        )
        await asyncio.to_thread(
            write_mosquitto_files,
            self.directory,
            self._cloud,
            kept,
            self.topics,
            cloud_replicas=self.cloud_replicas,
        )
        await asyncio.to_thread(self._reload)
        self.syncs += 1
        self.refused = refused
        log.info("broker accounts written for %d printers", len(kept))
        for refusal in refused:
            await self._alert(refusal)

    async def _alert(self, refusal: RefusedAccount) -> None:
        account = refusal.account
        log.error(
            "broker account of printer %r left out of %s: %s; it cannot log in until it is "
            "provisioned again under a new id",
            account.printer_id,
            self.directory,
            refusal.reason,
        )
        key = f"{account.printer_id}\n{account.username}\n{account.password_hash}"
        try:
            await self.store.alerts.add(
                account.printer_id,
                kind=REFUSED_ALERT,
                severity=Severity.CRITICAL,
                message=(
                    f"This printer's broker login was withheld: {refusal.reason}. "
                    "Provision it again under a new id."
                ),
                alert_id=str(uuid.uuid5(_ALERT_IDS, key)),
            )
        except AlreadyExists:
            pass
        except StoreError:
            log.exception("could not raise the alert for printer %r", account.printer_id)

    async def run(self) -> None:
        """Sync on every request until cancelled; a failed sync is logged and tried again."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self.sync()
            except OSError:
                log.exception(
                    "could not write the broker's password and ACL files in %s: newly "
                    "provisioned printers cannot log in until this succeeds",
                    self.directory,
                )

    def _reload(self) -> None:
        if self.pid_file is None:
            return
        try:
            pid = int(self.pid_file.read_text().strip())
        except FileNotFoundError:
            log.warning(
                "no Mosquitto pid file at %s: reload the broker yourself (SIGHUP) so new "
                "printers can log in",
                self.pid_file,
            )
            return
        except ValueError:
            log.warning("%s holds no process id: is it Mosquitto's pid file?", self.pid_file)
            return
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            log.warning("Mosquitto (pid %d from %s) is not running", pid, self.pid_file)

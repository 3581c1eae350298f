"""Keeps an external Mosquitto's password file and ACL in step with the provisioned printers.

With ``PRINTFLEET_MOSQUITTO_AUTH_DIR`` set, the cloud writes ``passwords`` and ``acl`` there
(see :mod:`printfleet.cloud.broker_auth`: each printer may use only its own topics) when it
starts and after every provisioning, then tells Mosquitto to reload them with SIGHUP, reading its
pid from ``PRINTFLEET_MOSQUITTO_PID_FILE``. Point Mosquitto's ``password_file`` and ``acl_file``
at the two files. Bursts of provisioning are coalesced into one write and one reload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from printfleet.cloud.broker_auth import (
    CLOUD_USER,
    BrokerAccount,
    hash_password,
    write_mosquitto_files,
)
from printfleet.cloud.store import Store
from printfleet.protocol.topics import Topics

__all__ = ["MosquittoAuthSync"]

log = logging.getLogger(__name__)


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
    ) -> None:
        self.directory = directory
        self.store = store
        self.pid_file = pid_file
        self.topics = topics or Topics()
        # Hashed once: the file is rewritten often, and the salt may as well stay put.
        self._cloud = BrokerAccount(CLOUD_USER, hash_password(cloud_password))
        self._wanted = asyncio.Event()
        self.syncs = 0

    def request(self) -> None:
        """Write and reload soon (a printer was provisioned)."""
        self._wanted.set()

    async def sync(self) -> None:
        """Write both files from the store now, then ask Mosquitto to reload them."""
        printers = await self.store.printers()
        accounts = [
            self._cloud,
            *(BrokerAccount(p.id, p.broker_password_hash) for p in printers),
        ]
        await asyncio.to_thread(write_mosquitto_files, self.directory, accounts, self.topics)
        await asyncio.to_thread(self._reload)
        self.syncs += 1
        log.info("broker accounts written for %d printers", len(printers))

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

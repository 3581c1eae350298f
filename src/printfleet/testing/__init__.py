"""Real servers for tests and the chaos harness: Mosquitto and PostgreSQL on free loopback ports.

Each controller starts its own process with its own temp dir, waits until it serves, injects faults
(`kill`, `restart`, `freeze`, `thaw`) and cleans up after itself. Never the machine's own services.
"""

from printfleet.testing.mosquitto import MosquittoBroker, find_mosquitto, probe_mqtt_connect
from printfleet.testing.ports import free_port
from printfleet.testing.postgres import PostgresServer, find_postgres_bin_dir
from printfleet.testing.process import (
    INSTALL_HINT,
    ServiceError,
    ServiceNotInstalledError,
    ServiceProcess,
    ServiceStartError,
    sweep_abandoned,
)

__all__ = [
    "INSTALL_HINT",
    "MosquittoBroker",
    "PostgresServer",
    "ServiceError",
    "ServiceNotInstalledError",
    "ServiceProcess",
    "ServiceStartError",
    "find_mosquitto",
    "find_postgres_bin_dir",
    "free_port",
    "probe_mqtt_connect",
    "sweep_abandoned",
]

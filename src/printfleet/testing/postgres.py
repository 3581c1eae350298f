"""A throwaway PostgreSQL cluster on a free loopback port, for tests and fault injection.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` system user that
the Debian package creates. Durability against power loss is off (fsync) for speed; durability
against a process crash, which `kill()` injects, is kept: committed data survives kill and restart.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from printfleet.testing.process import (
    INSTALL_HINT,
    ServiceError,
    ServiceNotInstalledError,
    ServiceProcess,
    ServiceStartError,
    run_tool,
    system_user,
)

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_TOOLS = ("initdb", "postgres", "pg_isready", "createdb")


def find_postgres_bin_dir() -> Path:
    """The directory with `initdb`, `postgres` and friends: Debian's newest version, else PATH's."""
    installed = sorted(_DEBIAN_ROOT.glob("*/bin/initdb"), key=_version_key)
    if installed:
        return installed[-1].parent
    found = shutil.which("initdb")
    if found is not None:
        # Follow symlinks such as /usr/local/bin/initdb to the directory that has the other tools.
        return Path(found).resolve().parent
    raise ServiceNotInstalledError(
        f"PostgreSQL server binaries (initdb) are not installed, neither in {_DEBIAN_ROOT}/*/bin "
        f"nor on PATH. {INSTALL_HINT}"
    )


def _version_key(initdb: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in initdb.parent.parent.name.split(".") if part.isdigit())


class PostgresServer(ServiceProcess):
    """A PostgreSQL cluster of its own: data, Unix socket and log in a temp dir; TCP on 127.0.0.1.

    The superuser is `postgres` with trust authentication. Use it as a context manager, or call
    `start()` and `close()`; `kill()`, `restart()`, `freeze()` and `thaw()` inject faults.
    """

    name = "postgres"
    # "Fast" shutdown: roll back open transactions, checkpoint, exit ("smart" waits for clients).
    stop_signal = signal.SIGINT
    superuser = "postgres"

    def __init__(
        self,
        *,
        port: int | None = None,
        bin_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.bin_dir = find_postgres_bin_dir() if bin_dir is None else bin_dir
        missing = [tool for tool in _TOOLS if not (self.bin_dir / tool).exists()]
        if missing:
            raise ServiceNotInstalledError(
                f"{', '.join(missing)} missing from {self.bin_dir}. {INSTALL_HINT}"
            )
        # Looked up now so a machine without the user fails before anything is created.
        self._user = system_user("postgres") if os.geteuid() == 0 else None
        super().__init__(port=port, ready_timeout=ready_timeout)
        self.settings = dict(settings or {})

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database, for the asyncpg driver."""
        return self.url_for("postgres")

    @property
    def dsn(self) -> str:
        """libpq-style URL of the `postgres` database, as asyncpg.connect() takes it."""
        return self.dsn_for("postgres")

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (asyncpg driver) of `database` on this server."""
        return f"postgresql+asyncpg://{self.superuser}@{self.host}:{self.port}/{database}"

    def dsn_for(self, database: str) -> str:
        """libpq-style URL of `database` on this server."""
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket (never the system's /var/run/postgresql)."""
        return self.directory / "socket"

    def create_database(self, name: str) -> str:
        """Create database `name` and return its SQLAlchemy URL."""
        result = subprocess.run(  # noqa: S603 -- fixed binary, the name is one argv element
            [
                self.bin_dir / "createdb",
                f"--host={self.host}",
                f"--port={self.port}",
                f"--username={self.superuser}",
                "--no-password",
                "--",
                name,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self._client_environment(),
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"createdb {name!r} failed: {result.stderr.strip()}")
        return self.url_for(name)

    def _prepare(self, directory: Path) -> None:
        self.socket_dir.mkdir()
        if self._user is not None:
            for path in (directory, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        code = run_tool(
            [
                self.bin_dir / "initdb",
                f"--pgdata={self.data_dir}",
                f"--username={self.superuser}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                # The cluster is thrown away after the run: no need to wait for the disk.
                "--no-sync",
            ],
            log=self.log_path,
            cwd=directory,
            env=self._environment(),
            user=self._user,
        )
        if code != 0:
            raise ServiceStartError(
                f"initdb failed with code {code}; its log ({self.log_path}) ends:\n"
                f"{self.log_tail()}"
            )

    def _command(self) -> Sequence[str | Path]:
        settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            # Off: only a power loss could lose data then, and a test cluster does not outlive one.
            # synchronous_commit stays on so that a commit survives kill -9 of the server.
            "fsync": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        command: list[str | Path] = [self.bin_dir / "postgres", "-D", self.data_dir]
        command += ["-p", str(self.port)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def _is_ready(self) -> bool:
        result = subprocess.run(  # noqa: S603 -- fixed binary and arguments
            [
                self.bin_dir / "pg_isready",
                f"--host={self.host}",
                f"--port={self.port}",
                f"--username={self.superuser}",
                "--dbname=postgres",
                "--timeout=1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._client_environment(),
            check=False,
        )
        return result.returncode == 0

    def _run_as(self) -> pwd.struct_passwd | None:
        return self._user

    def _environment(self) -> dict[str, str]:
        env = self._client_environment()
        if self._user is not None:
            env.update(HOME=self._user.pw_dir, USER=self._user.pw_name, LOGNAME=self._user.pw_name)
        return env

    def _client_environment(self) -> dict[str, str]:
        # PG* variables from the caller's shell (PGHOST, PGPORT, PGDATA, ...) must not redirect the
        # tools to another server; LC_ALL=C keeps messages in English for logs and error matching.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

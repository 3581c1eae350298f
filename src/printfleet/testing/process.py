"""A server run as a child process and always cleaned up: what Mosquitto and PostgreSQL share.

It owns a temp dir (config, data, log) and a port that both survive restarts, waits for readiness by
probing (never by sleeping a fixed time), injects faults (SIGKILL, SIGSTOP/SIGCONT) and reaps every
process it started, also when a test fails or the interpreter exits. Servers whose owner died
without any clean-up (SIGKILL) are swept away by the next process that starts one.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import psutil

from printfleet.testing.ports import LOOPBACK, free_port, release_port

INSTALL_HINT = (
    "Run scripts/test once from the repository root (as root or with sudo): it installs the system "
    "packages that the test suite needs."
)

_DIR_PREFIX = "printfleet-"
_OWNER_FILE = "owner"
_POLL_FIRST = 0.005
_POLL_MAX = 0.1
_STOP_TIMEOUT = 10.0
_SIGNAL_TIMEOUT = 5.0


class ServiceError(RuntimeError):
    """A test server could not be found, started or controlled."""


class ServiceNotInstalledError(ServiceError):
    """A server's binaries, or the system user it must run as, are missing on this machine."""


class ServiceStartError(ServiceError):
    """A server did not become ready; the message ends with the tail of its log."""


def system_user(name: str) -> pwd.struct_passwd:
    """Look up a system user that a server must run as, or explain how to get it."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceNotInstalledError(
            f"there is no '{name}' system user to run the server as. {INSTALL_HINT}"
        ) from None


def spawn(
    argv: Sequence[str | Path],
    *,
    log: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    user: pwd.struct_passwd | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` as `user` (None: this process's user) with its output appended to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 -- argv of a binary we located, no shell
            [str(part) for part in argv],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            # Its own session: a Ctrl-C meant for the test run must not reach the child before the
            # test's clean-up does.
            start_new_session=True,
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            # Root's supplementary groups are dropped too, not only its uid and gid.
            extra_groups=None if user is None else [],
        )


def run_tool(
    argv: Sequence[str | Path],
    *,
    log: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    user: pwd.struct_passwd | None = None,
) -> int:
    """Run a one-shot tool (such as initdb) to completion and return its exit code.

    If the wait is interrupted (Ctrl-C, a test timeout), the tool and whatever it started are killed
    and reaped, so nothing keeps writing into a directory that is about to be removed.
    """
    process = spawn(argv, log=log, cwd=cwd, env=env, user=user)
    try:
        return process.wait()
    finally:
        kill_process_tree(process)


class ServiceProcess:
    """Base of a server started as a child process listening on 127.0.0.1:`port`.

    Subclasses say how to prepare the temp dir once (`_prepare`), what to run (`_command`) and how
    to tell that it serves (`_is_ready`). The temp dir and the port are kept across `stop`/`kill`
    and `start`/`restart`, so a restarted server comes back at the same address with the same
    data; `close` removes both. Methods are blocking; async code calls them through a worker thread.
    One object is meant to be driven from one thread at a time.
    """

    name: ClassVar[str] = "service"
    host: ClassVar[str] = LOOPBACK
    #: The signal that asks the server for an orderly shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, *, port: int | None, ready_timeout: float) -> None:
        self._owns_port = port is None
        self.port: int = free_port(self.host) if port is None else port
        self.ready_timeout = ready_timeout
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._closed = False

    # -- what subclasses provide ------------------------------------------------------------------

    def _prepare(self, directory: Path) -> None:
        """Write configuration and initialise data in `directory`, once, before the first start."""

    def _command(self) -> Sequence[str | Path]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        """Probe the server once; OSError counts as "not yet"."""
        raise NotImplementedError

    def _run_as(self) -> pwd.struct_passwd | None:
        """The system user to run the server as, or None for this process's user."""
        return None

    def _environment(self) -> dict[str, str] | None:
        return None

    # -- state -------------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The temp dir holding this server's configuration, data and log (exists once started)."""
        if self._directory is None:
            raise ServiceError(f"{self.name} has not been started yet")
        return self._directory

    @property
    def log_path(self) -> Path:
        """The file that collects the server's standard output and error across restarts."""
        return self.directory / f"{self.name}.log"

    @property
    def running(self) -> bool:
        """Whether the server process is alive (frozen counts as alive)."""
        return self._process is not None and self._process.poll() is None

    @property
    def frozen(self) -> bool:
        """Whether `freeze` stopped the server and `thaw` has not resumed it yet."""
        return self._frozen and self.running

    @property
    def pid(self) -> int | None:
        """The server's main process id while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, ServiceError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and return once it serves, or raise `ServiceStartError`."""
        if self._closed:
            raise ServiceError(f"{self!r} is closed; create a new one")
        if self.running:
            raise ServiceError(f"{self!r} is already running")
        if self._directory is None:
            _sweep_once()
            self._directory = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{self.name}-"))
            # Registered before anything else can fail, so the temp dir never outlives the process.
            _live.add(self)
            _claim(self._directory)
            self._prepare(self._directory)
        self._process = spawn(
            self._command(),
            log=self.log_path,
            cwd=self._directory,
            env=self._environment(),
            user=self._run_as(),
        )
        self._frozen = False
        try:
            self._wait_ready(self._process)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Ask the server to shut down in order; SIGKILL it if still running after `timeout` s."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        if self._frozen:
            # A stopped process acts on the shutdown signal only once it runs again.
            self._signal_tree(signal.SIGCONT)
            self._frozen = False
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and every process it started, as a crash would, and reap them all."""
        self._frozen = False
        if self._process is not None:
            kill_process_tree(self._process)

    def restart(self) -> Self:
        """Stop the server if it runs, then start it again on the same port with the same data."""
        self.stop()
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP the server and its workers: sockets stay open, nothing answers, like a hung host.

        The kernel still completes TCP handshakes into the listen backlog, so a client's connect()
        succeeds and its protocol handshake then times out.
        """
        process = self._require_running()
        # The main process first, so it cannot start a worker that would escape the freeze.
        _stop_and_wait([psutil.Process(process.pid)])
        _stop_and_wait(_descendants(process.pid))
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped; the server then answers everything that waited."""
        self._require_running()
        self._signal_tree(signal.SIGCONT)
        self._frozen = False

    def close(self) -> None:
        """Stop the server, remove its temp dir and give its port back. Safe to call repeatedly."""
        try:
            self.stop()
        finally:
            self._closed = True
            _live.discard(self)
            if self._directory is not None:
                shutil.rmtree(self._directory)
                self._directory = None
            if self._owns_port:
                self._owns_port = False
                release_port(self.port)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _require_running(self) -> subprocess.Popen[bytes]:
        process = self._process
        if process is None or process.poll() is not None:
            raise ServiceError(f"{self!r} is not running")
        return process

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.ready_timeout
        delay = _POLL_FIRST
        while True:
            code = process.poll()
            if code is not None:
                raise ServiceStartError(
                    f"{self.name} exited with code {code} before it served on "
                    f"{self.host}:{self.port}; its log ({self.log_path}) ends:\n{self.log_tail()}"
                )
            # A refused or reset connection just means it is still starting.
            with contextlib.suppress(OSError):
                if self._is_ready():
                    return
            if time.monotonic() >= deadline:
                raise ServiceStartError(
                    f"{self.name} did not serve on {self.host}:{self.port} within "
                    f"{self.ready_timeout:g} s; its log ({self.log_path}) ends:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def _signal_tree(self, signum: signal.Signals) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        for child in _descendants(process.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signum)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


# -- killing and reaping -------------------------------------------------------------------------


def kill_process_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL `process` and all its descendants, and reap every one of them."""
    if process.poll() is not None:
        return
    with _adopting_orphans():
        # Stopped first so the snapshot of its descendants is complete: it cannot fork any more.
        with contextlib.suppress(psutil.NoSuchProcess):
            _stop_and_wait([psutil.Process(process.pid)])
        descendants = _descendants(process.pid)
        process.kill()
        for descendant in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                descendant.kill()
        process.wait()
        _reap(descendants)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


# A zombie has exited and only waits for its parent to collect it; it can do nothing more either.
_HALTED = frozenset({psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, "gone"})


def _stop_and_wait(processes: list[psutil.Process]) -> None:
    """SIGSTOP `processes`; return once the kernel shows them stopped (signals are asynchronous)."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + _SIGNAL_TIMEOUT
    pending = list(processes)
    while pending:
        pending = [p for p in pending if _state(p) not in _HALTED]
        if not pending or time.monotonic() >= deadline:
            return
        time.sleep(_POLL_FIRST)


def _state(process: psutil.Process) -> str:
    try:
        return str(process.status())
    except psutil.NoSuchProcess:
        return "gone"


def _reap(descendants: list[psutil.Process]) -> None:
    """Collect the exit status of killed descendants that were handed to this process as orphans."""
    deadline = time.monotonic() + _SIGNAL_TIMEOUT
    pending = [descendant.pid for descendant in descendants]
    while pending and time.monotonic() < deadline:
        still: list[int] = []
        for pid in pending:
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # Not our child (yet): its own parent may still be dying, or it is already gone.
                if psutil.pid_exists(pid):
                    still.append(pid)
                continue
            if reaped == 0:
                still.append(pid)
        pending = still
        if pending:
            time.sleep(_POLL_FIRST)


_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_subreaper_lock = threading.Lock()


def _prctl(option: int, value: int | ctypes.c_int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        arg: object = ctypes.byref(value) if isinstance(value, ctypes.c_int) else value
        return bool(libc.prctl(option, arg, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """Make this process the parent of whatever gets orphaned meanwhile, so it can reap them.

    Why: killing a server's main process orphans its workers (PostgreSQL backends), and orphans go
    to init, which in containers and micro-VMs often never reaps them; they would stay zombies.
    """
    with _subreaper_lock:
        before = ctypes.c_int(0)
        _prctl(_PR_GET_CHILD_SUBREAPER, before)
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        try:
            yield
        finally:
            _prctl(_PR_SET_CHILD_SUBREAPER, before.value)


# -- clean-up when the owner is gone -------------------------------------------------------------

_live: set[ServiceProcess] = set()


@atexit.register
def _close_all() -> None:
    """Close servers whose owner never did (a crashed fixture, an interrupted script)."""
    for service in list(_live):
        with contextlib.suppress(Exception):
            service.close()


def _claim(directory: Path) -> None:
    """Record which process owns `directory`, for `sweep_abandoned` to judge later."""
    me = psutil.Process()
    (directory / _OWNER_FILE).write_text(f"{me.pid} {me.create_time()}\n")


def _owner_alive(directory: Path) -> bool:
    try:
        pid, created = (directory / _OWNER_FILE).read_text().split()
        # The start time guards against a new process that got the dead owner's pid.
        return psutil.Process(int(pid)).create_time() == float(created)
    except FileNotFoundError:
        return True  # not claimed yet, or not ours to judge
    except (ValueError, psutil.Error):
        return False


def sweep_abandoned(root: Path | None = None) -> list[Path]:
    """Kill the servers of owners that died without clean-up (SIGKILL), and remove their temp dirs.

    Only directories claimed by a process that no longer exists are touched, so test runs going on
    at the same time on the machine keep their servers. Returns the directories removed.
    """
    root = Path(tempfile.gettempdir()) if root is None else root
    abandoned = [d for d in root.glob(f"{_DIR_PREFIX}*-*") if d.is_dir() and not _owner_alive(d)]
    if not abandoned:
        return []
    for process in psutil.process_iter(["cmdline"]):
        arguments: list[str] = process.info["cmdline"] or []
        # Servers and tools name their directory in an argument (-c, -D, --pgdata=...).
        if any(f"{d}/" in arg for d in abandoned for arg in arguments):
            with contextlib.suppress(psutil.Error):
                for victim in [process, *process.children(recursive=True)]:
                    victim.kill()
    for directory in abandoned:
        shutil.rmtree(directory, ignore_errors=True)
    return abandoned


_swept = False


def _sweep_once() -> None:
    global _swept  # noqa: PLW0603 -- once per process, before its first server
    if not _swept:
        _swept = True
        sweep_abandoned()

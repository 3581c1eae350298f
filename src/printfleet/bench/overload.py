"""The overload benchmark: the cloud and its clients against offered load up to 10x capacity.

One run measures two configurations, each on a cloud of its own (uvicorn, SQLite, the embedded
broker) in a separate process:

- **built**: printfleet as built: admission control on, a small database pool, and clients as
  the SDK's retry policy makes them (backoff with full jitter, a retry budget, a breaker,
  ``Retry-After`` honoured, a deadline header);
- **naive**: the 2023 incident: no admission control, a large pool with SQLAlchemy's 30 s pool
  timeout, and clients that resend every failed request at once, with no budget.

First the capacity is measured: the goodput of a closed loop of single attempts against the
built cloud. Then open-loop generators (separate processes, Poisson arrivals from many
simulated clients) step the offered load through multiples of it, the same for both
configurations. On Linux with two or more CPUs the cloud is pinned to the first and the
generators to the others, so the cloud has the same one core in every phase.

The request mix is what a fleet's users do most: list their jobs, and submit a
job with an idempotency key (replaying one of a few seeded keys, so the database stays the size
it was seeded at and every step measures the same work).

The figures and their judgement are in :mod:`printfleet.bench.overload_report`, the cloud and
load generator processes in :mod:`printfleet.bench.overload_load`; this module seeds the cloud,
measures its capacity and steps the load through each configuration.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import httpx
import psutil

from printfleet.bench.overload_load import (
    OK,
    ClientStyle,
    LoadPlan,
    LoadResult,
    run_load,
    serve_cloud,
)
from printfleet.bench.overload_report import (
    ConfigName,
    ConfigRun,
    OverloadReport,
    OverloadSettings,
    plot_report,
)

# The run's settings and report are re-exported: they are what a caller of run_overload_bench
# handles.
__all__ = [
    "OverloadBenchError",
    "OverloadReport",
    "OverloadSettings",
    "run_overload_bench",
]

_PASSWORD = "overload benchmark password"  # noqa: S105 - a throwaway cloud's


class OverloadBenchError(RuntimeError):
    """The benchmark could not run (the cloud did not start, a generator died)."""


_SPAWN = multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _cloud(
    settings: dict[str, Any], log_file: Path, timeout_s: float = 60.0
) -> Iterator[tuple[str, int]]:
    """A cloud process with ``settings``; its URL and pid once healthy. Stopped on exit."""
    receiver, sender = _SPAWN.Pipe(duplex=False)
    process = _SPAWN.Process(
        target=serve_cloud, args=(settings, sender, str(log_file)), name="printfleet cloud"
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise OverloadBenchError("the cloud did not start in time")
        try:
            port = receiver.recv()
        except EOFError:
            raise OverloadBenchError("the cloud process died while starting") from None
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while True:
            if not process.is_alive():
                raise OverloadBenchError(f"the cloud process exited ({process.exitcode})")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:  # noqa: PLR2004
                    break
            if time.monotonic() > deadline:
                raise OverloadBenchError("the cloud did not become healthy in time")
            time.sleep(0.1)  # another process: nothing to await but its answer
        assert process.pid is not None  # noqa: S101 - started above
        yield url, process.pid
    finally:
        _stop(process)


@contextlib.contextmanager
def _cpu_samples(pid: int, every_s: float = 0.25) -> Iterator[list[tuple[float, float]]]:
    """(wall time, CPU seconds used so far) of process ``pid``, sampled by a thread."""
    process = psutil.Process(pid)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                samples.append((time.time(), times.user + times.system))
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=sample, name="cloud CPU", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def _stop(process: SpawnProcess) -> None:
    if process.is_alive() and process.pid is not None:
        # uvicorn shuts down gracefully on SIGTERM; an overloaded cloud's backlog is not worth
        # waiting long for.
        process.terminate()
        process.join(3)
    if process.is_alive():
        process.kill()
        process.join()


@dataclass(frozen=True, slots=True)
class _Seed:
    tokens: tuple[str, ...]
    job_body: dict[str, Any]
    job_keys: tuple[str, ...]


def _seed(url: str, settings: OverloadSettings) -> _Seed:
    """An account, a token per simulated client, a printer, a file and a few queued jobs."""
    from printfleet.sim.samples import make_sample_gcode  # noqa: PLC0415

    with httpx.Client(base_url=url, timeout=30) as http:

        def post(path: str, token: str | None = None, **kwargs: Any) -> dict[str, Any]:
            headers = kwargs.pop("headers", {})
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response = http.post(path, headers=headers, **kwargs)
            while response.status_code == 429:  # noqa: PLR2004 - seeding outpaces the rate limit
                time.sleep(float(response.headers.get("Retry-After", "1")))
                response = http.post(path, headers=headers, **kwargs)
            if not response.is_success:
                raise OverloadBenchError(f"seeding: {path} answered {response.text}")
            body: dict[str, Any] = response.json()
            return body

        email = "overload@example.org"
        post("/api/v1/users", json={"email": email, "password": _PASSWORD})
        login = post("/api/v1/login", json={"email": email, "password": _PASSWORD})["token"]
        tokens = tuple(
            post(
                "/api/v1/tokens", login, json={"name": f"client {i}", "scopes": ["read", "write"]}
            )["token"]
            for i in range(settings.clients)
        )
        post("/api/v1/printers", login, json={"id": "bench-1", "name": "Bench", "model": "x1"})
        data = make_sample_gcode(3, heat=False).encode()
        upload = post("/api/v1/files", login, files={"file": ("cube.gcode", data, "text/plain")})
        body = {"file_id": upload["id"], "printer_id": "bench-1"}
        keys = tuple(f"overload-{i}" for i in range(settings.seed_jobs))
        for key in keys:
            post("/api/v1/jobs", login, json=body, headers={"Idempotency-Key": key})
    return _Seed(tokens, body, keys)


def _generate(
    url: str, seed: _Seed, settings: OverloadSettings, style: ClientStyle, steps: list[float]
) -> tuple[float, LoadResult]:
    """Run generator processes over ``steps`` (per-second totals) and merge what they saw."""
    count = settings.processes
    start_at = time.time() + 1.5  # every process imported and connected by then
    step_s = settings.capacity_s if style == "closed" else settings.step_s
    plans = [
        LoadPlan(
            url=url,
            tokens=seed.tokens[index::count] or seed.tokens,
            job_body=seed.job_body,
            job_keys=seed.job_keys,
            style=style,
            start_at=start_at,
            steps=tuple(
                (max(1, round(total / count)) if style == "closed" else total / count, step_s)
                for total in steps
            ),
            attempt_timeout_s=settings.attempt_timeout_s,
            patience_s=settings.patience_s,
            naive_attempts=settings.naive_attempts,
            connections_per_client=settings.connections_per_client,
            grace_s=settings.grace_s,
            seed=index + 1,
        )
        for index in range(count)
    ]
    pipes = []
    processes = []
    for index, plan in enumerate(plans):
        receiver, sender = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(target=run_load, args=(plan, sender), name=f"load {index}")
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    merged = LoadResult()
    try:
        for receiver, process in zip(pipes, processes, strict=True):
            try:
                result: LoadResult = receiver.recv()
            except EOFError:
                raise OverloadBenchError(
                    f"a load generator died (exit code {process.exitcode})"
                ) from None
            merged.records.extend(result.records)
            merged.sends.extend(result.sends)
    finally:
        for process in processes:
            # It has sent its figures; what it is still doing is unwinding abandoned requests.
            process.kill()
            process.join()
    return start_at, merged


def _measure_capacity(
    url: str, seed: _Seed, settings: OverloadSettings
) -> tuple[float, float | None]:
    start_at, result = _generate(url, seed, settings, "closed", [settings.capacity_workers])
    # The first half second warms connections up; count the rest.
    begin, end = start_at + 0.5, start_at + settings.capacity_s
    done = [r for r in result.records if r.outcome == OK and begin <= r.completed < end]
    if not done:
        raise OverloadBenchError("the closed loop got no successful answer: is the cloud up?")
    p50 = statistics.median(r.attempt_latency * 1000 for r in done)
    return len(done) / (end - begin), p50


def run_overload_bench(
    settings: OverloadSettings,
    *,
    configs: Sequence[ConfigName] = ("built", "naive"),
    plot: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> OverloadReport:
    """Measure capacity, then each configuration in turn; write ``plot`` if given."""
    capacity: float | None = None
    capacity_p50: float | None = None
    runs = []
    with tempfile.TemporaryDirectory(prefix="printfleet-overload-") as scratch:
        for name in configs:
            data_dir = Path(scratch) / name
            progress(f"{name}: starting a cloud")
            data_dir.mkdir()
            log_file = data_dir / "cloud.log"
            with (
                _cloud(settings.server_settings(name, data_dir), log_file) as (url, pid),
                _cpu_samples(pid) as cpu,
            ):
                seed = _seed(url, settings)
                if capacity is None:
                    progress("measuring capacity (closed loop)")
                    capacity, capacity_p50 = _measure_capacity(url, seed, settings)
                    progress(f"capacity {capacity:.0f} req/s, p50 {capacity_p50:.1f} ms")
                totals = [m * capacity for m in settings.multipliers]
                progress(f"{name}: offering {', '.join(f'{t:.0f}' for t in totals)} req/s")
                style: ClientStyle = "sdk" if name == "built" else "naive"
                start_at, result = _generate(url, seed, settings, style, totals)
                progress(f"{name}: measured; stopping its cloud")
                runs.append(
                    ConfigRun(
                        name=name,
                        start_at=start_at,
                        settings=settings,
                        capacity=capacity,
                        records=tuple(result.records),
                        sends=tuple(result.sends),
                        cpu=tuple(cpu),
                    )
                )
    if capacity is None:
        raise OverloadBenchError("no configuration to measure")
    progress("done")
    report = OverloadReport(settings, capacity, capacity_p50, tuple(runs))
    if plot is not None:
        report = replace(report, plot=plot_report(report, plot))
    return report

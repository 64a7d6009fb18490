"""Load generators on loopback: wrk for single requests (C, so the client takes little of
the two cores the server needs), and a thread pool of Python clients for the journeys
that span several requests (checkout, confirm-to-paid).
"""
from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

WRK_DIR = Path(__file__).resolve().parent / "wrk"
WRK_THREADS = 2
WRK_CONNECTIONS = 16


@dataclass(frozen=True)
class Round:
    """One measured round: throughput and latency percentiles (ms)."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors, non-2xx/3xx answers, and answers the script refused


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Round:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = 0
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        # A sync gunicorn worker closes the connection after each answer, so wrk's
        # reconnects show as read errors of 0 bytes: only connect/write/timeout count.
        errors += int(match.group(1)) + int(match.group(3)) + int(match.group(4))
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(match.group(1))
    if match := re.search(r"replay: refused=(\d+) reused=(\d+)", output):
        errors += int(match.group(1)) + int(match.group(2))
    return Round(rate, p50, p99, total, errors)


def wrk(url: str, seconds: float, script: str | None = None, script_args: Sequence[str] = (),
        headers: dict[str, str] | None = None, connections: int = WRK_CONNECTIONS) -> Round:
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(WRK_DIR / script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr or result.stdout}")
    return parse_wrk(result.stdout)


@dataclass(frozen=True)
class Timed:
    """A run of journeys from several clients at once: their rate and latencies (ms)."""

    per_second: float
    latencies_ms: list[float]
    errors: int

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]


def run_clients(clients: Sequence[Callable[[], bool]], seconds: float) -> Timed:
    """Each client (a callable doing one journey, True when it went right) runs in its own
    thread, again and again, for ``seconds``; a client returning None has no more work."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop(client: Callable[[], bool]) -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                ok = client()
            except Exception:  # noqa: BLE001 - a failed journey counts, and the run goes on
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            if ok is None:
                return
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        list(pool.map(loop, clients))
    elapsed = time.monotonic() - started
    return Timed(len(latencies) / elapsed, latencies, errors)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)

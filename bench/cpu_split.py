"""Where a bench part's CPU goes, by process: the site, the emulator, PostgreSQL, Redis,
the load generator. The README's capacity section is built from these splits.

    python -m bench.cpu_split sample > cpu.csv &     # while `make bench` runs
    python -m bench.cpu_split report cpu.csv 14:16:13 14:16:46

`sample` writes, every half second, each category's CPU seconds so far (from
/proc/<pid>/stat; processes that ended keep what they used). `report` sums the
intervals between two times of day (the part's start and the next one's, as the bench
prints them) in which the site worked and the baseline did not, since the bench
alternates their rounds, and prints each category's cores and share.
"""
from __future__ import annotations

import csv
import datetime
import os
import sys
import time

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
CATEGORIES = ("site", "emulator", "baseline", "postgres", "redis", "wrk", "rq", "bench")


def category(command: str) -> str | None:
    """The category of a process by its command line, as bench/stack.py starts them."""
    if "baseline_app" in command:
        return "baseline"
    if "gunicorn" in command:
        # The emulator's gunicorn runs 2 workers; the site's 2 × cores + 1.
        return "emulator" if "--workers 2 " in command else "site"
    if command.startswith("postgres"):
        return "postgres"
    if "redis-server" in command:
        return "redis"
    if command.startswith("wrk"):
        return "wrk"
    if "jobs worker" in command:
        return "rq"
    if "bench.run" in command:
        return "bench"
    return None


def processes() -> dict[str, tuple[str, float]]:
    """pid → (category, CPU seconds) for every process of a category."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        kind = category(command)
        if kind is not None:
            found[pid] = (kind, (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND)  # utime + stime
    return found


def sample(interval: float = 0.5) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(("t", *CATEGORIES))
    ended = dict.fromkeys(CATEGORIES, 0.0)
    previous: dict[str, tuple[str, float]] = {}
    while True:
        current = processes()
        for pid, (kind, seconds) in previous.items():
            if pid not in current:
                ended[kind] += seconds
        previous = current
        totals = dict(ended)
        for kind, seconds in current.values():
            totals[kind] += seconds
        writer.writerow((f"{time.time():.2f}", *(f"{totals[kind]:.2f}" for kind in CATEGORIES)))
        sys.stdout.flush()
        time.sleep(interval)


def report(path: str, start: str, end: str) -> None:
    with open(path) as file:
        rows = list(csv.DictReader(file))
    today = datetime.date.today()
    since, until = (datetime.datetime.combine(today, datetime.time.fromisoformat(clock)).timestamp()
                    for clock in (start, end))
    used = dict.fromkeys(CATEGORIES, 0.0)
    seconds = 0.0
    for before, after in zip(rows, rows[1:]):
        moment = float(before["t"])
        if not since <= moment < until:
            continue
        step = float(after["t"]) - moment
        delta = {kind: max(0.0, float(after[kind]) - float(before[kind])) for kind in CATEGORIES}
        if delta["site"] > 0.3 * step and delta["site"] > 3 * delta["baseline"]:  # a site round
            seconds += step
            for kind in CATEGORIES:
                used[kind] += delta[kind]
    if not seconds:
        sys.exit("no interval in that window where the site was busy")
    busy = sum(used.values())
    print(f"site rounds: {seconds:.1f} s, {busy / seconds:.2f} cores busy")
    for kind in CATEGORIES:
        if used[kind]:
            print(f"  {kind:9s} {used[kind] / seconds:5.2f} cores  {used[kind] / busy * 100:5.1f} %")


if __name__ == "__main__":
    if sys.argv[1:2] == ["sample"]:
        sample()
    elif sys.argv[1:2] == ["report"] and len(sys.argv) == 5:
        report(*sys.argv[2:])
    else:
        sys.exit(__doc__)

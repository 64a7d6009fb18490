"""The hot paths of the issue's table, each measured in rounds beside its baseline.

Rounds alternate (baseline, subject, baseline, subject, …) so that a noisy neighbour
slows both alike; each figure is the median of its rounds.
"""
from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests
import sqlalchemy as sa
from flask import Flask

from bench import fixtures, load
from bench.load import Round, median
from bench.stack import Stack, peak_rss_mb

ROUND_SECONDS = 5.0
NOTIFY_ROUND_SECONDS = 4.0
WARMUP_SECONDS = 2.0
ROUNDS = 3
CHECKOUT_CLIENTS = 16
# Replayed callbacks a channel gets: enough for warm-up and rounds at ~700/s; a run
# that sends one twice marks the figure as not valid (replay.lua's "reused").
CALLBACKS_PER_CHANNEL = int(700 * (WARMUP_SECONDS + ROUNDS * NOTIFY_ROUND_SECONDS))
JOB_WINDOW_SECONDS = 4.0
CONFIRM_SAMPLES = 40
CONFIRM_CLIENTS = 4
STATUS_POLL_SECONDS = 0.05


@dataclass
class Row:
    """One line of the printed table."""

    what: str
    measured: str
    target: str
    met: bool | None  # None: informational
    detail: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    rounds: dict[str, list[Round]] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def rate(self, name: str) -> float:
        return median([r.requests_per_second for r in self.rounds[name]])

    def errors(self, name: str) -> int:
        return sum(r.errors for r in self.rounds[name])


def alternate(results: Results, subjects: dict[str, Callable[[int], Round]], rounds: int = ROUNDS) -> None:
    """Run each subject ``rounds`` times, interleaved; ``subject(i)`` runs round i."""
    for name in subjects:
        results.rounds[name] = []
    for number in range(rounds):
        for name, subject in subjects.items():
            results.rounds[name].append(subject(number))


def ratio_row(results: Results, what: str, subject: str, baseline: str, target: float) -> Row:
    rate, base = results.rate(subject), results.rate(baseline)
    ratio = rate / base
    errors = results.errors(subject)
    detail = f"{rate:,.0f} req/s vs {base:,.0f} req/s; p99 {median([r.p99_ms for r in results.rounds[subject]]):.0f} ms"
    if errors:
        detail += f"; {errors} failed or repeated requests (not valid)"
    return Row(what, f"{ratio:.2f}×", f"≥ {target}×", ratio >= target and not errors, detail)


# --- status poll vs baseline (a) ----------------------------------------------------------


def status_poll(stack: Stack, results: Results, poller: requests.Session, order_no: str,
                label: str = "status poll", add_row: bool = True) -> float:
    """Returns the ratio; adds the table's row unless ``add_row`` is false (the growth
    table measures it again at each size)."""
    cookie = "; ".join(f"{c.name}={c.value}" for c in poller.cookies)
    site = f"{stack.site_url}/orders/{order_no}/status"
    answer = poller.get(site, timeout=10)
    if answer.status_code != 200 or answer.json().get("status") != "pending":
        raise RuntimeError(f"the polled order does not answer pending: {answer.status_code} {answer.text[:200]}")
    item = f"{stack.baseline_url}/items/1"
    load.wrk(site, WARMUP_SECONDS, headers={"Cookie": cookie})
    load.wrk(item, WARMUP_SECONDS)
    alternate(results, {
        f"{label}:baseline": lambda _: load.wrk(item, ROUND_SECONDS),
        label: lambda _: load.wrk(site, ROUND_SECONDS, headers={"Cookie": cookie}),
    })
    row = ratio_row(results, f"{label} GET /orders/<no>/status", label, f"{label}:baseline", 0.9)
    if add_row:
        results.add(row)
    return results.rate(label) / results.rate(f"{label}:baseline")


# --- notify ingestion vs baseline (b) -----------------------------------------------------


@dataclass(frozen=True)
class Callbacks:
    channel: str
    path: Path
    accepted: str  # replay.lua's test of an answer


def prepare_callbacks(app: Flask, stack: Stack, learners: list[fixtures.Learner],
                      courses: list[int], channel: str) -> Callbacks:
    payments = fixtures.pending_payments(app, learners, courses, channel, CALLBACKS_PER_CHANNEL)
    notify_url = f"{stack.site_url}/notify/{channel}"
    path = stack.work_dir / f"{channel}-callbacks.txt"
    make = fixtures.alipay_callbacks if channel == "alipay" else fixtures.wechat_callbacks
    fixtures.write_records(path, make(app, payments, notify_url))
    accepted = "body:success" if channel == "alipay" else "status:204"
    return Callbacks(channel, path, accepted)


class CallbackBaseline:
    """Baseline (b) rounds; each takes items and inbox keys no earlier round used."""

    def __init__(self, stack: Stack) -> None:
        self.url = f"{stack.baseline_url}/callback"
        self.rounds_run = 0

    def __call__(self, seconds: float) -> Round:
        number, self.rounds_run = self.rounds_run, self.rounds_run + 1
        return load.wrk(self.url, seconds, script="callback.lua", script_args=(str(number),))


def notify_ingestion(stack: Stack, results: Results, baseline: CallbackBaseline,
                     callbacks: list[Callbacks]) -> None:
    """Each round replays fresh callbacks (each is sent once): verify, store, enqueue,
    answer. No worker runs meanwhile: the jobs wait in Redis for `job_throughput`."""

    def replay(entry: Callbacks) -> Callable[[int], Round]:
        return lambda _: load.wrk(
            f"{stack.site_url}/notify/{entry.channel}", NOTIFY_ROUND_SECONDS, script="replay.lua",
            script_args=(str(entry.path), str(load.WRK_THREADS), entry.accepted),
        )

    baseline(WARMUP_SECONDS)
    subjects: dict[str, Callable[[int], Round]] = {
        "callback:baseline": lambda _: baseline(NOTIFY_ROUND_SECONDS)
    }
    for entry in callbacks:
        subjects[f"{entry.channel} notify"] = replay(entry)
    alternate(results, subjects)
    for entry in callbacks:
        name = "Alipay" if entry.channel == "alipay" else "WeChat"
        results.add(ratio_row(results, f"{name} notify ingestion", f"{entry.channel} notify",
                              "callback:baseline", 0.7))


# --- process_notification jobs ------------------------------------------------------------


def processed_count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql(
            "SELECT count(*) FROM notification_inbox WHERE status = 'processed'"
        ).scalar_one()


def job_throughput(stack: Stack, results: Results, engine: sa.Engine) -> float:
    """One worker takes the stored callbacks' jobs: processed inbox rows per second, in
    windows after a warm-up. Returns the worker's peak RSS (MB)."""
    waiting = stack.queue_depth()
    worker = stack.start_worker("job-worker")
    stack.wait_for_workers(1)
    time.sleep(WARMUP_SECONDS)
    rates = []
    for _ in range(ROUNDS):
        before, started = processed_count(engine), time.monotonic()
        time.sleep(JOB_WINDOW_SECONDS)
        rates.append((processed_count(engine) - before) / (time.monotonic() - started))
    rss = peak_rss_mb(worker.popen.pid) or 0.0
    worker.stop()
    stack.processes.remove(worker)
    rate = median(rates)
    results.add(Row("process_notification jobs (one worker)", f"{rate:,.0f} jobs/s", "≥ 150/s",
                    rate >= 150, f"{waiting:,} jobs were waiting; windows {', '.join(f'{r:.0f}' for r in rates)}"))
    stack.clear_payments_queue()
    return rss


# --- checkout -----------------------------------------------------------------------------


def checkout(stack: Stack, results: Results, baseline: CallbackBaseline,
             buyers: list[tuple[fixtures.Learner, requests.Session]], courses: list[int]) -> None:
    """Each client: `POST /api/v1/orders` (order, attempt, precreate at the emulator), then
    the pay page with its QR SVG, as the learner's browser shows it."""

    def client(learner: fixtures.Learner, browser: requests.Session) -> Callable[[], bool | None]:
        remaining = iter(courses)

        def journey() -> bool | None:
            course_id = next(remaining, None)
            if course_id is None:
                return None
            answer = browser.post(
                f"{stack.site_url}/api/v1/orders", json={"course_ids": [course_id], "channel": "alipay"},
                headers={"Authorization": f"Bearer {learner.token}"}, timeout=30,
            )
            if answer.status_code != 201 or not answer.json().get("qr_code"):
                return False
            order_no = answer.json()["order_no"]
            page = browser.get(f"{stack.site_url}/orders/{order_no}/pay", timeout=30)
            return page.status_code == 200 and "<svg" in page.text

        return journey

    clients = [client(learner, browser) for learner, browser in buyers]
    load.run_clients(clients, WARMUP_SECONDS)
    rounds: list[load.Timed] = []

    def measured(_: int) -> Round:
        timed = load.run_clients(clients, ROUND_SECONDS)
        rounds.append(timed)
        return Round(timed.per_second, timed.percentile(50), timed.percentile(99),
                     len(timed.latencies_ms), timed.errors)

    alternate(results, {"checkout:baseline": lambda _: baseline(ROUND_SECONDS), "checkout": measured})
    rate = median([r.per_second for r in rounds])
    p99 = median([r.percentile(99) for r in rounds])
    errors = sum(r.errors for r in rounds)
    base = results.rate("checkout:baseline")
    ratio = rate / base
    detail = f"{rate:,.1f} checkouts/s vs {base:,.0f} req/s; p50 {median([r.percentile(50) for r in rounds]):.0f} ms"
    if errors:
        detail += f"; {errors} failed (not valid)"
    results.add(Row(f"checkout at {CHECKOUT_CLIENTS} concurrent", f"{ratio:.2f}×", "≥ 0.3×",
                    ratio >= 0.3 and not errors, detail))
    results.add(Row("checkout p99", f"{p99:.0f} ms", "< 150 ms", p99 < 150 and not errors))


# --- confirm at the emulator → the status says paid --------------------------------------


def _confirm_at_emulator(qr_url: str) -> None:
    phone = requests.Session()
    with phone:
        page = phone.get(qr_url, timeout=10)
        form = re.search(r'<form[^>]*action="([^"]*confirm[^"]*)"(.*?)</form>', page.text, re.S)
        if page.status_code != 200 or form is None:
            raise RuntimeError(f"no confirm form at {qr_url}: {page.status_code}")
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)))
        action = html.unescape(form.group(1))
        target = action if action.startswith("http") else requests.compat.urljoin(qr_url, action)
        answer = phone.post(target, data={k: html.unescape(v) for k, v in fields.items()}, timeout=10)
        if answer.status_code != 200:
            raise RuntimeError(f"confirm failed: {answer.status_code}")


def confirm_to_paid(stack: Stack, results: Results, buyers: list[tuple[fixtures.Learner, requests.Session]],
                    courses: list[int]) -> None:
    """With two RQ workers running: per order, the time from the phone's confirm to the
    first status poll (every 50 ms, as fast as a page could) that says paid."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    per_client = CONFIRM_SAMPLES // CONFIRM_CLIENTS

    def client(learner: fixtures.Learner, browser: requests.Session) -> None:
        nonlocal failures
        for course_id in courses[:per_client]:
            answer = browser.post(
                f"{stack.site_url}/api/v1/orders", json={"course_ids": [course_id], "channel": "alipay"},
                headers={"Authorization": f"Bearer {learner.token}"}, timeout=30,
            )
            body = answer.json()
            started = time.perf_counter()
            try:
                _confirm_at_emulator(body["qr_code"])
            except (RuntimeError, KeyError, requests.RequestException):
                with lock:
                    failures += 1
                continue
            deadline = started + 30
            paid = False
            while time.perf_counter() < deadline:
                status = browser.get(f"{stack.site_url}/orders/{body['order_no']}/status", timeout=10)
                if status.status_code != 200:
                    break  # an error answer fails this order; it must not end the client
                if status.json()["status"] == "paid":
                    paid = True
                    with lock:
                        latencies.append((time.perf_counter() - started) * 1000)
                    break
                time.sleep(STATUS_POLL_SECONDS)
            if not paid:
                with lock:
                    failures += 1

    threads = [threading.Thread(target=client, args=buyer) for buyer in buyers[:CONFIRM_CLIENTS]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timed = load.Timed(0, latencies, failures)
    p95 = timed.percentile(95)
    detail = f"{len(latencies)} orders, p50 {timed.percentile(50):.0f} ms"
    if failures:
        detail += f"; {failures} never paid (not valid)"
    results.add(Row("confirm in the emulator → status says paid", f"p95 {p95:.0f} ms", "< 1500 ms",
                    p95 < 1500 and not failures, detail))


def memory_row(results: Results, site_workers: list[float], job_workers: list[float]) -> None:
    worst = max(site_workers + job_workers)
    detail = (f"gunicorn workers {', '.join(f'{m:.0f}' for m in site_workers)} MB; "
              f"RQ workers {', '.join(f'{m:.0f}' for m in job_workers)} MB")
    results.add(Row("peak RSS per gunicorn / RQ worker", f"{worst:.0f} MB", "< 150 MB", worst < 150, detail))


def dumps(results: Results) -> str:
    return json.dumps([row.__dict__ for row in results.rows], ensure_ascii=False, indent=1)

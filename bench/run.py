"""`make bench`: start the stack, measure the hot paths against the bare baseline, then
how the back office and statements grow with history, and print one table.

    .venv/bin/python -m bench.run [--scale 10000,100000,1000000] [--keep-database]

Everything runs on this machine: a scratch PostgreSQL database (dropped at the end),
Redis, gunicorn (2 × cores + 1 sync workers) for the site and the baseline, the gateway
emulator in a gunicorn of its own, RQ workers, and wrk on loopback. See bench/README.md.
"""
from __future__ import annotations

import argparse
import sys
import time

import sqlalchemy as sa

from bench import fixtures, hot_paths, scale
from bench.hot_paths import Results
from bench.stack import PROJECT_ROOT, Stack, peak_rss_mb

CHECKOUT_LEARNERS = hot_paths.CHECKOUT_CLIENTS
CALLBACK_LEARNERS = 100
# Courses each learner can buy once: checkout rounds and callbacks need that many pairs.
BENCH_COURSES = 300
PARTS = ("checkout", "poll", "notify", "jobs", "confirm", "scale")


def make_app(stack: Stack):  # noqa: ANN201 - a Flask app, imported late (it reads the env)
    from app import create_app
    from app.config import load_config

    return create_app(load_config(str(stack.work_dir / "instance"), environ=stack.site_env()))


def measure(stack: Stack, results: Results, parts: set[str], sizes: list[int]) -> scale.Growth | None:
    stack.flask("db", "upgrade")
    stack.flask("seed-demo")
    app = make_app(stack)
    engine = sa.create_engine(stack.database_url)
    from bench.baseline_app import create_tables

    create_tables(engine)
    courses = fixtures.course_ids(app, BENCH_COURSES)
    buyers_made = fixtures.make_learners(app, CHECKOUT_LEARNERS, "buyer")
    payers = fixtures.make_learners(app, CALLBACK_LEARNERS, "payer")
    site, _emulator, _baseline = stack.start_servers()
    buyers = [(learner, fixtures.login(stack.site_url, learner.email)) for learner in buyers_made]

    callback_baseline = hot_paths.CallbackBaseline(stack)
    if "checkout" in parts:
        step("checkout")
        hot_paths.checkout(stack, results, callback_baseline, buyers, courses)
    [polled] = fixtures.pending_payments(app, [buyers_made[0]], courses[-1:], "alipay", 1)
    if "poll" in parts:
        step("status poll")
        hot_paths.status_poll(stack, results, buyers[0][1], polled.order_no)
    if "notify" in parts:
        step("callbacks: placing orders and signing their notifications")
        half = len(payers) // 2
        callbacks = [
            hot_paths.prepare_callbacks(app, stack, payers[:half], courses, "alipay"),
            hot_paths.prepare_callbacks(app, stack, payers[half:], courses, "wechat"),
        ]
        step("notify ingestion")
        hot_paths.notify_ingestion(stack, results, callback_baseline, callbacks)
    job_rss: list[float] = []
    if "jobs" in parts:
        if "notify" not in parts:
            raise SystemExit("the jobs part processes what the notify part stored: run both")
        step("process_notification jobs")
        job_rss.append(hot_paths.job_throughput(stack, results, engine))
    if "confirm" in parts:
        step("confirm → paid")
        workers = [stack.start_worker(f"worker-{n}") for n in range(2)]
        stack.wait_for_workers(2)
        hot_paths.confirm_to_paid(stack, results, buyers, courses[len(courses) // 2:])
        job_rss += [peak_rss_mb(worker.popen.pid) or 0.0 for worker in workers]
    site_rss = [peak_rss_mb(pid) or 0.0 for pid in site.pids()[1:]]
    hot_paths.memory_row(results, site_rss, job_rss)
    engine.dispose()
    if "scale" not in parts:
        return None
    rounds = iter(range(len(sizes)))

    def poll_ratio() -> float:
        return hot_paths.status_poll(stack, results, buyers[0][1], polled.order_no,
                                     label=f"status poll {next(rounds)}", add_row=False)

    step(f"growth: {', '.join(f'{size:,}' for size in sizes)} orders")
    return scale.measure_growth(app, stack, results, sizes, poll_ratio, progress=step)


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def print_table(results: Results) -> None:
    print()
    print("| what | measured | target | met | detail |")
    print("|---|---|---|---|---|")
    for row in results.rows:
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        print(f"| {row.what} | {row.measured} | {row.target} | {met} | {row.detail} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="10000,100000,1000000",
                        help="the seeded history sizes at which the scale part measures")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"a comma-separated subset of {','.join(PARTS)} (for working on one path)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = PROJECT_ROOT / "artifacts" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    print(f"logs and prepared requests: {work}", file=sys.stderr)
    if True:
        stack = Stack(work, keep_database=args.keep_database)
        stack.create_database()
        results = Results()
        growth = None
        try:
            growth = measure(stack, results, set(args.only.split(",")),
                             [int(size) for size in args.scale.split(",")])
        finally:
            stack.stop()
            print_table(results)
            if growth is not None:
                scale.print_growth(growth)
    print(f"\nbench finished in {(time.monotonic() - started) / 60:.1f} min")
    return 0 if all(row.met is not False for row in results.rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark data: a seeded payment history (`flask bench seed --orders N`).

A year of learners buying courses, paying by Alipay or WeChat Pay, letting orders expire,
and asking for refunds, written in bulk but row for row as the real code paths write it:
every journal entry balances and every statement agrees with the ledger. A benchmark
imports `bench_dataset()` for the landmarks (a learner's e-mail, an order number, the
big instructor's busy month).
"""
from __future__ import annotations

from app.benchdata.catalog import BENCH_PASSWORD, BIG_INSTRUCTOR_EMAIL, LEARNER_EMAIL
from app.benchdata.dataset import BenchDataset, bench_dataset
from app.benchdata.seeding import SeedRefused, SeedRun, seed_history

__all__ = ["BENCH_PASSWORD", "BIG_INSTRUCTOR_EMAIL", "LEARNER_EMAIL", "BenchDataset", "SeedRefused",
           "SeedRun", "bench_dataset", "seed_history"]

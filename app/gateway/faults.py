"""Fault modes: make the emulator misbehave on purpose, so tests and operators can
rehearse the incidents a real channel causes.

Notification faults (looked up when a notification is scheduled and again when it is
sent; a WeChat REFUND.SUCCESS callback is matched by its refunded trade's out_trade_no):

- ``drop_notify``: recorded but never sent.
- ``delay_notify``: the first attempt is due ``delay_seconds`` after the payment (or
  the refund).
- ``duplicate_notify``: every attempt POSTs the notification twice.
- ``shuffle_notify``: held back from the inline first attempt; the notifier's rounds
  send due notifications in random order.

API faults (matched by the request's out_trade_no when it names one, else globally):

- ``api_error``: HTTP 503 before anything is processed.
- ``api_unknown``: processed and committed, then answered as "system busy".
- ``api_timeout``: processed and committed, then answered normally after
  ``GATEWAY_FAULT_TIMEOUT_SECONDS``, so a client with a shorter timeout gives up while
  the effect happened.

A fault applies to its channel ('*' for both) and to one out_trade_no or, with NULL,
to every trade. These functions flush, never commit.
"""
from __future__ import annotations

import random
import time

from flask import current_app
from sqlalchemy import delete, or_, select

from app.extensions import db
from app.gateway.models import FAULT_CHANNELS, FAULT_MODES, GatewayFault
from app.timeutil import now

NOTIFY_MODES = frozenset({"drop_notify", "delay_notify", "duplicate_notify", "shuffle_notify"})
API_MODES = frozenset({"api_error", "api_unknown", "api_timeout"})
DEFAULT_TIMEOUT_SECONDS = 15.0
DROPPED_ANSWER = "dropped (fault mode)"


def set_fault(
    mode: str, channel: str = "*", out_trade_no: str | None = None, delay_seconds: int = 0
) -> int:
    """Switch a fault mode on; returns the fault's id. Flushes.

    Setting the same mode for the same channel and out_trade_no again replaces the
    earlier row (so a new ``delay_seconds`` takes effect). ValueError on an unknown mode
    or channel or a negative delay.
    """
    if mode not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {mode!r}")
    if channel not in FAULT_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if delay_seconds < 0:
        raise ValueError("delay_seconds must not be negative")
    out_trade_no = out_trade_no or None
    same_trade = (
        GatewayFault.out_trade_no.is_(None)
        if out_trade_no is None
        else GatewayFault.out_trade_no == out_trade_no
    )
    db.session.execute(
        delete(GatewayFault).where(
            GatewayFault.mode == mode, GatewayFault.channel == channel, same_trade
        )
    )
    fault = GatewayFault(
        mode=mode,
        channel=channel,
        out_trade_no=out_trade_no,
        delay_seconds=delay_seconds,
        created_at=now(),
    )
    db.session.add(fault)
    db.session.flush()
    return fault.id


def clear_faults(channel: str | None = None) -> int:
    """Switch off every fault, or those set for exactly ``channel`` ('alipay', 'wechat'
    or '*'); returns how many were removed. Flushes."""
    statement = delete(GatewayFault)
    if channel is not None:
        statement = statement.where(GatewayFault.channel == channel)
    removed = db.session.execute(statement).rowcount
    db.session.flush()
    return removed


def clear_fault(fault_id: int) -> bool:
    """Switch off one fault by id; False when it was already gone. Flushes."""
    removed = db.session.execute(delete(GatewayFault).where(GatewayFault.id == fault_id)).rowcount
    db.session.flush()
    return removed == 1


def active_faults() -> list[GatewayFault]:
    """Every fault switched on, oldest first (for the operator page)."""
    return list(db.session.scalars(select(GatewayFault).order_by(GatewayFault.id)))


def faults_for(channel: str, out_trade_no: str | None) -> dict[str, GatewayFault]:
    """The faults that apply to ``out_trade_no`` on ``channel``, by mode.

    Trade-specific and global rows both apply; where both set the same mode, the most
    specific wins (trade before global, the channel's own before '*'), which matters
    only for ``delay_seconds``.
    """
    trade_match = GatewayFault.out_trade_no.is_(None)
    if out_trade_no:
        trade_match = or_(trade_match, GatewayFault.out_trade_no == out_trade_no)
    rows = db.session.scalars(
        select(GatewayFault).where(GatewayFault.channel.in_((channel, "*")), trade_match)
    ).all()

    def generality(fault: GatewayFault) -> tuple[bool, bool]:
        return fault.out_trade_no is None, fault.channel == "*"

    found: dict[str, GatewayFault] = {}
    for fault in sorted(rows, key=generality, reverse=True):
        found[fault.mode] = fault  # the most specific comes last and wins
    return found


def shuffler() -> random.Random:
    """The random order of ``shuffle_notify``; seeded by GATEWAY_FAULT_SEED if set."""
    return random.Random(current_app.config.get("GATEWAY_FAULT_SEED"))


def sleep_for_timeout() -> None:
    """The ``api_timeout`` stall: called after the commit, before answering."""
    seconds = current_app.config.get("GATEWAY_FAULT_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    time.sleep(float(seconds))

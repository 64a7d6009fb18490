"""What must hold after any fault (issue 6, "Done means"), checked in SQL (valid on
PostgreSQL and SQLite) on the database the site used. Each check returns the rows that break it, so a failing test
names them."""
from __future__ import annotations

from typing import Callable

Rows = Callable[[str], list[tuple]]

CHECKS = {
    "journal entries that do not balance":
        "SELECT entry_id, SUM(amount_fen) FROM postings GROUP BY entry_id"
        " HAVING SUM(amount_fen) <> 0",
    # A payment entry's source key is "payment:<attempt id>" and unique, so one entry
    # per paid attempt means: every succeeded attempt has one, and nothing else has any.
    "succeeded attempts without their payment entry":
        "SELECT a.id FROM payment_attempts a WHERE a.status = 'succeeded' AND NOT EXISTS"
        " (SELECT 1 FROM journal_entries e WHERE e.source_key = 'payment:' || a.id)",
    "payment entries of attempts that did not succeed":
        "SELECT e.id, e.source_key FROM journal_entries e JOIN payment_attempts a"
        " ON e.source_key = 'payment:' || a.id WHERE a.status <> 'succeeded'",
    "attempts refunded beyond what they took":
        "SELECT a.id, a.amount_fen, SUM(r.amount_fen) FROM payment_attempts a"
        " JOIN refunds r ON r.attempt_id = a.id"
        " WHERE r.status NOT IN ('rejected', 'failed')"
        " GROUP BY a.id, a.amount_fen HAVING SUM(r.amount_fen) > a.amount_fen",
    "succeeded refunds without their refund entry":
        "SELECT r.id FROM refunds r WHERE r.status = 'succeeded' AND NOT EXISTS"
        " (SELECT 1 FROM journal_entries e WHERE e.source_key = 'refund:' || r.id)",
    "inbox rows left unprocessed":
        "SELECT id, status, outcome FROM notification_inbox WHERE status <> 'processed'",
    # The channel's side: what it paid back of each trade is what our books show as
    # refunded, neither more (a refund sent twice) nor less (one we lost track of).
    "trades whose refunds at the channel differ from ours":
        "SELECT t.out_trade_no, t.refunded_fen, COALESCE(SUM(r.amount_fen), 0)"
        " FROM (SELECT out_trade_no, refunded_fen FROM gateway_alipay_trades"
        "       UNION ALL SELECT out_trade_no, refunded_fen FROM gateway_wechat_trades) t"
        " JOIN payment_attempts a ON a.out_trade_no = t.out_trade_no"
        " LEFT JOIN refunds r ON r.attempt_id = a.id AND r.status = 'succeeded'"
        " GROUP BY t.out_trade_no, t.refunded_fen"
        " HAVING t.refunded_fen <> COALESCE(SUM(r.amount_fen), 0)",
}


def broken_invariants(rows_of: Rows) -> dict[str, list[tuple]]:
    """Every check with the rows that break it (``rows_of`` runs a query, such as
    `FaultStack.rows`); an empty dict when all hold."""
    broken = {}
    for name, sql in CHECKS.items():
        rows = rows_of(sql)
        if rows:
            broken[name] = rows
    return broken

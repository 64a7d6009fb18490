"""Money per Beijing day and month, read from the journal (issue 11): what learners paid
for sales, what was refunded to them, what the platform kept and what instructors earned.

Each figure is a sum of postings, so it is the ledger's own number (DESIGN.md §9):

- **sales**: the debits of sale entries (``payment``, ``wallet_payment``,
  ``membership_sale``), which equal the orders' totals, tax included, whatever paid them
  (a channel, the balance or both). A top-up is not a sale: it is money owed back to the
  learner until spent, and counts when the balance pays for a course;
- **refunds**: the debits of ``refund`` entries, which equal the refunded lines'
  amounts, whether they went back through a channel or to the balance. An orphan
  payment's return is neither a sale nor its refund and is left out of both;
- **platform revenue**: the net credit to ``platform:revenue``: sales' platform part,
  less refunds', less the membership pools moved to instructors;
- **instructor earnings**: the net credit to every ``instructor:*`` account, except the
  payouts, which move earnings out rather than earn them: sales' shares, less refunds'
  claw-backs, adjustments, membership pool shares.

A day is counted by when its entries were posted. The journal is append-only, so once a
day is over (and `FINAL_AFTER` has passed, for a transaction still committing an entry
stamped before midnight) its totals cannot change: the periodic tick stores each ended
day once in ``journal_day_totals`` and a range reads the stored days, adding the days
not stored yet (today, at least) from the journal itself. The page is therefore exact
and current whether or not the tick has run, and fast once it has.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from app.analytics.models import JournalDayTotal
from app.analytics.sql import beijing_day_number
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.timeutil import BEIJING, beijing, from_aware, now, system_now

SALE_KINDS = ("payment", "wallet_payment", "membership_sale")
REFUND_KINDS = ("refund",)
PAYOUT_KINDS = ("payout", "payout_paid", "payout_failed")
# An entry is stamped when its transaction inserts it and seen when that commits: a day
# is final once no transaction that began in it can still be open.
FINAL_AFTER = timedelta(hours=1)
# Days stored per tick, so a database with years of history but no totals yet fills in
# over a few rounds instead of holding one round for minutes.
DAYS_PER_REFRESH = 62


@dataclass(frozen=True)
class MoneyFigures:
    sales_fen: int = 0
    refunds_fen: int = 0
    platform_revenue_fen: int = 0
    instructor_earnings_fen: int = 0

    def __add__(self, other: MoneyFigures) -> MoneyFigures:
        return MoneyFigures(self.sales_fen + other.sales_fen, self.refunds_fen + other.refunds_fen,
                            self.platform_revenue_fen + other.platform_revenue_fen,
                            self.instructor_earnings_fen + other.instructor_earnings_fen)

    @property
    def net_sales_fen(self) -> int:
        return self.sales_fen - self.refunds_fen


def _day_start(day: date) -> datetime:
    """The naive-UTC moment a Beijing day starts."""
    return from_aware(datetime.combine(day, time(), tzinfo=BEIJING))


def journal_figures(first: date, last: date) -> dict[date, MoneyFigures]:
    """The figures of Beijing days ``first`` to ``last`` straight from the journal, by
    one grouped query over the entries posted then (``ix_journal_entries_created_at``)
    and their postings (``ix_postings_entry_id``). Days with no entry are absent."""
    positive = case((Posting.amount_fen > 0, Posting.amount_fen), else_=0)
    day_number = beijing_day_number(JournalEntry.created_at)
    rows = db.session.execute(
        select(
            day_number,
            func.sum(case((JournalEntry.kind.in_(SALE_KINDS), positive), else_=0)),
            func.sum(case((JournalEntry.kind.in_(REFUND_KINDS), positive), else_=0)),
            -func.sum(case((Posting.account == accounts.PLATFORM_REVENUE, Posting.amount_fen), else_=0)),
            -func.sum(case(((Posting.account.like("instructor:%")) & JournalEntry.kind.not_in(PAYOUT_KINDS),
                            Posting.amount_fen), else_=0)),
        )
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .where(JournalEntry.created_at >= _day_start(first),
               JournalEntry.created_at < _day_start(last + timedelta(days=1)))
        .group_by(day_number)
    )
    epoch = date(1970, 1, 1)
    return {epoch + timedelta(days=number): MoneyFigures(int(sales), int(refunds), int(revenue), int(earnings))
            for number, sales, refunds, revenue, earnings in rows}


def last_final_day(moment: datetime) -> date:
    """The latest Beijing day whose totals can no longer change at ``moment``."""
    return beijing(moment - FINAL_AFTER).date() - timedelta(days=1)


def daily_figures(first: date, last: date) -> dict[date, MoneyFigures]:
    """Every day of the range (zero where nothing was posted): stored totals where the
    tick has stored them, the journal for the rest (one query over the span they cover)."""
    stored = {row.day: MoneyFigures(row.sales_fen, row.refunds_fen, row.platform_revenue_fen,
                                    row.instructor_earnings_fen)
              for row in db.session.scalars(select(JournalDayTotal).where(JournalDayTotal.day.between(first, last)))}
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    live: dict[date, MoneyFigures] = {}
    for run_first, run_last in _runs([day for day in days if day not in stored]):
        live.update(journal_figures(run_first, run_last))
    return {day: stored[day] if day in stored else live.get(day, MoneyFigures()) for day in days}


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days: usually the days before the journal
    began and today, which should not make one query read every stored day between."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def month_of(day: date) -> str:
    return day.strftime("%Y-%m")


def monthly_figures(first_month: date, last_day: date) -> dict[str, MoneyFigures]:
    """The months from ``first_month``'s to ``last_day``'s (``YYYY-MM``), the last
    one up to ``last_day``: sums of the days."""
    months: dict[str, MoneyFigures] = {}
    for day, figures in daily_figures(first_month.replace(day=1), last_day).items():
        months[month_of(day)] = months.get(month_of(day), MoneyFigures()) + figures
    return months


def store_ended_days(moment: datetime | None = None, limit: int = DAYS_PER_REFRESH) -> int:
    """Store the totals of up to ``limit`` ended days that have none yet, most recent
    first (the days the pages ask for most). Flushes only; returns how many were stored.

    A day is stored with ``ON CONFLICT DO NOTHING``: two rounds at once compute the same
    numbers from the same final journal, and the second insert simply finds the first."""
    through = last_final_day(moment or now())
    oldest = db.session.scalar(select(func.min(JournalEntry.created_at)))
    if oldest is None:
        return 0
    start = beijing(oldest).date()
    if start > through:
        return 0
    stored = set(db.session.scalars(select(JournalDayTotal.day).where(JournalDayTotal.day.between(start, through))))
    missing = [through - timedelta(days=offset) for offset in range((through - start).days + 1)]
    missing = [day for day in missing if day not in stored][:limit]
    if not missing:
        return 0
    figures = journal_figures(min(missing), max(missing))
    rows = [{"day": day, **_columns(figures.get(day, MoneyFigures())), "computed_at": system_now()}
            for day in missing]
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(JournalDayTotal).values(rows).on_conflict_do_nothing())
    db.session.flush()
    return len(missing)


def _columns(figures: MoneyFigures) -> dict[str, int]:
    return {"sales_fen": figures.sales_fen, "refunds_fen": figures.refunds_fen,
            "platform_revenue_fen": figures.platform_revenue_fen,
            "instructor_earnings_fen": figures.instructor_earnings_fen}


def forget_stored_days() -> None:
    """Drop every stored day, for whoever rewrites past journal days (the benchmark's
    bulk history): the next rounds store them again."""
    db.session.execute(JournalDayTotal.__table__.delete())

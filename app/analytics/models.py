"""Tables the analytics keep: totals derived from the journal, which is the truth."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import system_now


class JournalDayTotal(db.Model):
    """One ended Beijing day's money figures (`app.analytics.money_flow` says which); derived
    from the journal and never changed once stored."""

    __tablename__ = "journal_day_totals"

    day: Mapped[date] = mapped_column(primary_key=True)
    sales_fen: Mapped[int] = mapped_column(BigInteger)
    refunds_fen: Mapped[int] = mapped_column(BigInteger)
    platform_revenue_fen: Mapped[int] = mapped_column(BigInteger)
    instructor_earnings_fen: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(default=system_now)

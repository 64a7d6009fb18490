"""The statement lines of a month's membership pool: one per course of the instructor
that members opened, saying how its part was reached."""
from __future__ import annotations

from datetime import datetime
from typing import Iterator

from sqlalchemy import select

from app.earnings.documents import StatementRow
from app.extensions import db
from app.membership.models import MembershipPool, MembershipPoolShare
from app.money import display_yuan


def pool_rows(entry_id: int, instructor_id: int, occurred_at: datetime) -> Iterator[StatementRow]:
    """Rows of kind "sale" (membership earnings are sales of access): the share, the
    course's opens out of the month's in ``weight_note``, and the rule in the memo."""
    pool = db.session.scalar(select(MembershipPool).where(MembershipPool.entry_id == entry_id))
    shares = db.session.scalars(
        select(MembershipPoolShare)
        .where(MembershipPoolShare.entry_id == entry_id, MembershipPoolShare.instructor_id == instructor_id)
        .order_by(MembershipPoolShare.course_id)
    )
    for share in shares:
        co_authored = " (co-authors split it by weight)" if share.course_fen != share.share_fen else ""
        yield StatementRow(
            occurred_at=occurred_at, kind="sale", order_no=None, course_title=share.course_title,
            amount_fen=None, tax_fen=None, fee_fen=None, rate_bps=None,
            weight_note=f"{share.opens}/{pool.opens}", share_fen=share.share_fen,
            memo=(f"Membership pool {pool.period} of {display_yuan(pool.pool_fen)}, shared by lesson opens: "
                  f"{share.opens} of {pool.opens} -> {display_yuan(share.course_fen)}{co_authored}. "
                  f"会员分成池按课时打开次数分配")[:255],
        )

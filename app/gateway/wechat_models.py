"""The emulated WeChat Pay's books: the Native trades it holds and the refunds it made.

Like ``models.py``, these tables belong to the emulated party; nothing outside
``app.gateway`` reads them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

WECHAT_TRADE_STATES = ("NOTPAY", "SUCCESS", "CLOSED", "REFUND")


class GatewayWechatTrade(db.Model):
    """One out_trade_no as WeChat Pay sees it.

    WeChat creates the order when the merchant asks for a code_url, so there is no
    "unscanned" state as on the Alipay side: a trade starts NOTPAY. REFUND means
    refunded in full; a partly refunded trade stays SUCCESS with ``refunded_fen`` > 0.
    """

    __tablename__ = "gateway_wechat_trades"
    __table_args__ = (
        CheckConstraint("status IN ('NOTPAY', 'SUCCESS', 'CLOSED', 'REFUND')", name="status"),
        CheckConstraint("total_fen > 0", name="total_fen"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        CheckConstraint(
            "(status IN ('SUCCESS', 'REFUND') AND paid_at IS NOT NULL"
            " AND transaction_id IS NOT NULL AND payer_openid IS NOT NULL)"
            " OR (status IN ('NOTPAY', 'CLOSED') AND paid_at IS NULL AND transaction_id IS NULL)",
            name="paid_has_transaction",
        ),
        CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= total_fen", name="refunded_within_total"
        ),
        CheckConstraint(
            "(status = 'REFUND' AND refunded_fen = total_fen)"
            " OR (status <> 'REFUND' AND refunded_fen < total_fen)",
            name="refund_iff_fully_refunded",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    mch_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    qr_token: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(127))
    total_fen: Mapped[int]
    notify_url: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]  # always set from the injectable clock
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(8), default="NOTPAY", index=True)
    transaction_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    paid_at: Mapped[datetime | None]
    payer_openid: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[datetime | None]
    refunded_fen: Mapped[int] = mapped_column(default=0)


class GatewayWechatRefund(db.Model):
    """One domestic refund. The emulator refunds synchronously, so every row is a
    SUCCESS at its creation; ``out_refund_no`` is unique for our one merchant."""

    __tablename__ = "gateway_wechat_refunds"
    __table_args__ = (CheckConstraint("refund_fen > 0", name="refund_fen"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trade_id: Mapped[int] = mapped_column(ForeignKey("gateway_wechat_trades.id"), index=True)
    out_refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    refund_id: Mapped[str] = mapped_column(String(32), unique=True)
    refund_fen: Mapped[int]
    reason: Mapped[str | None] = mapped_column(String(80))
    notify_url: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]

    trade: Mapped[GatewayWechatTrade] = relationship()

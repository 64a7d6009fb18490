"""Racing deliveries of one notification, with real threads against the real database
(PostgreSQL when TEST_POSTGRES_URL is set, as `make test` does on its second pass)."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from app.catalog.models import Enrollment
from app.extensions import db
from app.ledger.models import JournalEntry
from app.ledger.services import unbalanced_entry_ids
from app.payments.models import InboxNotification, PaymentAttempt
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import at_the_pay_page

DELIVERIES = 10


def test_ten_concurrent_deliveries_book_one_payment(app, client):
    out_trade_no, _qr = at_the_pay_page(app, client)
    body = signed_body(notification_fields(out_trade_no, 10000))

    barrier = threading.Barrier(DELIVERIES)
    answers: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        channel_client = app.test_client()
        try:
            barrier.wait(timeout=10)
            response = channel_client.post(
                "/notify/alipay", data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            answers.append(response.text)
        except BaseException as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    # A delivery may lose a race and answer failure (Alipay then retries); none may be lost.
    assert answers.count("success") >= 1 and len(answers) == DELIVERIES
    with app.app_context():
        assert db.session.scalar(
            select(func.count(PaymentAttempt.id)).where(PaymentAttempt.status == "succeeded")
        ) == 1
        assert db.session.scalar(select(func.count(Enrollment.id))) == 1
        assert db.session.scalar(select(func.count(JournalEntry.id))) == 1
        inbox = db.session.scalars(select(InboxNotification)).all()
        assert len(inbox) == 1 and inbox[0].status == "processed"
        assert inbox[0].deliveries == DELIVERIES
        assert unbalanced_entry_ids() == []

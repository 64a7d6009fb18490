"""The e-mail outbox (app/mail): what the money follow-ups queue, in which language and
under which key, and how the delivery job sends it: once, with backoff on failure, and
never twice when two workers race for one message."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import followups
from app.accounts.services import create_user
from app.audit.models import AuditEntry
from app.catalog.models import Enrollment, Instructor
from app.config import ConfigError, finalize_config, load_config
from app.earnings.statements import close_statement
from app.extensions import db
from app.jobs import enqueue
from app.jobs.periodic import tick
from app.mail import services
from app.mail.models import OutboxMessage
from app.mail.services import BACKOFF_MINUTES, CLAIM_LEASE, NotResendable
from app.payments import refund_workflow
from app.payments.models import Refund
from app.payments.refunds import fail_refund
from app.payments.states import IllegalTransition
from app.payments.transitions import compare_and_set
from tests.conftest import Clock
from tests.smtp_server import SmtpServer, start_smtp_server
from tests.test_refunds import approve_and_run, order_of, paid_order, refused_refund, staff

SENDER = "CourseCashier <no-reply@localhost>"


def messages() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def eml_files(app: Flask) -> list[Path]:
    return sorted(Path(app.config["MAIL_OUTBOX_DIR"]).glob("*.eml"))


@pytest.fixture
def smtp(app: Flask) -> Iterator[SmtpServer]:
    """A real SMTP server on a free port, and the app sending to it."""
    state, server = start_smtp_server()
    app.config.update(MAIL_BACKEND="smtp", MAIL_SERVER=state.host, MAIL_PORT=state.port,
                      MAIL_TIMEOUT_SECONDS=5)
    yield state
    server.shutdown()
    server.server_close()


def queue(key: str = "test:1", to: str = "ann@example.com", body: str = "Hello") -> int | None:
    message_id = services.queue_email(key, "test", to, "Subject", body, "en")
    db.session.commit()
    return message_id


# --- queueing --------------------------------------------------------------------------


def test_queueing_the_same_key_twice_keeps_the_first_message(app: Flask) -> None:
    with app.app_context():
        first = queue("order-paid:7", body="first")
        assert first is not None
        assert queue("order-paid:7", body="second") is None
        [message] = messages()
        assert (message.id, message.body_text, message.status, message.attempts) == (first, "first", "pending", 0)


def test_a_message_rolls_back_with_the_money_transaction_that_queued_it(app, client) -> None:
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        db.session.execute(OutboxMessage.__table__.delete())
        db.session.commit()
        followups.order_paid(order_of(order_no).id)
        assert len(messages()) == 1  # flushed, visible inside the transaction
        db.session.rollback()
        assert messages() == []


def test_an_order_paid_queues_one_confirmation_with_its_number_courses_amount_and_link(app, client) -> None:
    order_no = paid_order(app, client, [10000, 4990])
    with app.app_context():
        order = order_of(order_no)
        [message] = messages()
        assert (message.key, message.kind, message.recipient, message.locale) == (
            f"order-paid:{order.id}", "order_paid", "ann@example.com", "en")
        assert order_no in message.subject
        assert "¥149.90" in message.body_text
        assert "Course r0-10000" in message.body_text and "Course r1-4990" in message.body_text
        assert f"http://cashier.test/orders/{order_no}/pay" in message.body_text
        # A second announcement of the same payment (a replayed callback) adds nothing.
        followups.order_paid(order.id)
        db.session.commit()
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 1


def test_the_round_writes_each_message_once_as_an_eml_file(app, client) -> None:
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        assert tick()["mail_due"] == 1
        assert tick()["mail_due"] == 0
        [message] = messages()
        assert message.status == "sent" and message.sent_at is not None and message.attempts == 1
        key = message.key
    [eml] = eml_files(app)
    parsed = message_from_bytes(eml.read_bytes())
    assert parsed["To"] == "ann@example.com"
    assert order_no in parsed["Subject"]
    assert parsed["Message-ID"] == services.message_id_header(key, SENDER)
    assert "¥100.00" in parsed.get_payload(decode=True).decode()


def test_messages_are_written_in_the_default_language_chinese(app, client) -> None:
    app.config["DEFAULT_LOCALE"] = "zh_CN"
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        [message] = messages()
        assert message.locale == "zh_CN"
        assert "课程 r0-10000" in message.body_text  # the Chinese title
        assert order_no in message.subject and "Order" not in message.subject


def test_the_learner_who_asks_in_chinese_is_answered_in_chinese(app, client) -> None:
    order_no = paid_order(app, client, [10000])
    client.set_cookie("lang", "zh_CN")
    assert client.post(f"/orders/{order_no}/refund", data={"reason": "不适合我"}).status_code == 302
    with app.app_context():
        requested = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "refund_requested"))
        assert requested.locale == "zh_CN" and "¥100.00" in requested.body_text
        assert "refund" not in requested.body_text.lower()


# --- refunds -----------------------------------------------------------------------------


def test_a_refund_sends_requested_then_succeeded(app, client) -> None:
    order_no = paid_order(app, client, [10000])
    assert client.post(f"/orders/{order_no}/refund", data={"reason": "Not for me"}).status_code == 302
    with app.app_context():
        refund_id = db.session.scalar(select(Refund.id))
        approve_and_run(refund_id, staff("support", "support@example.com"))
        kinds = [(message.key, message.kind) for message in messages()]
        assert kinds[1:] == [(f"refund-requested:{refund_id}", "refund_requested"),
                             (f"refund-succeeded:{refund_id}", "refund_succeeded")]
        assert "¥100.00" in messages()[2].body_text


def test_a_rejected_refund_tells_the_learner(app, client) -> None:
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        order = order_of(order_no)
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "changed my mind")
        refund_workflow.reject_refund(refund_id, staff("support", "support@example.com"), "watched it all")
        db.session.commit()
        rejected = messages()[-1]
        assert rejected.key == f"refund-rejected:{refund_id}"
        assert "not approved" in rejected.body_text
        assert "watched it all" not in rejected.body_text  # staff's reason stays internal


def test_a_failed_refund_tells_the_learner_once_that_it_is_delayed(app, client) -> None:
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        refund_id, _ = refused_refund(order_no)
        # Staff retry, and the channel refuses again.
        assert compare_and_set(Refund, refund_id, "refund", "failed", "retry")
        assert fail_refund(refund_id, "ACQ.SELLER_BALANCE_NOT_ENOUGH")
        db.session.commit()
        failed = [message for message in messages() if message.kind == "refund_failed"]
        assert len(failed) == 1
        assert "taking longer" in failed[0].subject and "Nothing is lost" in failed[0].body_text
        assert "SELLER_BALANCE" not in failed[0].body_text


# --- reminders and statements --------------------------------------------------------


def test_the_renewal_reminder_names_the_course_and_the_end_in_beijing_time(app, client) -> None:
    paid_order(app, client, [10000])
    with app.app_context():
        enrollment = db.session.scalar(select(Enrollment))
        ends_at = datetime(2026, 12, 31, 16, 30)  # 2027-01-01 00:30 in Beijing
        followups.access_ending(enrollment.id, ends_at)
        followups.access_ending(enrollment.id, ends_at)
        db.session.commit()
        [reminder] = [message for message in messages() if message.kind == "access_ending"]
        assert reminder.key == f"access-ending:{enrollment.id}:202612311630"
        assert "Course r0-10000" in reminder.subject
        assert "2027-01-01 00:30" in reminder.body_text
        assert "http://cashier.test/courses/r0-10000" in reminder.body_text


def test_a_closed_statement_is_announced_to_the_instructor_who_has_an_account(app, client, clock) -> None:
    paid_order(app, client, [10000])
    with app.app_context():
        instructor = db.session.scalar(select(Instructor))
        instructor.user_id = create_user("lin@example.com", "teacher-password", "Lin", role="instructor")
        db.session.commit()
        clock.advance(days=15)  # the month of the sale has ended
        statement = close_statement(instructor.id, "2026-11")
        db.session.commit()
        [notice] = [message for message in messages() if message.kind == "statement_ready"]
        assert (notice.key, notice.recipient) == (f"statement-ready:{statement.id}", "lin@example.com")
        assert "http://cashier.test/earnings/statements/2026-11" in notice.body_text


def test_an_instructor_without_an_account_gets_no_mail(app, client, clock) -> None:
    paid_order(app, client, [10000])
    with app.app_context():
        instructor = db.session.scalar(select(Instructor))
        clock.advance(days=15)
        close_statement(instructor.id, "2026-11")
        db.session.commit()
        assert [message.kind for message in messages()] == ["order_paid"]


# --- delivery ---------------------------------------------------------------------------


def test_smtp_delivery_sends_once_with_the_message_id_of_its_key(app: Flask, smtp: SmtpServer) -> None:
    with app.app_context():
        message_id = queue("order-paid:9", body="Your order")
        enqueue("deliver_email", message_id)
        enqueue("deliver_email", message_id)  # a duplicate job finds it sent
        assert db.session.get(OutboxMessage, message_id).status == "sent"
    [received] = smtp.received
    assert received.recipients == ["ann@example.com"]
    assert received.parsed()["Message-ID"] == services.message_id_header("order-paid:9", SENDER)
    assert "Your order" in received.parsed().get_payload()


def test_a_refusing_smtp_server_leads_to_backoff_then_failed(app: Flask, smtp: SmtpServer, clock: Clock,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    smtp.refusal = "451 4.3.0 Mailbox temporarily unavailable"
    app.config["MAIL_MAX_ATTEMPTS"] = 4
    caplog.set_level(logging.WARNING)
    with app.app_context():
        message_id = queue(body="SECRET-BODY-WORDS")
        for attempt in range(1, 4):
            assert tick()["mail_due"] == 1
            message = db.session.get(OutboxMessage, message_id)
            assert (message.status, message.attempts) == ("pending", attempt)
            assert message.next_attempt_at == clock() + timedelta(minutes=BACKOFF_MINUTES[attempt - 1])
            assert message.last_error == "SMTP 451: 4.3.0 Mailbox temporarily unavailable"
            # Not due before its backoff is over.
            clock.advance(minutes=BACKOFF_MINUTES[attempt - 1], seconds=-1)
            assert tick()["mail_due"] == 0
            clock.advance(seconds=1)
        assert tick()["mail_due"] == 1
        message = db.session.get(OutboxMessage, message_id)
        assert (message.status, message.attempts) == ("failed", 4)
        clock.advance(days=1)
        assert tick()["mail_due"] == 0  # failed stays failed until staff resend it
    assert smtp.connections == 4 and smtp.received == []
    assert "SECRET-BODY-WORDS" not in caplog.text and "451" in caplog.text


def test_an_unreachable_server_is_a_failed_attempt_not_a_crash(app: Flask, clock: Clock) -> None:
    app.config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=1, MAIL_TIMEOUT_SECONDS=2)
    with app.app_context():
        message_id = queue()
        enqueue("deliver_email", message_id)
        message = db.session.get(OutboxMessage, message_id)
        assert (message.status, message.attempts) == ("pending", 1)
        assert message.last_error.startswith("ConnectionRefusedError")


def test_staff_resend_puts_a_failed_message_back_and_it_is_audited(app: Flask, smtp: SmtpServer,
                                                                   clock: Clock) -> None:
    smtp.refusal = "550 5.1.1 No such user"
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    with app.app_context():
        admin = staff("admin", "ada@example.com")
        message_id = queue()
        tick()
        assert db.session.get(OutboxMessage, message_id).status == "failed"
        smtp.refusal = None
        services.resend(message_id, admin, "address fixed by the learner")
        db.session.commit()
        with pytest.raises(NotResendable):
            services.resend(message_id, admin, "twice")
        assert tick()["mail_due"] == 1
        assert db.session.get(OutboxMessage, message_id).status == "sent"
        with pytest.raises(NotResendable):
            services.resend(message_id, admin, "a sent one")
        entry = db.session.scalar(select(AuditEntry))
        assert (entry.action, entry.target_type, entry.target_id, entry.reason) == (
            "outbox.resend", "outbox_message", str(message_id), "address fixed by the learner")
    assert len(smtp.received) == 1


def test_a_claim_holds_until_its_lease_lapses_then_another_worker_takes_over(app: Flask, clock: Clock) -> None:
    with app.app_context():
        message_id = queue()
        first = services.claim(message_id, SENDER)
        db.session.commit()
        assert first is not None and services.claim(message_id, SENDER) is None
        assert tick()["mail_due"] == 0  # held: the round leaves it alone
        clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)  # the first worker died
        assert tick()["mail_due"] == 1
        message = db.session.get(OutboxMessage, message_id)
        assert (message.status, message.attempts) == ("sent", 2)
        # The first worker wakes up: its outcome no longer counts.
        assert services.record_sent(first) is False
        assert services.record_failure(first, "late", 6) is None
    assert len(eml_files(app)) == 1


def test_an_illegal_move_raises() -> None:
    from app.mail.states import next_status

    assert next_status("failed", "resend") == "pending"
    with pytest.raises(IllegalTransition):
        next_status("sent", "resend")


def test_two_concurrent_workers_send_a_message_once(app: Flask, is_postgres: bool, smtp: SmtpServer) -> None:
    """Real threads, each its own connection, released together at the claim."""
    if not is_postgres:
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them)")
    with app.app_context():
        message_ids = [queue(f"race:{n}") for n in range(10)]
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def worker() -> None:
        with app.app_context():
            start.wait()
            for message_id in message_ids:
                outcomes.append(_deliver(message_id))
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("sent") == 10 and len(outcomes) == 40
    assert sorted(received.parsed()["Message-ID"] for received in smtp.received) == sorted(
        services.message_id_header(f"race:{n}", SENDER) for n in range(10))


def _deliver(message_id: int) -> str:
    from app.mail.delivery import deliver

    return deliver(message_id)


# --- configuration ----------------------------------------------------------------------


def test_the_embedded_default_writes_to_the_instance_folder(tmp_path: Path) -> None:
    config = load_config(str(tmp_path), environ={})
    assert (config["MAIL_BACKEND"], config["MAIL_OUTBOX_DIR"]) == ("console", str(tmp_path / "mail"))


@pytest.mark.parametrize(("environ", "complaint"), [
    ({"MAIL_BACKEND": "console"}, "MAIL_BACKEND must be smtp"),
    ({}, "MAIL_SERVER and MAIL_FROM are required"),
])
def test_production_refuses_to_start_without_a_way_to_send_mail(tmp_path: Path, environ, complaint) -> None:
    config = load_config(str(tmp_path), environ={"APP_ENV": "production", **environ})
    with pytest.raises(ConfigError) as refused:
        finalize_config(config)
    assert complaint in str(refused.value)


def test_tls_and_starttls_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(str(tmp_path), environ={"MAIL_USE_TLS": "1", "MAIL_USE_STARTTLS": "1"})
    assert load_config(str(tmp_path), environ={"MAIL_USE_TLS": "1"})["MAIL_PORT"] == 465

"""Receipts (app/receipts): issued once per payment and refund, signed over their
canonical JSON, checkable with the public key alone, and shown only to their learner
and staff. Signatures are checked here with the `cryptography` package, independently
of our pycryptodome signing code."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select

from app import create_app, followups
from app.extensions import db
from app.jobs.tasks import process_notification
from app.payments import refund_workflow
from app.payments.models import InboxNotification
from app.receipts.canonical import NotCanonical, beijing_iso, canonical_json, mask_email, parse_canonical
from app.receipts.models import Receipt
from app.receipts.signing import RECEIPT_PRIVATE, ensure_receipt_key, load_receipt_key
from tests.alipay_oracle import notification_fields, signed_body
from tests.conftest import base_config
from tests.helpers import attempt_of, login, make_learner
from tests.test_refunds import approve_and_run, order_of, paid_order, staff

README = Path(__file__).resolve().parent.parent / "README.md"


def receipts_of(order_no: str) -> list[Receipt]:
    order = order_of(order_no)
    return list(db.session.scalars(select(Receipt).where(Receipt.order_id == order.id).order_by(Receipt.id)))


def verifies(text: str, signature_b64: str, public_pem: str) -> bool:
    """The independent check: `cryptography`, the published PEM, PKCS#1 v1.5, SHA-256."""
    key = serialization.load_pem_public_key(public_pem.encode())
    try:
        key.verify(base64.b64decode(signature_b64), text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def changed_amount(text: str) -> str:
    """The receipt with its amount raised by one fen, still in canonical form."""
    fields = json.loads(text)
    fields["amount_fen"] += 1
    return canonical_json(fields)


# --- the canonical form ------------------------------------------------------------------


def test_the_canonical_form_sorts_keys_drops_whitespace_and_keeps_chinese():
    text = canonical_json({"b": 1, "a": [{"title": "课程 一", "amount_fen": 9450}], "c": None})
    assert text == '{"a":[{"amount_fen":9450,"title":"课程 一"}],"b":1,"c":null}'
    assert parse_canonical(text) == json.loads(text)


@pytest.mark.parametrize(("text", "code"), [
    ('{"a": 1}', "not_canonical"),             # a space
    ('{"b":1,"a":2}', "not_canonical"),         # keys out of order
    ('{"a":1.0}', "not_canonical"),             # a float
    ('{"a":"\\u8bfe"}', "not_canonical"),       # Chinese escaped
    ('{"a":1,"a":1}', "not_canonical"),         # a key twice
    ('{"a":1}\n', "not_canonical"),
    ('[1,2]', "malformed"),
    ('{"a":NaN}', "malformed"),
    ('{"a":', "malformed"),
    ("[" * 100000 + "]" * 100000, "malformed"),
])
def test_text_not_in_canonical_form_is_named(text, code):
    with pytest.raises(NotCanonical) as refused:
        parse_canonical(text)
    assert refused.value.code == code


def test_floats_never_enter_a_receipt():
    with pytest.raises(NotCanonical):
        canonical_json({"amount": 94.5})


@pytest.mark.parametrize(("email", "masked"), [
    ("ann@example.com", "a***@example.com"),
    ("a@example.com", "a***@example.com"),
    ("not-an-address", "***"),
])
def test_the_learner_is_masked(email, masked):
    assert mask_email(email) == masked


def test_times_are_beijing_iso_8601():
    assert beijing_iso(datetime(2026, 11, 20, 2, 3, 4)) == "2026-11-20T10:03:04+08:00"


# --- the key ------------------------------------------------------------------------------


def test_the_embedded_default_generates_one_private_key_and_keeps_it(tmp_path):
    ensure_receipt_key(str(tmp_path))
    path = tmp_path / RECEIPT_PRIVATE
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ensure_receipt_key(str(tmp_path))
    assert path.read_text() == first
    key = load_receipt_key({"KEYS_DIR": str(tmp_path)})
    assert re.fullmatch(r"rk-[0-9a-f]{16}", key.key_id)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_configured_key_id_names_the_key(tmp_path):
    ensure_receipt_key(str(tmp_path))
    key = load_receipt_key({"KEYS_DIR": "/nowhere", "RECEIPT_PRIVATE_KEY_FILE": str(tmp_path / RECEIPT_PRIVATE),
                            "RECEIPT_KEY_ID": "cc-2026"})
    assert key.key_id == "cc-2026"


# --- issuing --------------------------------------------------------------------------------


def test_a_paid_order_gets_one_payment_receipt_that_the_public_key_verifies(app, client):
    order_no = paid_order(app, client, [10000, 5001])
    public_pem = client.get("/receipts/public-key.pem").text
    with app.app_context():
        order = order_of(order_no)
        attempt = attempt_of(order_no)
        [receipt] = receipts_of(order_no)
        fields = json.loads(receipt.canonical_json)
        assert (receipt.kind, receipt.source_id, receipt.amount_fen) == ("payment", attempt.id, order.total_fen)
        assert fields["amount_fen"] == order.total_fen == sum(item["amount_fen"] for item in fields["items"])
        assert [item["title"] for item in fields["items"]] == [line.title for line in order.lines]
        assert fields["order_no"] == order_no and fields["kind"] == "payment"
        assert fields["channel"] == "alipay" and fields["channel_trade_no"] == attempt.channel_trade_no
        assert fields["paid_at"] == beijing_iso(attempt.succeeded_at) and fields["paid_at"].endswith("+08:00")
        assert fields["learner"] == "a***@example.com"
        assert "ann@example.com" not in receipt.canonical_json
        assert fields["receipt_no"] == receipt.receipt_no and fields["key_id"] == receipt.key_id
        assert receipt.sha256 == hashlib.sha256(receipt.canonical_json.encode()).hexdigest()
        assert verifies(receipt.canonical_json, receipt.signature, public_pem)
        assert not verifies(changed_amount(receipt.canonical_json), receipt.signature, public_pem)


def test_a_second_call_or_a_duplicate_callback_issues_no_second_receipt(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        attempt = attempt_of(order_no)
        body = signed_body({**notification_fields(attempt.out_trade_no, attempt.amount_fen, notify_id="again"),
                            "trade_no": attempt.channel_trade_no})
    answer = client.post("/notify/alipay", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.text == "success"
    with app.app_context():
        inbox = db.session.scalar(select(InboxNotification).where(InboxNotification.dedupe_key.contains("again")))
        assert inbox is not None and inbox.status == "processed"
        assert process_notification(inbox.id) is not None  # and once more by hand
        followups.order_paid(order_of(order_no).id)
        db.session.commit()
        assert len(receipts_of(order_no)) == 1


def test_a_refund_gets_a_refund_receipt(app, client):
    order_no = paid_order(app, client, [10000, 6000])
    with app.app_context():
        order = order_of(order_no)
        line = order.lines[1]
        refund_id = refund_workflow.request_refund(order.id, order.user_id, [line.id], "wrong course")
        db.session.commit()
        approve_and_run(refund_id, staff("support", "support@example.com"))
    public_pem = client.get("/receipts/public-key.pem").text
    with app.app_context():
        payment, refund = receipts_of(order_no)
        fields = json.loads(refund.canonical_json)
        assert (refund.kind, refund.source_id) == ("refund", refund_id)
        assert fields["kind"] == "refund" and fields["refunded_at"].endswith("+08:00")
        assert fields["items"] == [{"title": order_of(order_no).lines[1].title, "amount_fen": fields["amount_fen"]}]
        assert fields["refund_no"] and fields["receipt_no"].startswith("R")
        assert verifies(refund.canonical_json, refund.signature, public_pem)
        followups.refund_succeeded(refund_id)
        db.session.commit()
        assert len(receipts_of(order_no)) == 2


def test_receipts_are_append_only(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        [receipt] = receipts_of(order_no)
        for statement in (f"UPDATE receipts SET amount_fen = 1 WHERE id = {receipt.id}",
                          f"DELETE FROM receipts WHERE id = {receipt.id}"):
            with pytest.raises(sa.exc.DatabaseError):
                with db.engine.begin() as connection:
                    connection.exec_driver_sql(statement)
        assert receipts_of(order_no)[0].amount_fen == receipt.amount_fen


# --- the learner's pages -----------------------------------------------------------------


def test_the_learner_opens_the_receipt_and_its_pdf_from_my_orders(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        [receipt] = receipts_of(order_no)
        number, signature = receipt.receipt_no, receipt.signature
    orders = client.get("/orders").text
    assert f"/receipts/{number}" in orders and f"/receipts/{number}.pdf" in orders
    page = client.get(f"/receipts/{number}")
    assert page.status_code == 200 and signature in page.text and order_no in page.text
    pdf = client.get(f"/receipts/{number}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")


def test_someone_elses_receipt_is_not_found_but_staff_see_it(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        number = receipts_of(order_no)[0].receipt_no
        make_learner("bob@example.com")
        staff("finance", "fay@example.com")
    for email, expected in (("bob@example.com", 404), ("fay@example.com", 200)):
        other = app.test_client()
        login(other, email, "correct-horse" if email.startswith("bob") else "staff-password")
        assert other.get(f"/receipts/{number}").status_code == expected
        assert other.get(f"/receipts/{number}.pdf").status_code == expected
    anonymous = app.test_client().get(f"/receipts/{number}.pdf")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert client.get("/receipts/not-a-number.pdf").status_code == 404


# --- the public verify page ----------------------------------------------------------------


def verdict_of(page) -> tuple[str, str | None]:
    match = re.search(r'id="verify-result" data-valid="(true|false)"(?: data-reason="([a-z_]+)")?', page.text)
    assert match, page.text
    return match.group(1), match.group(2)


def test_the_verify_page_says_valid_or_names_what_is_wrong(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        [receipt] = receipts_of(order_no)
        text, signature, number, digest = receipt.canonical_json, receipt.signature, receipt.receipt_no, receipt.sha256
        fields = json.loads(text)
    public = app.test_client()

    def check(receipt_text: str, signature_text: str):
        return public.post("/receipts/verify", data={"receipt": receipt_text, "signature": signature_text})

    valid = check(text, signature)
    assert valid.status_code == 200 and verdict_of(valid) == ("true", None)
    assert "Valid: issued by CourseCashier" in valid.text and fields["paid_at"] in valid.text
    cases = {
        "signature_mismatch": (changed_amount(text), signature),
        "bad_signature_encoding": (text, "not base64 at all!"),
        "malformed": ("{not json", signature),
        "not_canonical": (json.dumps(fields, indent=2), signature),
        "unknown_key": (canonical_json({**fields, "key_id": "someone-else"}), signature),
        "too_large": ("{" + " " * 20000 + "}", signature),
    }
    for reason, (receipt_text, signature_text) in cases.items():
        answer = check(receipt_text, signature_text)
        assert answer.status_code == 200 and verdict_of(answer) == ("false", reason), reason
        assert "NOT valid" in answer.text
    other_signature = base64.b64encode(bytes(256)).decode()
    assert verdict_of(check(text, other_signature)) == ("false", "signature_mismatch")

    linked = public.get(f"/receipts/verify?no={number}&sha256={digest}")
    assert linked.status_code == 200 and verdict_of(linked) == ("true", None)
    assert public.get(f"/receipts/verify?no={number}&sha256={'0' * 64}").status_code == 404
    assert public.get(f"/receipts/verify?no={number}").status_code == 404


def test_hostile_input_gets_a_clear_answer_and_never_a_500(app, client):
    public = app.test_client()
    huge = public.post("/receipts/verify", data={"receipt": "x" * 300_000, "signature": "AAAA"})
    assert huge.status_code == 413 and verdict_of(huge) == ("false", "too_large")
    raw = b"receipt=%FF%FE%00%C3%28&signature=%FF%FF"
    broken = public.post("/receipts/verify", data=raw, content_type="application/x-www-form-urlencoded")
    assert broken.status_code == 200 and verdict_of(broken)[0] == "false"
    empty = public.post("/receipts/verify", data={})
    assert empty.status_code == 400 and "This field is required" in empty.text
    assert public.get("/receipts/verify?no=%00&sha256=zz").status_code == 404


@pytest.mark.app_config(RATELIMIT_RECEIPT_VERIFY_PER_ADDRESS="2 per minute")
def test_the_verify_page_is_rate_limited_per_address(app):
    public = app.test_client()
    answers = [public.post("/receipts/verify", data={"receipt": "{}", "signature": "AAAA"}).status_code
               for _ in range(3)]
    assert answers == [200, 200, 429]


# --- the README's independent check ---------------------------------------------------------


def readme_snippet() -> str:
    section = README.read_text().split("## Receipts", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python snippet in README's Receipts section"
    return match.group(1)


def run_snippet(folder: Path, text: str, signature: str, public_pem: str) -> subprocess.CompletedProcess:
    folder.mkdir()
    (folder / "receipt.json").write_bytes(text.encode("utf-8"))
    (folder / "receipt.sig").write_text(signature)
    (folder / "public-key.pem").write_text(public_pem)
    return subprocess.run([sys.executable, "-c", readme_snippet()], cwd=folder, capture_output=True,
                          text=True, timeout=60)


def test_the_readme_snippet_verifies_a_real_receipt_and_refuses_a_changed_one(app, client, tmp_path):
    order_no = paid_order(app, client, [10000])
    public_pem = client.get("/receipts/public-key.pem").text
    with app.app_context():
        [receipt] = receipts_of(order_no)
        text, signature = receipt.canonical_json, receipt.signature
    assert len(readme_snippet().strip().splitlines()) <= 14
    good = run_snippet(tmp_path / "good", text, signature, public_pem)
    assert good.returncode == 0 and good.stdout.startswith(f"valid: {receipt.receipt_no}"), good.stderr
    forged = run_snippet(tmp_path / "forged", changed_amount(text), signature, public_pem)
    assert forged.returncode != 0 and "InvalidSignature" in forged.stderr
    reformatted = run_snippet(tmp_path / "reformatted", json.dumps(json.loads(text), indent=1), signature,
                              public_pem)
    assert reformatted.returncode != 0 and "not in canonical form" in reformatted.stderr


# --- the migration ----------------------------------------------------------------------------


def test_the_receipts_migration_goes_down_and_up_and_keeps_receipts_append_only(
    keys_dir: Path, tmp_path: Path, empty_database_url: str
):
    app = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = app.test_cli_runner()

    def tables() -> set[str]:
        with app.app_context():
            names = set(sa.inspect(db.engine).get_table_names())
            db.engine.dispose()
        return names

    for args, present in ((["db", "upgrade"], True), (["db", "downgrade", "a0ecfff26270"], False), (["db", "upgrade"], True)):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
        assert ("receipts" in tables()) is present
    with app.app_context():
        with db.engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, display_name, password_hash, role, is_active_account, created_at,"
                " login_failures, session_version, mfa_failures) VALUES (1, 'a@example.com', 'A', 'x', 'learner',"
                " true, '2026-11-01 00:00:00', 0, 1, 0)")
            connection.exec_driver_sql(
                "INSERT INTO orders (id, order_no, user_id, status, currency, subtotal_fen, discount_fen, tax_fen,"
                " total_fen, expires_at, created_at) VALUES (1, 'O1', 1, 'paid', 'CNY', 100, 0, 0, 100,"
                " '2026-11-01 00:00:00', '2026-11-01 00:00:00')")
            connection.exec_driver_sql(
                "INSERT INTO receipts (receipt_no, kind, order_id, source_id, amount_fen, canonical_json, sha256,"
                " signature, key_id, issued_at) VALUES ('P2026110100000001', 'payment', 1, 1, 100, '{}', 'x', 'x',"
                " 'k', '2026-11-01 00:00:00')")
        with pytest.raises(sa.exc.DatabaseError):
            with db.engine.begin() as connection:
                connection.exec_driver_sql("UPDATE receipts SET amount_fen = 2")
        with pytest.raises(sa.exc.IntegrityError):
            with db.engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO receipts (receipt_no, kind, order_id, source_id, amount_fen, canonical_json, sha256,"
                    " signature, key_id, issued_at) VALUES ('P2026110100000002', 'payment', 1, 1, 100, '{}', 'x',"
                    " 'x', 'k', '2026-11-01 00:00:00')")
        db.engine.dispose()



def readme_openssl_command() -> str:
    section = README.read_text().split("## Receipts", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"or with OpenSSL: `([^`]+)`", section)
    assert match, "no OpenSSL command in README's Receipts section"
    return " ".join(match.group(1).split())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl on this machine")
def test_the_readme_openssl_command_verifies_a_real_receipt_and_refuses_a_changed_one(app, client, tmp_path):
    order_no = paid_order(app, client, [10000])
    public_pem = client.get("/receipts/public-key.pem").text
    with app.app_context():
        [receipt] = receipts_of(order_no)
        text, signature = receipt.canonical_json, receipt.signature
    for name, receipt_text, succeeds in (("good", text, True), ("forged", changed_amount(text), False)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "receipt.json").write_bytes(receipt_text.encode("utf-8"))
        (folder / "receipt.sig").write_text(signature)
        (folder / "public-key.pem").write_text(public_pem)
        result = subprocess.run(["sh", "-c", readme_openssl_command()], cwd=folder, capture_output=True,
                                text=True, timeout=60)
        assert (result.returncode == 0) is succeeds, (name, result.stdout, result.stderr)
        assert ("Verified OK" in result.stdout) is succeeds

"""Receipt pages: the learner's own (HTML and PDF), the public verify page and the
published public key."""
from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.payments.registry import LABELS
from app.receipts import services
from app.receipts.forms import VerifyForm
from app.receipts.models import Receipt
from app.receipts.pdf import receipt_pdf
from app.receipts.verification import MAX_RECEIPT_CHARS, MAX_SIGNATURE_CHARS, Verdict, verify_receipt

bp = Blueprint("receipts", __name__, url_prefix="/receipts")

# A form body past this is refused before it is parsed: room for the longest fields the
# check accepts, each character up to 3 bytes of UTF-8 and each byte up to 3 when %-encoded.
MAX_VERIFY_BODY = 9 * (MAX_RECEIPT_CHARS + MAX_SIGNATURE_CHARS) + 4096

REFUSALS = {
    "too_large": _l("NOT valid: the receipt or the signature is far longer than any receipt we issue."),
    "malformed": _l("NOT valid: the receipt is not a JSON object."),
    "not_canonical": _l("NOT valid: the receipt is not in canonical form (keys sorted, no spaces, "
                        "whole numbers only), so it was changed or reformatted after it was signed."),
    "unknown_key": _l("NOT valid: the receipt names a key id that is not our receipt key."),
    "bad_signature_encoding": _l("NOT valid: the signature is not base64 of an RSA-2048 signature."),
    "signature_mismatch": _l("NOT valid: the signature does not match this receipt. It was changed "
                             "after it was signed, or the signature belongs to another receipt."),
}


def _channel_label(method: str) -> str:
    return _l("Prepaid balance") if method == services.BALANCE else LABELS.get(method, method)


def _verify_page(**context: object) -> str:
    return render_template("receipts/verify.html", refusals=REFUSALS,
                           key_id=services.receipt_key().key_id, **context)


def _verify_link(receipt: Receipt, external: bool = False) -> str:
    path = url_for("receipts.verify", no=receipt.receipt_no, sha256=receipt.sha256)
    return current_app.config["PUBLIC_BASE_URL"] + path if external else path


def _my_receipt_or_404(receipt_no: str) -> Receipt:
    receipt = services.receipt_for_viewer(receipt_no, current_user)
    if receipt is None:
        abort(404)
    return receipt


@bp.route("/public-key.pem")
def public_key() -> Response:
    """The public half of the receipt key, for anyone's own verification."""
    return Response(services.receipt_key().public_pem, mimetype="application/x-pem-file",
                    headers={"Cache-Control": "public, max-age=3600"})


@bp.route("/<receipt_no>")
@login_required
def receipt(receipt_no: str) -> str:
    found = _my_receipt_or_404(receipt_no)
    fields = json.loads(found.canonical_json)
    return render_template("receipts/receipt.html", receipt=found, fields=fields,
                           channel_label=_channel_label(fields["channel"]),
                           verify_link=_verify_link(found))


@bp.route("/<receipt_no>.pdf")
@login_required
def receipt_pdf_download(receipt_no: str) -> Response:
    found = _my_receipt_or_404(receipt_no)
    body = receipt_pdf(json.loads(found.canonical_json), found.sha256, found.signature,
                       _verify_link(found, external=True), current_app.config.get("STATEMENT_FONT_PATH"))
    return Response(body, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="receipt-{found.receipt_no}.pdf"',
        "Cache-Control": "private, no-store",
    })


@bp.route("/verify", methods=["GET", "POST"])
def verify() -> tuple[str, int]:
    """Anyone checks a receipt: pasted with its signature, or opened from the link on a
    receipt (its number and SHA-256, which together find the stored one)."""
    key = services.receipt_key()
    if request.method == "POST" and (request.content_length or 0) > MAX_VERIFY_BODY:
        # Refused before the body is read: the form is never parsed.
        return _verify_page(form=VerifyForm(formdata=None), verdict=Verdict("too_large")), 413
    form = VerifyForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return _verify_page(form=form, verdict=None), 400
        return _verify_page(form=form, verdict=verify_receipt(form.receipt.data.strip(), form.signature.data, key)), 200
    if not request.args.get("no"):
        return _verify_page(form=form, verdict=None), 200
    stored = services.published_receipt(request.args.get("no", ""), request.args.get("sha256", ""))
    if stored is None:
        return _verify_page(form=form, verdict=None, not_found=True), 404
    form = VerifyForm(formdata=None, receipt=stored.canonical_json, signature=stored.signature)
    return _verify_page(form=form, verdict=verify_receipt(stored.canonical_json, stored.signature, key)), 200

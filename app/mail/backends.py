"""How a message leaves: written to a folder (console) or handed to an SMTP server.

Plain Python like the payment channels: a settings dataclass in, an `Envelope` in, an
exception out when the message was not accepted. No Flask, no database.
"""
from __future__ import annotations

import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

BACKENDS = ("console", "smtp")


@dataclass(frozen=True)
class MailSettings:
    backend: str
    outbox_dir: str
    sender: str
    server: str | None = None
    port: int = 25
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # implicit TLS from the first byte (SMTPS, port 465)
    use_starttls: bool = False  # plain connection upgraded by STARTTLS (port 587)
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Envelope:
    """One message as it goes out. ``message_id`` is derived from the outbox key, so
    every attempt of one message carries the same Message-ID."""

    message_id: str
    recipient: str
    subject: str
    body_text: str
    body_html: str | None = None


class DeliveryError(Exception):
    """The backend did not accept the message; the text is safe to store and log."""


def build_email(envelope: Envelope, sender: str, moment: datetime | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = envelope.recipient
    message["Subject"] = envelope.subject
    message["Message-ID"] = envelope.message_id
    message["Date"] = format_datetime(moment or datetime.now(timezone.utc))
    message.set_content(envelope.body_text)
    if envelope.body_html:
        message.add_alternative(envelope.body_html, subtype="html")
    return message


def send(settings: MailSettings, envelope: Envelope) -> None:
    """Deliver ``envelope`` or raise `DeliveryError` (the SMTP reply or the OS error)."""
    message = build_email(envelope, settings.sender)
    if settings.backend == "console":
        _write_eml(Path(settings.outbox_dir), message)
        return
    try:
        _send_smtp(settings, message)
    except smtplib.SMTPResponseException as error:
        reply = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
        raise DeliveryError(f"SMTP {error.smtp_code}: {reply}"[:255]) from None
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"{type(error).__name__}: {error}"[:255]) from None


def _write_eml(folder: Path, message: EmailMessage) -> Path:
    """One new file per delivery, written whole or not at all (renamed into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    partial = folder / f".{name}.part"
    partial.write_bytes(message.as_bytes())
    partial.replace(folder / name)
    return folder / name


def _send_smtp(settings: MailSettings, message: EmailMessage) -> None:
    if not settings.server:
        raise DeliveryError("MAIL_SERVER is not set")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.use_tls:
        smtp = smtplib.SMTP_SSL(settings.server, settings.port, timeout=settings.timeout_seconds,
                                context=context)
    else:
        smtp = smtplib.SMTP(settings.server, settings.port, timeout=settings.timeout_seconds)
    with smtp:
        if settings.use_starttls:
            smtp.starttls(context=context)
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(message)

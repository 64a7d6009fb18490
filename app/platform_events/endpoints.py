"""Endpoints of the platform, managed by admins: create, enable / disable, rotate or
reveal the signing secret. Flushes, never commits; every change is audited.

URLs: http or https with a host and no credentials. In production plain http is
refused except to the machine itself (localhost, 127.0.0.1, ::1): an event names
learners and amounts, and a receiver on the same host is reached without a network.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.audit.services import record
from app.errors import ServiceError
from app.extensions import db
from app.fieldcrypto import FieldDecryptError, SealedField
from app.fieldkeys import field_keyring
from app.platform_events.models import EVENT_TYPES, PlatformEndpoint
from app.timeutil import now

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_URL_LENGTH = 500


class EndpointError(ServiceError):
    """A refused endpoint change; ``message`` is for the admin."""


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint_id: int
    secret: str


def url_problem(url: str, production: bool) -> str | None:
    """Why ``url`` cannot receive events, or None."""
    if not url or len(url) > MAX_URL_LENGTH or any(ch.isspace() for ch in url):
        return f"Give an address of at most {MAX_URL_LENGTH} characters, without spaces."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "This is not a valid address."
    if parts.scheme not in ("http", "https"):
        return "Only http:// and https:// addresses can receive events."
    if not parts.hostname:
        return "The address needs a host name."
    if parts.username is not None or parts.password is not None:
        return "Put no user name or password in the address: events are signed instead."
    if production and parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return "In production an endpoint must use https:// (plain http only to localhost)."
    return None


def secret_context(endpoint_id: int) -> str:
    """Bound into the sealed secret, so a ciphertext copied onto another endpoint won't open."""
    return f"platform_endpoint:{endpoint_id}:secret"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _seal(endpoint: PlatformEndpoint, secret: str) -> None:
    sealed = field_keyring().encrypt(secret, secret_context(endpoint.id))
    endpoint.secret_key_id, endpoint.secret_ciphertext = sealed.key_id, sealed.ciphertext


def endpoint_secret(endpoint: PlatformEndpoint) -> str:
    """The plain signing secret. Raises `EndpointError` when its key is missing."""
    sealed = SealedField(endpoint.secret_key_id, endpoint.secret_ciphertext)
    try:
        return field_keyring().decrypt(sealed, secret_context(endpoint.id))
    except FieldDecryptError:
        raise EndpointError("secret_unreadable", "The signing secret cannot be opened "
                                                 "(its encryption key is missing).") from None


def _reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise EndpointError("reason_required", "Please give a reason.")
    return text


def _endpoint(endpoint_id: int) -> PlatformEndpoint:
    endpoint = db.session.get(PlatformEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointError("not_found", "No such endpoint.")
    return endpoint


def create_endpoint(url: str, description: str, event_types: list[str], staff_id: int,
                    production: bool) -> EndpointWithSecret:
    """A new enabled endpoint with a fresh secret, which the caller shows once."""
    url = (url or "").strip()
    problem = url_problem(url, production)
    if problem:
        raise EndpointError("url", problem)
    chosen = [name for name in EVENT_TYPES if name in set(event_types)]
    if not chosen or len(chosen) != len(set(event_types)):
        raise EndpointError("event_types", "Choose at least one of the event types.")
    description = " ".join((description or "").split())
    if len(description) > 255:
        raise EndpointError("description", "The description is at most 255 characters.")
    endpoint = PlatformEndpoint(url=url, description=description, enabled=True,
                                event_types=",".join(chosen), secret_key_id="", secret_ciphertext="",
                                created_by=staff_id, created_at=now())
    db.session.add(endpoint)
    db.session.flush()  # the id is part of the secret's context
    secret = new_secret()
    _seal(endpoint, secret)
    db.session.flush()
    record(staff_id, "platform_endpoint.create", "platform_endpoint", endpoint.id, "created",
           None, {"url": url, "event_types": endpoint.event_types, "enabled": True})
    return EndpointWithSecret(endpoint.id, secret)


def set_enabled(endpoint_id: int, enabled: bool, staff_id: int, reason: str) -> None:
    """Enable or disable; a disabled endpoint gets no new events and its pending
    deliveries wait (they go out once it is enabled again)."""
    text = _reason(reason)
    endpoint = _endpoint(endpoint_id)
    if endpoint.enabled == enabled:
        raise EndpointError("unchanged", "The endpoint is already " + ("enabled." if enabled else "disabled."))
    endpoint.enabled = enabled
    db.session.flush()
    record(staff_id, "platform_endpoint." + ("enable" if enabled else "disable"), "platform_endpoint",
           endpoint.id, text, {"enabled": not enabled}, {"enabled": enabled})


def rotate_secret(endpoint_id: int, staff_id: int, reason: str) -> str:
    """Replace the secret at once; deliveries from now on are signed with the new one."""
    text = _reason(reason)
    endpoint = _endpoint(endpoint_id)
    secret = new_secret()
    _seal(endpoint, secret)
    endpoint.secret_rotated_at = now()
    db.session.flush()
    record(staff_id, "platform_endpoint.rotate_secret", "platform_endpoint", endpoint.id, text)
    return secret


def reveal_secret(endpoint_id: int, staff_id: int, reason: str) -> str:
    """The current secret, for an admin who lost it; the look is audited."""
    text = _reason(reason)
    secret = endpoint_secret(_endpoint(endpoint_id))
    record(staff_id, "platform_endpoint.reveal_secret", "platform_endpoint", endpoint_id, text)
    return secret

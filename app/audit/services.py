"""Writing the audit log. Flushes, never commits: the entry lands in the same
transaction as the change it describes, or not at all."""
from __future__ import annotations

import json
from typing import Any, Mapping

from app.accounts.models import User
from app.audit.models import AuditEntry
from app.extensions import db
from app.timeutil import now

SYSTEM = "system"


def record(
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: int | str,
    reason: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry; ``actor_id`` None means the system itself (a job)."""
    actor = db.session.get(User, actor_id) if actor_id is not None else None
    entry = AuditEntry(
        actor_id=actor_id,
        actor_email=actor.email if actor is not None else SYSTEM,
        action=action[:64],
        target_type=target_type[:32],
        target_id=str(target_id)[:64],
        before=_json(before),
        after=_json(after),
        reason=reason,
        created_at=now(),
    )
    db.session.add(entry)
    db.session.flush()
    return entry.id


def _json(values: Mapping[str, Any] | None) -> str | None:
    if values is None:
        return None
    return json.dumps(dict(values), ensure_ascii=False, sort_keys=True, default=str)

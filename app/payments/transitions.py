"""Applies a transition from `states.py` to a row by compare-and-set.

``UPDATE … SET status = :to WHERE id = :id AND status = :from``: when two workers race,
exactly one sees rowcount 1; the other learns it lost and must re-read, never overwrite.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import update

from app.extensions import db
from app.payments.states import next_status


def compare_and_set(
    model: Any, row_id: int, machine: str, expected: str, event: str, **values: Any
) -> bool:
    """Move row ``row_id`` from ``expected`` by ``event``; False if its status had changed.

    Raises `IllegalTransition` when the table does not allow ``event`` from ``expected``.
    """
    target = next_status(machine, expected, event)
    result = db.session.execute(
        update(model)
        .where(model.id == row_id, model.status == expected)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    # The UPDATE bypassed the ORM: a loaded copy of the row must not keep its old status.
    # Expiring it costs nothing unless the caller reads it again.
    loaded = db.session.identity_map.get(db.session.identity_key(model, row_id))
    if loaded is not None:
        db.session.expire(loaded)
    return True

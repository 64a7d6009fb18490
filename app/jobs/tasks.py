"""The job functions RQ and the inline runner call. They take ids, never objects."""
from __future__ import annotations

import logging

from app.jobs.runner import job
from app.payments.services import process_inbox

log = logging.getLogger(__name__)


@job
def process_notification(inbox_id: int) -> str:
    outcome = process_inbox(inbox_id)
    log.info("notification %s: %s", inbox_id, outcome)
    return outcome

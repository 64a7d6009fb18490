"""Operational alerts (issue 11): checks that read the database (and Redis for failed
jobs) and say what staff should look at now, on the dashboard and by e-mail to admins.

- `checks`: the five conditions, evaluated at a moment; pure reads.
- `episodes`: the `alerts` table's open and cleared episodes, opened and closed
  idempotently by the periodic round (flush only).
- `notices`: the e-mails to admins when an episode opens and when it clears (flush only).
"""

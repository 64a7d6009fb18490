"""Platform events: signed webhooks that tell the platform's LMS what money did.

A money service announces (app/followups.py) an order paid or refunded, an enrollment
granted or revoked; `services` writes an `Event` and one `Delivery` per subscribed
endpoint in the same transaction. `sending` posts each delivery, signed (`signing`),
and retries on a backoff schedule; the periodic round dispatches what is due.
"""

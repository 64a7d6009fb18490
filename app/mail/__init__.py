"""E-mail: an outbox table the money services add to, and a job that delivers from it.

A follow-up (app/followups.py) renders a message and adds it to the outbox inside the
money transaction (`services.queue_email`); nothing is sent there. The periodic round
(app/jobs/periodic.py) finds due messages and enqueues `deliver_email`, which claims a
message by compare-and-set, sends it through the configured backend (`backends`) and
records the outcome, backing off after a failure until the last attempt fails it.
"""

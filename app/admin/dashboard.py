"""The admin index page: the alerts firing now, then today's figures at a glance."""
from __future__ import annotations

import logging

from flask_admin import expose
from redis.exceptions import RedisError

from app.admin.base import StaffIndexView, current_role
from app.admin.failed_jobs import uses_redis
from app.admin.permissions import may_view
from app.admin.queries import dashboard
from app.alerts.checks import Alert, evaluate
from app.alerts.episodes import open_episodes
from app.jobs.queues import failed_job_count
from app.payments.registry import LABELS
from app.timeutil import now

log = logging.getLogger(__name__)


def may_see(role: str | None, alert: Alert) -> bool:
    """An alert shows to those who may open the page it links to: the success rate's
    figures are finance's and admins', like the analytics page."""
    return may_view(role, alert.endpoint.split(".", 1)[0])


class DashboardView(StaffIndexView):
    @expose("/")
    def index(self) -> str:
        failed_jobs: int | str = "inline"
        failed_job_total: int | None = 0
        if uses_redis():
            try:
                failed_jobs = failed_job_total = failed_job_count()
            except RedisError as error:
                # The page must still show the database figures when Redis is down.
                log.warning("dashboard: Redis unavailable: %s", type(error).__name__)
                failed_jobs, failed_job_total = "Redis unavailable", None
        # Evaluated now, so the page is current between periodic rounds; an alert's start
        # is its open episode's, once a round has recorded one.
        alerts = [alert for alert in evaluate(now(), failed_job_total).firing if may_see(current_role(), alert)]
        started = {key: episode.fired_at for key, episode in open_episodes().items()}
        return self.render("admin/dashboard.html", figures=dashboard(), failed_jobs=failed_jobs,
                           channel_labels=LABELS, alerts=alerts, alert_started=started)

"""The admin index page: today's figures at a glance."""
from __future__ import annotations

import logging

from flask_admin import expose
from redis.exceptions import RedisError

from app.admin.base import StaffIndexView
from app.admin.failed_jobs import failed_job_count, uses_redis
from app.admin.queries import dashboard
from app.payments.registry import LABELS

log = logging.getLogger(__name__)


class DashboardView(StaffIndexView):
    @expose("/")
    def index(self) -> str:
        failed_jobs: int | str = "inline"
        if uses_redis():
            try:
                failed_jobs = failed_job_count()
            except RedisError as error:
                # The page must still show the database figures when Redis is down.
                log.warning("dashboard: Redis unavailable: %s", type(error).__name__)
                failed_jobs = "Redis unavailable"
        return self.render("admin/dashboard.html", figures=dashboard(), failed_jobs=failed_jobs,
                           channel_labels=LABELS)

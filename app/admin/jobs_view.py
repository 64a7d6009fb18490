"""Failed background jobs: RQ's failed registries when Redis is in use."""
from __future__ import annotations

from flask import flash, redirect, url_for
from flask_admin import expose
from flask_login import current_user
from werkzeug.wrappers import Response

from app.admin.base import StaffView
from app.admin.failed_jobs import FailedJobError, failed_jobs, requeue, uses_redis
from app.admin.forms import RequeueForm
from app.extensions import db


class FailedJobsView(StaffView):
    route_actions = {"requeue_job": "requeue"}

    @expose("/")
    def index(self) -> str:
        return self.render("admin/failed_jobs.html", redis=uses_redis(), jobs=failed_jobs(),
                           form=RequeueForm(), may_requeue=self.may("requeue"))

    @expose("/requeue", methods=("POST",))
    def requeue_job(self) -> Response:
        back = redirect(url_for(".index"))
        form = RequeueForm()
        if not form.validate_on_submit():
            flash("Please give a reason for the requeue.", "error")
            return back
        try:
            requeue(form.queue.data, form.job_id.data, current_user.id, form.reason.data)
        except FailedJobError as error:
            db.session.rollback()
            flash(error.message, "error")
            return back
        db.session.commit()
        flash(f"Job {form.job_id.data} is queued again.", "success")
        return back

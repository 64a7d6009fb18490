"""The history of alert episodes (app/alerts): read-only, newest first."""
from __future__ import annotations

from sqlalchemy.orm import Query

from app.admin.base import ReadOnlyModelView, current_role
from app.admin.formatting import formatters
from app.admin.permissions import may_view
from app.alerts.checks import SUCCESS_RATE
from app.alerts.models import AlertEpisode


class AlertHistoryView(ReadOnlyModelView):
    column_list = ("fired_at", "cleared_at", "severity", "kind", "key", "message")
    column_labels = {"fired_at": "Started", "cleared_at": "Cleared"}
    column_formatters = formatters(times=("fired_at", "cleared_at", "last_seen_at"))
    column_filters = ("kind", "severity", "fired_at", "cleared_at")
    column_default_sort = ("id", True)

    def get_query(self) -> Query:
        return self._visible(super().get_query())

    def get_count_query(self) -> Query:
        return self._visible(super().get_count_query())

    def get_one(self, id: str) -> AlertEpisode | None:  # noqa: A002 - Flask-Admin's name
        episode = super().get_one(id)
        if episode is None or (episode.kind == SUCCESS_RATE and not may_view(current_role(), "analytics")):
            return None
        return episode

    @staticmethod
    def _visible(query: Query) -> Query:
        # The success rate's figures are the analytics page's: finance and admins only.
        if may_view(current_role(), "analytics"):
            return query
        return query.filter(AlertEpisode.kind != SUCCESS_RATE)

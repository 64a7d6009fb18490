"""The history of alert episodes (app/alerts): read-only, newest first."""
from __future__ import annotations

from app.admin.base import ReadOnlyModelView
from app.admin.formatting import formatters


class AlertHistoryView(ReadOnlyModelView):
    column_list = ("fired_at", "cleared_at", "severity", "kind", "key", "message")
    column_labels = {"fired_at": "Started", "cleared_at": "Cleared"}
    column_formatters = formatters(times=("fired_at", "cleared_at", "last_seen_at"))
    column_filters = ("kind", "severity", "fired_at", "cleared_at")
    column_default_sort = ("id", True)

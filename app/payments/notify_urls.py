"""Where channels send their callbacks: the public base URL and the contract route
`/notify/<channel>` (DESIGN.md §5). Built without a request, so jobs can use it too."""
from __future__ import annotations

from flask import current_app


def notify_url(channel: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL']}/notify/{channel}"

"""A requests transport that hands requests to a WSGI app in this process.

The unit tests run the real channel adapter against the real emulator, byte for byte,
without a listening socket: the adapter sends through `requests`, this transport turns
the request into a WSGI call. The live-server tests use real sockets instead.
"""
from __future__ import annotations

import io
import threading
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder, run_wsgi_app


class WSGITransport(BaseAdapter):
    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        super().__init__()
        self.wsgi_app = wsgi_app
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        parts = urlsplit(request.url)
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        builder = EnvironBuilder(
            path=parts.path,
            query_string=parts.query,
            method=request.method,
            headers=dict(request.headers),
            data=body,
            base_url=f"{parts.scheme}://{parts.netloc}",
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        app_iter, status, headers = self._call(environ, kwargs.get("timeout"))
        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.split(" ", 1)[1] if " " in status else ""
        response.headers = CaseInsensitiveDict(headers.to_wsgi_list())
        response.raw = io.BytesIO(b"".join(app_iter))
        response.url = request.url
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def _call(self, environ: dict[str, Any], timeout: Any) -> tuple[Any, str, Any]:
        """Run the app; like a socket, give up after the read timeout (the app goes on)."""
        if isinstance(timeout, tuple):
            timeout = timeout[1]
        if timeout is None:
            return run_wsgi_app(self.wsgi_app, environ, buffered=True)
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(run_wsgi_app(self.wsgi_app, environ, buffered=True))
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller
                outcome.append(error)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout)
        if not outcome:
            raise requests.exceptions.ReadTimeout(f"no answer within {timeout} s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def close(self) -> None:
        pass

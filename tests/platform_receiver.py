"""A small receiver of platform events for the tests: the platform's LMS, as the README
tells it to check what arrives (the standard library only, not app.platform_events).

It runs a stdlib HTTP server in a thread on a free port and records every request.
``mode`` says how it behaves: ``ok`` verifies and answers 200 (400 if the check fails),
``fail`` answers 500, ``tamper`` alters the body on its way in (a man in the middle)
before checking, ``stale`` checks with a clock an hour ahead.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator


# --- the README's receiver example, verbatim -------------------------------------------
def verify(secret: str, headers: Any, body: bytes, now: float, tolerance: int = 300) -> bool:
    timestamp = headers.get("X-CourseCashier-Timestamp", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False  # missing, malformed, or too old / too far ahead: a replay
    signed = timestamp.encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate.strip())
               for candidate in headers.get("X-CourseCashier-Signature", "").split(","))
# ----------------------------------------------------------------------------------------


@dataclass
class Received:
    event_type: str
    delivery_id: str
    body: bytes
    verified: bool
    answer: int

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    secret: str = ""
    mode: str = "ok"
    clock: Callable[[], float] = time.time
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, body: bytes) -> int:
        if self.mode == "fail":
            answer, verified = 500, False
        else:
            if self.mode == "tamper":
                body = body.replace(b'"amount_fen":', b'"amount_fen":1', 1).replace(b'"course_id":', b'"course_id":9', 1)
            now = self.clock() + (3600 if self.mode == "stale" else 0)
            verified = verify(self.secret, headers, body, now)
            answer = 200 if verified else 400
        with self.lock:
            self.received.append(Received(headers.get("X-CourseCashier-Event", ""),
                                          headers.get("X-CourseCashier-Delivery", ""), body, verified, answer))
        return answer

    def accepted(self) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.answer == 200]

    def refused(self) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.answer != 200]


@contextmanager
def running_receiver(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = receiver.handle(self.headers, body)
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/lms/events"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""A small real SMTP server for the tests (stdlib sockets, one thread per connection):
it accepts messages and keeps them, or refuses every one with a chosen reply, so the
delivery code talks SMTP over TCP exactly as it does to a production relay."""
from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Iterator


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes

    def parsed(self) -> Message:
        return message_from_bytes(self.raw)


@dataclass
class SmtpServer:
    host: str
    port: int
    # A reply like "451 4.3.0 Mailbox busy" refuses every DATA; None accepts.
    refusal: str | None = None
    received: list[Received] = field(default_factory=list)
    connections: int = 0


class _Handler(socketserver.StreamRequestHandler):
    server: _TCPServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        state = self.server.state
        state.connections += 1
        self.reply("220 test.smtp ready")
        sender, recipients = "", []
        for raw_line in self._lines():
            command = raw_line.decode(errors="replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 test.smtp")
            elif verb == "MAIL":
                sender, recipients = command.partition(":")[2].strip(" <>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.partition(":")[2].strip(" <>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = self._data()
                if state.refusal is not None:
                    self.reply(state.refusal)
                else:
                    state.received.append(Received(sender, recipients, body))
                    self.reply("250 OK queued")
            elif verb == "RSET":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")

    def _lines(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            yield line

    def _data(self) -> bytes:
        lines = []
        for line in self._lines():
            if line in (b".\r\n", b".\n"):
                break
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: SmtpServer


def start_smtp_server() -> tuple[SmtpServer, _TCPServer]:
    server = _TCPServer(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.state = SmtpServer(str(host), int(port))
    threading.Thread(target=server.serve_forever, name="test-smtp", daemon=True).start()
    return server.state, server

"""An SMTP sink for development and the page that shows what it received.

:class:`MailSink` runs two small servers on threads of the calling process: an SMTP
server that accepts every message (and any ``AUTH PLAIN`` / ``AUTH LOGIN`` login, so a
site's custom SMTP settings may point at it too) and keeps it in a :class:`MailLog`, and
an HTTP server that lists the messages with their links:

* ``/`` — the received messages, newest first, with the links in each;
* ``/messages/<id>/`` — one message: its headers, links, text and HTML parts;
* ``/messages/<id>.eml`` — the message as received;
* ``/messages.json`` — the same as JSON, for scripts and tests.

Standard library only (``smtpd`` left Python in 3.12), so ``client_billing_dev`` needs no
extra package. It speaks what Django's SMTP backend and ``smtplib`` send; it offers no
STARTTLS, and keeps at most :data:`MAX_MESSAGES` messages in memory.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import html
import json
import re
import socketserver
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Messages kept; the oldest is dropped first.
MAX_MESSAGES = 500
#: Largest message accepted (advertised with ``SIZE``), in bytes.
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
#: Longest command or data line read, in bytes.
MAX_LINE_BYTES = 64 * 1024

_URL = re.compile(r"https?://[^\s<>\"'`]+")
_HREF = re.compile(r"""href\s*=\s*["'](https?://[^"']+)["']""", re.I)


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the sink accepted, parsed once."""

    id: int
    received_at: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    raw: bytes
    subject: str = ""
    sender: str = ""
    to: str = ""
    text: str = ""
    html: str = ""
    links: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, id: int, envelope_from: str, envelope_to: Iterable[str], raw: bytes
    ) -> ReceivedMessage:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        text, html_part = _part(message, "plain"), _part(message, "html")
        return cls(
            id=id,
            received_at=datetime.now(UTC),
            envelope_from=envelope_from,
            envelope_to=tuple(envelope_to),
            raw=raw,
            subject=str(message.get("Subject", "")),
            sender=str(message.get("From", "")),
            to=str(message.get("To", "")) or ", ".join(envelope_to),
            text=text,
            html=html_part,
            links=_links(text, html_part),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "envelope_from": self.envelope_from,
            "envelope_to": list(self.envelope_to),
            "subject": self.subject,
            "from": self.sender,
            "to": self.to,
            "text": self.text,
            "html": self.html,
            "links": list(self.links),
        }


def _part(message: EmailMessage, subtype: str) -> str:
    try:
        body = message.get_body(preferencelist=(subtype,))
        return str(body.get_content()) if body is not None else ""
    except (LookupError, ValueError, AttributeError):
        return ""


def _links(text: str, html_part: str) -> tuple[str, ...]:
    """The http(s) links of the text part, or of the HTML part's hrefs if it has none."""
    found = [url.rstrip(".,;:!?)]}") for url in _URL.findall(text)]
    if not found:
        found = [html.unescape(url) for url in _HREF.findall(html_part)]
    return tuple(dict.fromkeys(found))


@dataclass
class MailLog:
    """The messages received, newest last; safe to use from several threads."""

    limit: int = MAX_MESSAGES
    _messages: list[ReceivedMessage] = field(default_factory=list)
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, envelope_from: str, envelope_to: Iterable[str], raw: bytes) -> ReceivedMessage:
        with self._lock:
            message = ReceivedMessage.parse(self._next_id, envelope_from, envelope_to, raw)
            self._next_id += 1
            self._messages.append(message)
            del self._messages[: -self.limit]
        return message

    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def get(self, id: int) -> ReceivedMessage | None:
        return next((m for m in self.messages() if m.id == id), None)


# --- SMTP --------------------------------------------------------------------------------


class SMTPServer(socketserver.ThreadingTCPServer):
    """Accepts every message for any recipient into ``log``; one thread per connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        log: MailLog,
        on_message: Callable[[ReceivedMessage], None] | None = None,
    ) -> None:
        self.log = log
        self.on_message = on_message
        super().__init__(address, SMTPHandler)


class SMTPHandler(socketserver.StreamRequestHandler):
    """One SMTP session (RFC 5321): EHLO/HELO, AUTH, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    server: SMTPServer
    timeout = 300

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def read_line(self) -> bytes | None:
        line = self.rfile.readline(MAX_LINE_BYTES)
        return line or None

    def handle(self) -> None:
        self.reply("220 localhost client_billing_dev SMTP sink")
        mail_from: str | None = None
        recipients: list[str] = []
        while (line := self.read_line()) is not None:
            verb, _, arg = line.decode("utf-8", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.reply(
                    "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                    f"250-SIZE {MAX_MESSAGE_BYTES}\r\n250-AUTH PLAIN LOGIN\r\n250 HELP"
                )
            elif verb == "HELO":
                self.reply("250 localhost")
            elif verb == "AUTH":
                self.authenticate(arg)
            elif verb == "MAIL":
                address = _address(arg, "FROM:")
                if address is None:
                    self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                    continue
                mail_from, recipients = address, []
                self.reply("250 2.1.0 OK")
            elif verb == "RCPT":
                address = _address(arg, "TO:")
                if mail_from is None:
                    self.reply("503 5.5.1 MAIL first")
                elif not address:
                    self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
                else:
                    recipients.append(address)
                    self.reply("250 2.1.5 OK")
            elif verb == "DATA":
                if mail_from is None or not recipients:
                    self.reply("503 5.5.1 MAIL and RCPT first")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                raw = self.read_data()
                if raw is None:
                    return
                if len(raw) > MAX_MESSAGE_BYTES:
                    self.reply("552 5.3.4 Message too big")
                else:
                    message = self.server.log.add(mail_from, recipients, raw)
                    if self.server.on_message is not None:
                        self.server.on_message(message)
                    self.reply(f"250 2.0.0 OK: queued as {message.id}")
                mail_from, recipients = None, []
            elif verb == "RSET":
                mail_from, recipients = None, []
                self.reply("250 2.0.0 OK")
            elif verb == "NOOP":
                self.reply("250 2.0.0 OK")
            elif verb == "VRFY":
                self.reply("252 2.0.0 Cannot VRFY; send the message")
            elif verb == "STARTTLS":
                self.reply("454 4.7.0 TLS not available: this is a development sink")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not implemented")

    def read_data(self) -> bytes | None:
        """The message up to the lone dot, dot-stuffing undone; ``None`` if the client left."""
        chunks: list[bytes] = []
        size = 0
        while (line := self.read_line()) is not None:
            if line in (b".\r\n", b".\n"):
                return b"".join(chunks)
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size <= MAX_MESSAGE_BYTES + 1:  # past that, read to the end and refuse
                chunks.append(line)
        return None

    def authenticate(self, arg: str) -> None:
        """Accept any credentials: the sink is for development; nothing is checked."""
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            answers = [initial] if initial else self.challenges(["  "])
        elif mechanism == "LOGIN":
            prompts = ["UGFzc3dvcmQ6"] if initial else ["VXNlcm5hbWU6", "UGFzc3dvcmQ6"]
            answers = self.challenges(prompts)
        else:
            self.reply("504 5.5.4 Unrecognized authentication type")
            return
        if answers is None:
            self.reply("501 5.7.0 Authentication cancelled")
            return
        try:
            for answer in answers:
                base64.b64decode(answer.strip(), validate=True)
        except (binascii.Error, ValueError):
            self.reply("501 5.5.2 Cannot decode the response")
            return
        self.reply("235 2.7.0 Authentication successful")

    def challenges(self, prompts: list[str]) -> list[str] | None:
        answers = []
        for prompt in prompts:
            self.reply(f"334 {prompt.strip()}")
            line = self.read_line()
            if line is None or line.strip() == b"*":
                return None
            answers.append(line.decode("ascii", "replace"))
        return answers


def _address(arg: str, prefix: str) -> str | None:
    """``FROM:<a@example.com> SIZE=12`` -> ``a@example.com`` (``""`` for the null sender)."""
    if not arg.upper().startswith(prefix):
        return None
    rest = arg[len(prefix) :].strip()
    if rest.startswith("<"):
        end = rest.find(">")
        return rest[1:end] if end != -1 else None
    return rest.split(" ", 1)[0] if rest else None


# --- the mail log page -------------------------------------------------------------------


class MailLogServer(ThreadingHTTPServer):
    """Serves ``log`` as pages and JSON."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], log: MailLog) -> None:
        self.log = log
        super().__init__(address, MailLogHandler)


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d1d1d; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem; border-bottom: 1px solid #ddd; }
th { font-size: .8rem; text-transform: uppercase; color: #555; }
a { color: #005b5e; } ul { margin: 0; padding-left: 1.1rem; } code, pre { font-size: .85rem; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 1rem; border-radius: 4px; }
iframe { width: 100%; height: 40rem; border: 1px solid #ddd; border-radius: 4px; }
.muted { color: #666; }
"""


class MailLogHandler(BaseHTTPRequestHandler):
    server: MailLogServer
    server_version = "client_billing_dev-mail-log/1.0"

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            self.send(200, "text/html; charset=utf-8", self.index_page().encode())
        elif path == "/messages.json":
            data = {"messages": [m.to_json() for m in self.server.log.messages()]}
            self.send(200, "application/json", json.dumps(data).encode())
        elif match := re.fullmatch(r"/messages/(\d+)(/|\.eml)", path):
            message = self.server.log.get(int(match.group(1)))
            if message is None:
                self.send(404, "text/plain; charset=utf-8", b"No such message (kept in memory).")
            elif match.group(2) == ".eml":
                self.send(200, "message/rfc822", message.raw)
            else:
                self.send(200, "text/html; charset=utf-8", self.message_page(message).encode())
        else:
            self.send(404, "text/plain; charset=utf-8", b"Not found.")

    def send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the command's own output is for what matters."""

    def index_page(self) -> str:
        messages = self.server.log.messages()[::-1]
        rows = "".join(
            f"<tr><td><a href='/messages/{m.id}/'>{m.id}</a></td>"
            f"<td>{m.received_at.astimezone().strftime('%H:%M:%S')}</td>"
            f"<td>{html.escape(m.to)}</td>"
            f"<td><a href='/messages/{m.id}/'>{html.escape(m.subject) or '(no subject)'}</a></td>"
            f"<td>{_link_list(m.links)}</td></tr>"
            for m in messages
        )
        body = (
            "<table><thead><tr><th>#</th><th>Received</th><th>To</th><th>Subject</th>"
            f"<th>Links</th></tr></thead><tbody>{rows}</tbody></table>"
            if messages
            else "<p class='muted'>No message yet. Mail sent to the sink shows up here.</p>"
        )
        return _page(
            "Mail log",
            f"<meta http-equiv='refresh' content='5'><h1>Mail log</h1>"
            f"<p class='muted'>{len(messages)} message(s), newest first; this page refreshes "
            f"every 5 seconds. <a href='/messages.json'>JSON</a></p>{body}",
        )

    def message_page(self, m: ReceivedMessage) -> str:
        fields = "".join(
            f"<tr><th>{label}</th><td>{html.escape(value)}</td></tr>"
            for label, value in (
                ("From", m.sender or m.envelope_from),
                ("To", m.to),
                ("Envelope to", ", ".join(m.envelope_to)),
                ("Subject", m.subject),
                ("Received", m.received_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")),
            )
        )
        parts = ""
        if m.text:
            parts += f"<h2>Text</h2><pre>{html.escape(m.text)}</pre>"
        if m.html:
            # Links open in a new tab; the message's scripts and forms stay off.
            srcdoc = html.escape("<base target='_blank'>" + m.html, quote=True)
            parts += (
                "<h2>HTML</h2><iframe title='The HTML part' "
                "sandbox='allow-popups allow-popups-to-escape-sandbox' "
                f'srcdoc="{srcdoc}"></iframe>'
            )
        return _page(
            m.subject or "(no subject)",
            f"<p><a href='/'>&larr; All messages</a> &middot; "
            f"<a href='/messages/{m.id}.eml'>Download .eml</a></p>"
            f"<h1>{html.escape(m.subject) or '(no subject)'}</h1><table>{fields}</table>"
            f"<h2>Links</h2>{_link_list(m.links) or '<p class=muted>None.</p>'}{parts}",
        )


def _link_list(links: Iterable[str]) -> str:
    items = "".join(
        f"<li><a href='{html.escape(url, quote=True)}' target='_blank' rel='noopener'>"
        f"{html.escape(url)}</a></li>"
        for url in links
    )
    return f"<ul>{items}</ul>" if items else ""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} · client_billing_dev</title><style>{_STYLE}</style>"
        f"</head><body>{body}</body></html>"
    )


# --- both together -----------------------------------------------------------------------


class MailSink:
    """The SMTP server and the mail log page, each on a thread of this process.

    ``MailSink("127.0.0.1", 1025, 8025).start()``; port 0 picks a free port (read the
    chosen ones from ``smtp_port`` / ``web_port``); ``stop()`` closes both.
    """

    def __init__(
        self,
        host: str,
        smtp_port: int,
        web_port: int,
        on_message: Callable[[ReceivedMessage], None] | None = None,
    ) -> None:
        self.log = MailLog()
        self.smtp = SMTPServer((host, smtp_port), self.log, on_message)
        self.web = MailLogServer((host, web_port), self.log)
        self._threads = [
            threading.Thread(target=server.serve_forever, name=name, daemon=True)
            for name, server in (("smtp-sink", self.smtp), ("mail-log", self.web))
        ]

    @property
    def smtp_port(self) -> int:
        return int(self.smtp.server_address[1])

    @property
    def web_port(self) -> int:
        return int(self.web.server_address[1])

    def start(self) -> MailSink:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server, thread in zip((self.smtp, self.web), self._threads, strict=True):
            if thread.is_alive():
                server.shutdown()
            server.server_close()

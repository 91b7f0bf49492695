"""The unsubscribe endpoint behind PAPERBOT_BASE_URL (``paperbot serve``; Procfile ``web``).

    GET  /unsubscribe?token=T   a confirmation page with one button (link scanners only GET)
    POST /unsubscribe?token=T   records the unsubscription; RFC 8058 one-click posts here too
    GET  /healthz               "ok" (HEAD too)

When PAPERBOT_BASE_URL has a path (``https://example.org/paperbot``), the links are under it
(``/paperbot/unsubscribe``); they are answered there and also without it, for a proxy that
strips the prefix. Any other path is 404. The token is the HMAC-signed address from the
email, so nobody can unsubscribe someone else (a link signed with one of the earlier secrets
still works); it is redacted in the access log.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import socket
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from bot.message import verify_token
from bot.store import DatabaseFailure, Store, db_reason

log = logging.getLogger(__name__)

UNSUBSCRIBE = "/unsubscribe"
HEALTH = "/healthz"
RETRY_AFTER = 300
"""Seconds a client is asked to wait when the database could not record an unsubscription."""
_TOKEN = re.compile(r"(token=)[^&\s\"]+")

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>{title}</title>
<style>body{{font:17px/1.5 system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em;
color:#1f2937;background:#fff}}button{{font:inherit;padding:.5em 1.2em;border-radius:6px;
border:0;background:#1d4ed8;color:#fff;cursor:pointer}}@media (prefers-color-scheme:dark){{
body{{color:#e5e7eb;background:#111827}}}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def page(title: str, body: str) -> bytes:
    """A small self-contained HTML page."""
    return PAGE.format(title=html.escape(title), body=body).encode()


class UnsubscribeHandler(BaseHTTPRequestHandler):
    """Serves the three routes; ``store`` and ``secret`` are set on the server."""

    server: UnsubscribeServer
    timeout = 30
    """Seconds a connection may keep the server waiting for its request (a client that sends
    nothing, or less of a body than it announced, would otherwise hold a thread for good)."""

    def _reply(
        self, status: HTTPStatus, body: bytes, kind: str = "text/html", retry: int | None = None
    ) -> None:
        self.send_response(status)
        if retry is not None:
            self.send_header("Retry-After", str(retry))
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> str:
        """The path asked for, without the base URL's path when it starts with it."""
        path = urlsplit(self.path).path
        prefix = self.server.prefix
        return path[len(prefix) :] if prefix and path.startswith(f"{prefix}/") else path

    def _token(self) -> str:
        return parse_qs(urlsplit(self.path).query).get("token", [""])[0]

    def _email(self) -> str | None:
        token = self._token()
        return verify_token(self.server.secret, token, self.server.previous) if token else None

    def do_GET(self) -> None:
        """Health check, or the confirmation page."""
        route = self._route()
        if route == HEALTH:
            self._reply(HTTPStatus.OK, b"ok\n", "text/plain")
            return
        if route != UNSUBSCRIBE:
            self._not_found()
            return
        email = self._email()
        if email is None:
            self._invalid()
            return
        form = (
            f"<p>Stop sending paper digests and alerts to <strong>{html.escape(email)}</strong>?"
            f'</p><form method="post" action="?token={quote(self._token())}">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        self._reply(HTTPStatus.OK, page("Unsubscribe", form))

    def do_HEAD(self) -> None:
        """What GET would answer, without the body (uptime checks and link scanners use it)."""
        self.do_GET()

    def do_POST(self) -> None:
        """Record the unsubscription (the form, or a mail client's one-click POST)."""
        length = self.headers.get("Content-Length", "0")
        self.rfile.read(min(int(length), 4096) if length.isdigit() else 0)
        if self._route() != UNSUBSCRIBE:
            self._not_found()
            return
        email = self._email()
        if email is None:
            self._invalid()
            return
        try:
            self.server.store.suppress(email, "unsubscribed")
        except DatabaseFailure as exc:  # locked, full or down: the subscriber should try again
            log.error("could not record the unsubscription of %s: %s", email, db_reason(exc))
            self._unavailable()
            return
        log.info("unsubscribed %s", email)
        body = f"<p>{html.escape(email)} will get no more emails from paperbot.</p>"
        self._reply(HTTPStatus.OK, page("You are unsubscribed", body))

    def _invalid(self) -> None:
        body = "<p>This unsubscribe link is not valid. Please use the link from a recent email"
        contact = self.server.contact
        if contact:
            address = html.escape(contact)
            link = html.escape(f"mailto:{quote(contact, safe='@')}?subject=unsubscribe")
            body += f', or write to <a href="{link}">{address}</a> to stop the emails'
        body += ".</p>"
        self._reply(HTTPStatus.BAD_REQUEST, page("Link not valid", body))

    def _unavailable(self) -> None:
        body = (
            "<p>Your unsubscription could not be recorded just now. Please try the link again "
            "in a few minutes.</p>"
        )
        title = "Please try again"
        self._reply(HTTPStatus.SERVICE_UNAVAILABLE, page(title, body), retry=RETRY_AFTER)

    def _not_found(self) -> None:
        body = "<p>There is nothing here. Unsubscribe links end in /unsubscribe?token=….</p>"
        self._reply(HTTPStatus.NOT_FOUND, page("Not found", body))

    def log_message(self, format: str, *args: object) -> None:
        """Route access logs through logging, one line each, unsubscribe tokens redacted."""
        log.info("%s %s", self.address_string(), redact(format % args))


def redact(line: str) -> str:
    """``line`` with the value of every ``token=`` parameter replaced (a token is a capability:
    whoever has it can unsubscribe its address)."""
    return _TOKEN.sub(r"\1[redacted]", line)


class UnsubscribeServer(ThreadingHTTPServer):
    """A threading HTTP server that knows the store and the signing secret (and the earlier
    secrets whose links still work).

    It listens on IPv6 when the host is an IPv6 address; ``::`` then takes IPv4 connections as
    well where the system allows it.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        secret: str,
        base_url: str | None = None,
        previous: Sequence[str] = (),
        contact: str | None = None,
    ) -> None:
        self.address_family = address_family(address[0])
        super().__init__(address, UnsubscribeHandler)
        self.store = store
        self.secret = secret
        self.previous = tuple(previous)
        self.contact = contact
        """Where to write instead when a link is not valid (PAPERBOT_UNSUBSCRIBE_MAILTO)."""
        self.prefix = urlsplit(base_url or "").path.rstrip("/")
        """The path of the base URL the links are under ("" for none)."""

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(AttributeError, OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def address_family(host: str) -> socket.AddressFamily:
    """IPv6 for an IPv6 address (``::``, ``::1``), else IPv4: a name such as ``localhost``
    listens on its IPv4 address, where proxies and health checks expect it."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET

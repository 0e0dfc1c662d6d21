"""The kiosk screen's HTTP server: the page, its live feed, and feedback by POST.

Standard library only (``http.server``), on threads of its own, so a slow or dead browser tab
can never stall the inference loop: pages read from bounded queues (edge/runtime/screen/feed.py), every
socket has a timeout, and connections are capped. Routes:

- ``GET /`` (and ``/screen.css``, ``/screen.js``): the page, every byte from this package.
- ``GET /api/events``: Server-Sent Events, ``labels`` then ``state`` at once, then each change.
- ``GET /api/state``: the same snapshot with the labels, as one JSON document.
- ``GET /api/self-view``: the mirrored live view of the camera (``[screen] self_view``), as a
  ``multipart/x-mixed-replace`` stream of JPEGs, each part with its ``Content-Length``.
- ``POST /api/feedback``: a feedback message, exactly as on MQTT, through the daemon's one feedback
  path (``submit_feedback``); the answer is the acknowledgement, with an HTTP status that says
  what happened (200 stored, 400 invalid, 404 unknown prediction, 409 already answered, 503 not
  stored).
- ``POST /api/sentence/clear``: empties the running sentence.
- ``POST /api/session``: trades the screen token (``Authorization: Bearer``) for a session cookie,
  so that the page's ``EventSource``, which cannot send headers, can read the events.

Bound to loopback by default. Requests must name this server in ``Host`` (a page on another site
cannot reach it through DNS rebinding), and nothing but this server's own page may use it
(``Origin``, ``Sec-Fetch-Site``). The words a signer makes are theirs: when a screen token is set,
every read (``/api/state``, ``/api/events``, ``/api/self-view``) needs it too, as the bearer token or the
session cookie (HttpOnly, SameSite=Strict, derived from the token so it dies with it), and every
change needs the bearer token; listening on anything but loopback requires a token. Tokens are
compared in constant time, and a refusal is a 401 that carries nothing of the state. Bodies are
JSON of at most ``MAX_BODY_BYTES``; every refusal is a 4xx with a one-line JSON reason. A busy port
is a fault, reported in ``health`` and retried, never a reason for the daemon to stop.
"""

from __future__ import annotations

import hashlib
import hmac
import http.cookies
import http.server
import ipaddress
import json
import logging
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.core.config import ScreenConfig
from edge.core.credentials import systemd_credential
from edge.core.errors import AslEdgeError
from edge.runtime.feedback import MAX_PAYLOAD_BYTES
from edge.runtime.health_schema import ScreenHealth, WorkerHealth
from edge.runtime.screen.feed import ScreenFeed
from edge.runtime.screen.selfview import SelfView
from edge.runtime.worker import Backoff

log = logging.getLogger(__name__)

TOKEN_CREDENTIAL = "screen-token"
MAX_BODY_BYTES = MAX_PAYLOAD_BYTES
DRAIN_LIMIT_BYTES = 1 << 20
MAX_CONNECTIONS = 32
SOCKET_TIMEOUT_S = 10.0
KEEPALIVE_S = 15.0
SHUTDOWN_POLL_S = 0.1
BIND_RETRY_S = (1.0, 30.0)
SELF_VIEW_BOUNDARY = "frame"
SESSION_COOKIE = "asl-edge-session"
SESSION_S = 24 * 3600.0  # a page trades its token for a new cookie when this one has expired
TOKEN_REQUIRED = "a valid screen token is required (Authorization: Bearer TOKEN, or the page's session)"
ACK_HTTP_STATUS = {
    "invalid": 400,
    "unknown_prediction": 404,
    "already_answered": 409,
    "disk_full": 503,
    "store_failed": 503,
    "busy": 503,
    "failed": 500,
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/screen.css": ("screen.css", "text/css; charset=utf-8"),
    "/screen.js": ("screen.js", "text/javascript; charset=utf-8"),
}

SubmitFeedback = Callable[[bytes], dict[str, Any]]


class ScreenError(AslEdgeError):
    """The screen cannot be served as configured (a missing or unreadable token)."""


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def read_token(settings: ScreenConfig) -> str | None:
    """The token from ``token_file``, else the systemd credential ``screen-token``, else None.
    Required (ScreenError) when the screen listens on anything but loopback."""
    path = Path(settings.token_file) if settings.token_file else systemd_credential(TOKEN_CREDENTIAL)
    token = None
    if path is not None:
        try:
            token = path.read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScreenError(f"screen.token_file: cannot read {path}: {exc}") from exc
    if token is None and not is_loopback(settings.host):
        raise ScreenError(
            f"screen.host: {settings.host} is not loopback, so the screen needs a token: set "
            f"screen.token_file, or the systemd credential {TOKEN_CREDENTIAL}"
        )
    return token


def page_url(host: str, port: int) -> str:
    """Where a browser on this machine finds the page (a wildcard address is reached on loopback)."""
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}/"


def _load_assets() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("edge.runtime.screen") / "static"
    return {path: ((folder / name).read_bytes(), kind) for path, (name, kind) in ASSETS.items()}


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    screen: ScreenServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang on a kiosk without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.screen.admit():
            log.warning("screen: %d connections open, refusing one more", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.screen.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("screen: a request from %s failed", client_address[0], exc_info=True)


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "asl-edge"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S
    error_content_type = "application/json"

    @property
    def screen(self) -> ScreenServer:
        return self.server.screen

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("screen: %s " + format, self.client_address[0], *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every refusal, ours or http.server's (a malformed request line, headers too long): one
        line of JSON, and the connection closed."""
        if code == 501:  # http.server's answer to a method it has no handler for
            code, message = 405, f"method {str(self.command)[:20]!r} is not allowed"
        if self.request_version == "HTTP/0.9":  # an unreadable request line still gets a status
            self.request_version = "HTTP/1.0"
        reason = message or self.responses.get(code, ("error",))[0]
        self._send_json(code, {"status": "rejected", "reason": reason})
        self.close_connection = True

    def _send(self, code: int, body: bytes, content_type: str, cache: str = "no-store") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, data: dict[str, Any]) -> None:
        self._send(code, json.dumps(data, ensure_ascii=False).encode(), "application/json")

    def _host_problem(self) -> str | None:
        host = self.headers.get("Host", "")
        if host not in self.screen.allowed_hosts(host):
            return f"Host {host[:80]!r} is not this screen"
        return None

    def do_GET(self) -> None:
        problem = self._host_problem()
        if problem:
            self.send_error(421, problem)
            return
        path = urlsplit(self.path).path
        if path in ("/api/events", "/api/state", "/api/self-view"):
            problem = self._origin_problem()
            if problem:
                self.send_error(403, problem)
                return
            if not self._may_read():
                self.send_error(401, TOKEN_REQUIRED)
                return
        if path == "/api/events":
            self._stream()
        elif path == "/api/self-view" and self.screen.self_view is not None:
            self._self_view(self.screen.self_view)
        elif path == "/api/state":
            self._send_json(200, {**self.screen.feed.snapshot(), **self.screen.feed.labels()})
        elif path in self.screen.assets:
            body, kind = self.screen.assets[path]
            self._send(200, body, kind, cache="no-cache")
        else:
            self.send_error(404, f"no such page: {path[:80]}")

    def do_POST(self) -> None:
        actions = {
            "/api/feedback": self._feedback,
            "/api/sentence/clear": self._clear_sentence,
            "/api/session": self._open_session,
        }
        action = actions.get(urlsplit(self.path).path)
        if action is None:
            self.send_error(404, f"no such action: {urlsplit(self.path).path[:80]}")
            return
        problem = self._host_problem()
        if problem:
            self.send_error(421, problem)
            return
        problem = self._origin_problem()
        if problem:
            self.send_error(403, problem)
            return
        if not self._bearer_ok():  # changes need the token itself, never only the session cookie
            self.send_error(401, "a valid screen token is required (Authorization: Bearer TOKEN)")
            return
        body = self._read_body()
        if body is not None:
            action(body)

    def _refuse_method(self) -> None:
        self.send_error(405, f"method {self.command} is not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _refuse_method

    def _origin_problem(self) -> str | None:
        """Only this server's own page: another origin's scripts, frames and event sources are
        refused (``Origin`` where the browser sends one, ``Sec-Fetch-Site`` where it sends that)."""
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            return f"requests from {origin[:80]!r} are refused"
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "requests from another site are refused"
        return None

    def _bearer_ok(self) -> bool:
        """The request carries the screen token (constant-time comparison); True when none is set."""
        token = self.screen.token
        if token is None:
            return True
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def _may_read(self) -> bool:
        """Reads need the token too, once one is set: as the bearer token or the session cookie."""
        if self._bearer_ok():
            return True
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return False
        session = cookies.get(SESSION_COOKIE)
        return session is not None and self.screen.session_valid(session.value)

    def _read_body(self) -> bytes | None:
        """The request's JSON body, or None after refusing it (nothing is read past the limit)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "send a Content-Length, not a chunked body")
            return None
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self.send_error(411, "a Content-Length is required")
            return None
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "the Content-Length is not a number of bytes")
            return None
        if length > MAX_BODY_BYTES:
            if length <= DRAIN_LIMIT_BYTES:  # read it, so the client sees the answer, not a reset
                self.rfile.read(length)
            self.send_error(413, f"the body of {length} bytes exceeds {MAX_BODY_BYTES}")
            return None
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self.send_error(415, "the body must be application/json")
            return None
        return self.rfile.read(length)

    def _feedback(self, body: bytes) -> None:
        try:
            ack = self.screen.submit_feedback(body)
        except Exception:  # a fault in the feedback path must not take the server down
            log.exception("screen: feedback failed")
            self.send_error(500, "the feedback could not be handled; try again")
            return
        code = 200 if ack.get("status") == "stored" else ACK_HTTP_STATUS.get(str(ack.get("error")), 400)
        self._send_json(code, ack)

    def _clear_sentence(self, _body: bytes) -> None:
        self.screen.feed.clear_sentence()
        self._send_json(200, {"status": "cleared"})

    def _open_session(self, _body: bytes) -> None:
        """The page's token (checked before any action) becomes an HttpOnly cookie for its reads."""
        session = self.screen.new_session()
        body = json.dumps({"status": "session", "expires_in_s": int(SESSION_S)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if session is not None:
            self.send_header(
                "Set-Cookie",
                f"{SESSION_COOKIE}={session}; Path=/api; Max-Age={int(SESSION_S)}; HttpOnly; SameSite=Strict",
            )
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        """The page's live feed, until the page goes away, falls behind, or the server stops."""
        stream = self.screen.feed.open_stream()
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            while not stream.closed.is_set():
                event = stream.next(KEEPALIVE_S)
                self.wfile.write(event if event is not None else b": keepalive\n\n")
        except OSError as exc:  # the page went away (closed, reloaded, or stopped reading)
            log.debug("screen: a page left: %s", exc)
        finally:
            self.screen.feed.close_stream(stream)

    def _peer_closed(self) -> bool:
        """The page closed its end (a readable socket with nothing to read), found without a write."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _self_view(self, view: SelfView) -> None:
        """The camera's mirrored live view for as long as the page watches (or the server runs)."""
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={SELF_VIEW_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            for jpeg in view.frames(self.screen.stopping, self._peer_closed):
                head = (
                    f"--{SELF_VIEW_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                )
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except OSError as exc:  # the page went away
            log.debug("screen: a self-view page left: %s", exc)


@dataclass
class _Listening:
    server: _HttpServer
    url: str


class ScreenServer:
    """The screen as a daemon worker: ``start``, ``stop``, ``health``. ``submit_feedback`` is the
    daemon's one feedback path (validate, store, acknowledge on MQTT and to this page through
    ``publish_ack``, return the ack); the banner shows the health messages given to ``show_health``."""

    def __init__(self, settings: ScreenConfig, submit_feedback: SubmitFeedback, clips: bool = False) -> None:
        self.settings = settings
        self.token = read_token(settings)
        self.submit_feedback = submit_feedback
        self.self_view = SelfView() if settings.self_view else None
        self.feed = ScreenFeed(clips, self_view=self.self_view is not None)
        self.assets = _load_assets()
        self._connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listening: _Listening | None = None
        self._error: str | None = None
        self._bind_failures = 0
        self._thread: threading.Thread | None = None

    # the event feed, for the daemon's threads (never blocks)
    def publish_prediction(self, payload: dict[str, Any]) -> None:
        self.feed.publish_prediction(payload)

    def publish_ack(self, ack: dict[str, Any]) -> None:
        self.feed.publish_ack(ack)

    def set_model(self, labels: tuple[str, ...], model_id: str) -> None:
        self.feed.set_model(labels, model_id)

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def show_health(self, health: Mapping[str, Any]) -> None:
        """A health message (the health reporter's, schema 1): the banner says what is wrong."""
        self.feed.publish_status(health)

    def start(self) -> None:
        if self.self_view is not None:
            self.self_view.start()
        self._thread = threading.Thread(target=self._serve, name="screen", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        backoff = Backoff(*BIND_RETRY_S, healthy_s=float("inf"))
        while not self._stop.is_set():
            try:
                listening = self._listen()
            except OSError as exc:
                self._error = (
                    f"cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror or exc}"
                )
                self._bind_failures += 1
                delay_s = backoff.after(0.0)
                log.warning("screen: %s; retrying in %.0f s", self._error, delay_s)
                if self._stop.wait(delay_s):
                    return
                continue
            if listening is None:  # stopped while binding
                return
            self._error = None
            log.info("screen: %s", listening.url)
            listening.server.serve_forever(poll_interval=SHUTDOWN_POLL_S)
            return

    def _listen(self) -> _Listening | None:
        host = self.settings.host
        kind = _HttpServer6 if ipaddress.ip_address(host).version == 6 else _HttpServer
        server = kind((host, self.settings.port), _Handler, bind_and_activate=False)
        server.screen = self
        try:
            server.server_bind()
            server.server_activate()
        except OSError:
            server.server_close()
            raise
        with self._lock:
            if self._stop.is_set():
                server.server_close()
                return None
            self._listening = _Listening(server, page_url(host, server.server_port))
            return self._listening

    def stop(self, timeout_s: float = 3.0) -> None:
        with self._lock:
            self._stop.set()
            listening = self._listening
        if listening is not None:
            listening.server.shutdown()
            listening.server.server_close()
        self.feed.close_all()
        if self.self_view is not None:
            self.self_view.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def admit(self) -> bool:
        with self._lock:
            if self._connections >= MAX_CONNECTIONS:
                return False
            self._connections += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._connections -= 1

    def _session_mac(self, expires: str) -> str:
        key = (self.token or "").encode()
        return hmac.new(key, f"{SESSION_COOKIE}:{expires}".encode(), hashlib.sha256).hexdigest()

    def new_session(self, now: float | None = None) -> str | None:
        """A session cookie's value, ``<expiry>.<HMAC of it under the token>``: nothing to store,
        valid across restarts of the server, and void once the token changes; None without a token."""
        if self.token is None:
            return None
        expires = str(int((now if now is not None else time.time()) + SESSION_S))
        return f"{expires}.{self._session_mac(expires)}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        if self.token is None:
            return True
        expires, _, mac = value.partition(".")
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(mac.encode(), self._session_mac(expires).encode())

    def allowed_hosts(self, host: str) -> set[str]:
        """Host names a request may carry: this server's loopback names, or anything when it listens
        beyond loopback (the token, which is required there, guards every read and change)."""
        listening = self._listening
        if listening is None or not is_loopback(self.settings.host):
            return {host}
        port = listening.server.server_port
        own = urlsplit(listening.url).netloc
        return {own, f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    @property
    def url(self) -> str | None:
        listening = self._listening
        return listening.url if listening is not None else None

    def health(self) -> ScreenHealth:
        url, error, view = self.url, self._error, self.self_view
        worker = WorkerHealth.of(error, self._bind_failures, working=url is not None)
        return ScreenHealth(
            worker,
            url,
            self.feed.streams,
            error,
            self.feed.dropped_streams,
            view.fps() if view is not None else 0.0,
            view.frames_encoded if view is not None else 0,
        )

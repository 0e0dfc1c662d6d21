"""The screen's server without a browser: the one feedback path over HTTP, its refusals, the live
feed (snapshot first, slow pages dropped, never a blocked caller), a busy port, and the token."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.core.config import ScreenConfig, parse_config
from edge.runtime.feedback import handle_feedback
from edge.runtime.screen.feed import STREAM_QUEUE_EVENTS, ScreenFeed
from edge.runtime.screen.server import SESSION_S, ScreenError, ScreenServer, read_token
from edge.runtime.store import PredictionRecord, Store
from tests.browser import CHROMIUM, require_chromium, wait_for
from tests.services import ROOT, free_port

TOP_K = [{"word": w, "score": s} for w, s in (("book", 0.8), ("drink", 0.1), ("chair", 0.05))]


def _prediction(index: int, word: str = "book") -> dict[str, Any]:
    return {"id": f"p-{index}", "word": word, "confidence": 0.8, "top_k": TOP_K}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "state")
    for index in range(3):
        p = _prediction(index)
        store.add_prediction(PredictionRecord(p["id"], p["word"], p["confidence"], TOP_K, "m"))
    yield store
    store.close()


def _serve(store: Store, **settings: Any) -> ScreenServer:
    def submit(payload: bytes) -> dict[str, Any]:
        """As the daemon's feedback desk does: store, then acknowledge (to MQTT and) to the page."""
        ack = handle_feedback(payload, store)
        server.publish_ack(ack)
        return ack

    server = ScreenServer(ScreenConfig(port=0, **settings), submit)
    server.set_model(("book", "drink", "chair", "thank you"), "m")
    server.start()
    wait_for(lambda: server.url)
    return server


@pytest.fixture
def screen(store: Store) -> Iterator[ScreenServer]:
    server = _serve(store)
    yield server
    server.stop()


def _request(
    server: ScreenServer, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    port = int(server.url.rsplit(":", 1)[1].rstrip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    assert "\n" not in text.strip() and "Traceback" not in text, text
    return response.status, json.loads(text)


def _answer(server: ScreenServer, **fields: Any) -> tuple[int, dict[str, Any]]:
    return _request(server, "POST", "/api/feedback", json.dumps(fields).encode())


def _rows(store: Store) -> int:
    return store.counts()["feedback"]


def test_feedback_by_post_is_stored_once_and_acknowledged(screen, store):
    assert _answer(screen, prediction_id="p-1", correct=False, label="drink") == (
        200,
        {
            "status": "stored",
            "prediction_id": "p-1",
            "feedback": {
                "feedback_id": 1,
                "prediction_id": "p-1",
                "received_at": pytest.approx(time.time(), abs=30),
                "correct": False,
                "label": "drink",
                "predicted_word": "book",
            },
        },
    )
    code, again = _answer(screen, prediction_id="p-1", correct=False, label="drink")
    assert (code, again["status"], again["duplicate"], again["feedback"]["feedback_id"]) == (
        200,
        "stored",
        True,
        1,
    )
    code, other = _answer(screen, prediction_id="p-1", correct=True)
    assert (code, other["error"], other["prediction_id"]) == (409, "already_answered", "p-1")
    code, unknown = _answer(screen, prediction_id="p-9", correct=True)
    assert (code, unknown["error"], unknown["prediction_id"]) == (404, "unknown_prediction", "p-9")
    code, invalid = _answer(screen, prediction_id="p-2", correct="yes")
    assert (code, invalid["error"], invalid["prediction_id"]) == (400, "invalid", "p-2")
    assert _rows(store) == 1


@pytest.mark.parametrize(
    ("request_args", "code", "reason"),
    [
        (("POST", "/api/feedback", b"{not json"), 400, "not JSON"),
        (("POST", "/api/feedback", b"x" * 5000), 413, "exceeds 4096"),
        (("POST", "/api/feedback", b"{}", {"Content-Type": "text/plain"}), 415, "application/json"),
        (("POST", "/api/feedback", b"{}", {"Origin": "http://evil.example"}), 403, "evil.example"),
        (("POST", "/api/feedback", b"{}", {"Host": "evil.example"}), 421, "not this screen"),
        (("GET", "/", None, {"Host": "rebound.example:8080"}), 421, "not this screen"),
        (("POST", "/api/nothing", b"{}"), 404, "no such action"),
        (("GET", "/etc/passwd", None), 404, "no such page"),
        (("PUT", "/api/feedback", b"{}"), 405, "not allowed"),
        (("DELETE", "/", None), 405, "not allowed"),
    ],
)
def test_bad_requests_get_a_4xx_with_one_line_and_store_nothing(screen, store, request_args, code, reason):
    method, path, body, *headers = request_args
    status, answer = _request(screen, method, path, body, **(headers[0] if headers else {}))
    assert (status, answer["status"]) == (code, "rejected")
    assert reason in answer["reason"]
    assert _rows(store) == 0


def test_garbage_and_missing_lengths_are_refused_and_the_server_stays_up(screen, store):
    port = int(screen.url.rsplit(":", 1)[1].rstrip("/"))
    for raw in (
        b"NONSENSE / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 and more\r\n\r\n",
        b"POST /api/feedback HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n\r\n" % port,
        b"POST /api/feedback HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: -5\r\n\r\n" % port,
        # A huge body is refused from its Content-Length alone, before a byte of it is read.
        b"POST /api/feedback HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\n\r\n" % port,
        b"\xff\xfe\x00\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(raw)
            reply = b""
            while chunk := client.recv(4096):
                reply += chunk
        status_line, _, rest = reply.partition(b"\r\n")
        assert status_line.split()[1].startswith(b"4"), reply
        assert b"Traceback" not in reply and b'"reason"' in rest
    assert _answer(screen, prediction_id="p-0", correct=True)[0] == 200
    assert _rows(store) == 1


def test_the_page_and_its_assets_come_from_the_daemon(screen):
    port = int(screen.url.rsplit(":", 1)[1].rstrip("/"))
    total = 0
    for path, kind in (("/", "text/html"), ("/screen.css", "text/css"), ("/screen.js", "text/javascript")):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 200 and response.getheader("Content-Type").startswith(kind)
        assert "default-src 'none'" in response.getheader("Content-Security-Policy")
        assert b"http://" not in body and b"https://" not in body and b"//cdn" not in body
        total += len(body)
    assert total < 40_000, f"the page weighs {total} bytes"


def _events(server: ScreenServer, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` events a page connecting now receives."""
    port = int(server.url.rsplit(":", 1)[1].rstrip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/api/events")
    response = connection.getresponse()
    assert response.getheader("Content-Type").startswith("text/event-stream")
    events: list[tuple[str, dict[str, Any]]] = []
    name = None
    while len(events) < count:
        line = response.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            events.append((name, json.loads(line[6:])))
    connection.close()
    return events


def test_a_connecting_page_gets_the_latest_state_at_once(screen, store):
    screen.publish_prediction(_prediction(0))
    screen.publish_prediction(_prediction(1, "drink"))
    _answer(screen, prediction_id="p-1", correct=False, label="chair")
    [(first, labels), (second, state)] = _events(screen, 2)
    assert (first, labels) == ("labels", {"labels": ["book", "drink", "chair", "thank you"], "model": "m"})
    assert second == "state"
    assert state["prediction"]["id"] == "p-1" and state["prediction"]["word"] == "drink"
    assert state["answer"] == {"prediction_id": "p-1", "correct": False, "label": "chair"}
    assert state["sentence"] == ["book", "chair"]  # the corrected word replaces the recognized one
    _request(screen, "POST", "/api/sentence/clear", b"{}")
    assert _events(screen, 2)[1][1]["sentence"] == []


def test_a_page_that_stops_reading_is_dropped_and_publishing_never_waits():
    feed = ScreenFeed()
    stalled = feed.open_stream()
    for index in range(STREAM_QUEUE_EVENTS + 10):
        feed.publish_prediction(_prediction(index))
    assert stalled.closed.is_set()
    assert (feed.streams, feed.dropped_streams) == (0, 1)
    fresh = feed.open_stream()
    events = [fresh.next(0.1) for _ in range(3)]
    assert events[0].startswith(b"retry:")
    assert f'"id":"p-{STREAM_QUEUE_EVENTS + 9}"'.encode() in events[2]


def test_stalled_sockets_never_block_the_publisher(screen):
    """Pages that connect and never read: publishing stays immediate and they get dropped."""
    port = int(screen.url.rsplit(":", 1)[1].rstrip("/"))
    stalled = []
    for _ in range(3):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        stalled.append(client)
    wait_for(lambda: screen.health().screen_clients == 3)
    big = {**_prediction(0), "top_k": [{"word": f"w{i}" * 20, "score": 0.01} for i in range(100)]}
    for index in range(400):
        screen.publish_prediction({**big, "id": f"p-{index}"})
    wait_for(lambda: screen.health().screen_clients == 0)
    assert screen.feed.dropped_streams == screen.health().screen_dropped_streams == 3
    for client in stalled:
        client.close()


def test_the_banner_says_what_is_wrong():
    feed = ScreenFeed()
    feed.publish_status({"capture_error": None, "frames_in": 10, "mqtt_connected": True})
    assert feed.snapshot()["status"] == {"problems": [], "mqtt_connected": True}
    feed.publish_status({"capture_error": "device busy", "frames_in": 11, "mqtt_connected": False})
    kinds = [p["kind"] for p in feed.snapshot()["status"]["problems"]]
    assert kinds == ["broker"]  # frames still arrive: an old capture error is not shown
    feed.publish_status({"model_reloading": True, "mqtt_connected": True})
    assert [p["kind"] for p in feed.snapshot()["status"]["problems"]] == ["model"]
    feed.publish_status({"model_reload_error": "bad bundle", "mqtt_connected": True})
    [problem] = feed.snapshot()["status"]["problems"]
    assert "bad bundle" in problem["text"]


def test_a_busy_port_is_a_fault_that_heals(store):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = ScreenServer(ScreenConfig(port=port), lambda payload: handle_feedback(payload, store))
        server.start()
        try:
            error = wait_for(lambda: server.health().screen_error)
            assert f"cannot listen on 127.0.0.1:{port}" in error
            failing = server.health()
            assert failing.screen_url is None
            assert (failing.worker.state, failing.worker.last_error) == ("failing", error)
            holder.close()
            wait_for(lambda: server.health().screen_url, 10)
            healed = server.health()
            assert (healed.screen_url, healed.screen_clients, healed.screen_error) == (
                f"http://127.0.0.1:{port}/",
                0,
                None,
            )
            assert healed.worker.state == "running" and healed.worker.restarts >= 1
            assert (healed.screen_self_view_fps, healed.screen_self_view_frames) == (0.0, 0)  # none watches
        finally:
            server.stop()


def _raw_get(server: ScreenServer, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the first bytes of a GET (an event stream never ends: read a little)."""
    port = int(server.url.rsplit(":", 1)[1].rstrip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read() if response.getheader("Content-Length") else response.read1(4096)
    connection.close()
    return response.status, dict(response.getheaders()), body


def _token_screen(store: Store, tmp_path: Path, **settings: Any) -> ScreenServer:
    token_file = tmp_path / "screen-token"
    token_file.write_text("s3cret-token\n", encoding="utf-8")
    server = _serve(store, token_file=str(token_file), **settings)
    server.publish_prediction(_prediction(0, "drink"))
    return server


def test_with_a_token_every_read_and_change_needs_it(store, tmp_path):
    server = _token_screen(store, tmp_path, host="0.0.0.0")  # beyond loopback, as on a kiosk's network
    try:
        for path in ("/api/state", "/api/events", "/api/self-view"):
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Cookie": "asl-edge-session=1.abc"}):
                status, _, body = _raw_get(server, path, **headers)
                assert status == 401, (path, headers)
                refusal = json.loads(body)
                assert set(refusal) == {"status", "reason"} and "token" in refusal["reason"]
                assert b"drink" not in body and b"p-0" not in body  # nothing of the signer's words
        status, _, body = _raw_get(server, "/api/state", Authorization="Bearer s3cret-token")
        assert status == 200 and json.loads(body)["prediction"]["word"] == "drink"
        assert _raw_get(server, "/")[0] == 200  # the page itself holds nothing of the state
        assert _answer(server, prediction_id="p-0", correct=True)[0] == 401
        body = b'{"prediction_id": "p-0", "correct": true}'
        assert _request(server, "POST", "/api/feedback", body, Authorization="Bearer nope")[0] == 401
        assert _rows(store) == 0
        status, ack = _request(server, "POST", "/api/feedback", body, Authorization="Bearer s3cret-token")
        assert (status, ack["status"]) == (200, "stored")
    finally:
        server.stop()


def test_the_page_trades_its_token_for_a_session_cookie(store, tmp_path):
    server = _token_screen(store, tmp_path)
    try:
        port = int(server.url.rsplit(":", 1)[1].rstrip("/"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/api/session", body=b"{}", headers={"Content-Type": "application/json"})
        refused = connection.getresponse()
        assert (refused.status, refused.getheader("Set-Cookie")) == (401, None)
        refused.read()
        connection.request(
            "POST",
            "/api/session",
            body=b"{}",
            headers={"Content-Type": "application/json", "Authorization": "Bearer s3cret-token"},
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        cookie = response.getheader("Set-Cookie")
        assert response.status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        session = cookie.split(";")[0]
        status, _, body = _raw_get(server, "/api/state", Cookie=session)
        assert status == 200 and json.loads(body)["prediction"]["id"] == "p-0"
        status, headers, body = _raw_get(server, "/api/events", Cookie=session)
        assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
        name, value = session.split("=", 1)
        expires, mac = value.split(".")
        other = "1" if mac[-1] == "0" else "0"  # one hex digit of the MAC changed
        for forged in (f"{int(expires) + 3600}.{mac}", f"{expires}.{mac[:-1]}{other}", expires):
            assert _raw_get(server, "/api/state", Cookie=f"{name}={forged}")[0] == 401
        stale = server.new_session(now=time.time() - 2 * SESSION_S)
        assert _raw_get(server, "/api/state", Cookie=f"{name}={stale}")[0] == 401
        body = b'{"prediction_id": "p-0", "correct": true}'
        assert _request(server, "POST", "/api/feedback", body, Cookie=session)[0] == 401  # changes: the token
    finally:
        server.stop()


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}])
def test_reads_from_another_origin_are_refused(screen, headers):
    screen.publish_prediction(_prediction(0, "drink"))
    for path in ("/api/state", "/api/events", "/api/self-view"):
        status, _, body = _raw_get(screen, path, **headers)
        assert status == 403 and b"drink" not in body
    assert _raw_get(screen, "/api/state", **{"Sec-Fetch-Site": "same-origin"})[0] == 200


def test_the_self_view_encodes_only_while_a_page_watches_and_streams_mirrored_jpegs(screen):
    view = screen.self_view
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    frame[:, :320] = (0, 0, 255)  # the left half red: mirrored, it shows on the right
    view.offer(frame, (80, 0, 480, 480))
    time.sleep(0.2)  # nobody watches: the offer is dropped, nothing is encoded
    assert view.frames_encoded == 0 and screen.health().screen_self_view_fps == 0.0
    port = int(screen.url.rsplit(":", 1)[1].rstrip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/api/self-view")
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
    wait_for(lambda: view.viewers == 1, what="the page to count as watching")
    jpegs = []
    while len(jpegs) < 3:
        time.sleep(view.interval_s)  # frames come no faster than the self-view's rate
        view.offer(frame, (80, 0, 480, 480))
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += response.fp.read(1)
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        jpegs.append(response.fp.read(length))
        response.fp.read(2)
    response.close()
    connection.close()
    image = cv2.imdecode(np.frombuffer(jpegs[-1], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)  # 320 px wide, the frame's aspect
    assert image[120, 300, 2] > 200 and image[120, 20, 2] < 50  # mirrored: red on the right
    assert image[120, 40, 1] > 120 and image[120, 279, 1] > 120  # the crop outlined, mirrored: x 40..279
    wait_for(lambda: view.viewers == 0, what="the page to stop counting as watching")
    encoded = view.frames_encoded
    view.offer(frame, None)
    time.sleep(0.2)
    assert view.frames_encoded == encoded  # nobody watches again: nothing more is encoded


def test_listening_beyond_loopback_requires_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ScreenError, match=r"screen\.host: 0\.0\.0\.0 is not loopback"):
        read_token(ScreenConfig(host="0.0.0.0"))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "screen-token").write_text("from-systemd\n", encoding="utf-8")
    assert read_token(ScreenConfig(host="0.0.0.0")) == "from-systemd"
    (tmp_path / "screen-token").write_text("", encoding="utf-8")  # the installer's empty placeholder
    assert read_token(ScreenConfig()) is None


def test_check_config_refuses_a_screen_beyond_loopback_without_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "config.toml"
    config.write_text('[screen]\nhost = "0.0.0.0"\n', encoding="utf-8")
    check = subprocess.run(
        [sys.executable, "-m", "asl_edge", "check-config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode != 0
    assert "screen.host: 0.0.0.0 is not loopback, so the screen needs a token" in check.stdout + check.stderr


def test_screen_config_is_validated():
    config, problems = parse_config({"screen": {"host": "::1", "port": 0, "enabled": False}})
    assert problems == [] and (config.screen.host, config.screen.port) == ("::1", 0)
    _, problems = parse_config({"screen": {"host": "kiosk.local", "port": 70000}})
    assert problems == [
        "screen.host: 'kiosk.local' is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)",
        "screen.port: 70000 is above the maximum 65535",
    ]


def _launcher(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "asl_edge", "screen", "--config", str(config), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_kiosk_launcher_waits_for_the_page_then_opens_it(store, tmp_path):
    require_chromium()
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f"[screen]\nport = {port}\n", encoding="utf-8")
    headless = ("--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom")
    launcher = _launcher(config, "--browser", str(CHROMIUM), "--wait-s", "60", "--", *headless)
    assert launcher.stdout is not None
    waiting = launcher.stdout.readline()  # the daemon is still loading its model: nothing answers
    assert waiting == f"waiting for the screen at http://127.0.0.1:{port}/ ...\n"
    assert launcher.poll() is None
    server = ScreenServer(ScreenConfig(port=port), lambda payload: handle_feedback(payload, store))
    server.set_model(("book",), "m")
    server.start()
    try:
        out, err = launcher.communicate(timeout=60)
    finally:
        server.stop()
    assert launcher.returncode == 0, err
    assert '<html lang="en">' in out and 'data-testid="word"' in out


def test_the_kiosk_launcher_gives_up_when_no_page_answers(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f"[screen]\nport = {free_port()}\n", encoding="utf-8")
    launcher = _launcher(config, "--browser", sys.executable, "--wait-s", "1")
    _, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 1
    assert "did not answer in 1 s (is asl-edge run up?)" in err
    config.write_text("[screen]\nport = 0\n", encoding="utf-8")
    launcher = _launcher(config, "--browser", sys.executable)
    _, err = launcher.communicate(timeout=30)
    assert (launcher.returncode, err.strip()) == (
        2,
        "asl-edge: error: [screen] port = 0 picks a new port at each start: set a fixed port for the kiosk",
    )

"""What the kiosk shows the signer while they sign: the state machine alone, and a real daemon whose
camera goes dark and light again (the page's events read over HTTP, as the page reads them)."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import numpy as np
import pytest

from edge.demo.signer import Video
from edge.demo.synth import sentence_rng
from edge.runtime.activity import (
    IDLE,
    NO_CAMERA,
    READING,
    SIGNING,
    SIGNING_AFTER_S,
    TOO_DARK,
    Activity,
    ActivityState,
    luma,
)
from tests.browser import wait_for
from tests.conftest import write_video
from tests.services import free_port, running_daemon

FPS = 30.0
BRIGHT, DARK = 120.0, 10.0


def _tracker() -> tuple[Activity, list[str]]:
    seen: list[str] = []
    activity = Activity(dark_luma=40.0, dark_s=1.0, changed=lambda state: seen.append(state.state))
    return activity, seen


def test_a_sign_shows_signing_then_reading_then_idle_and_a_twitch_shows_nothing():
    activity, seen = _tracker()
    for index in range(3):  # a twitch: a sign that starts and is gone within SIGNING_AFTER_S
        activity.observe(index / FPS, 0.0, False, BRIGHT)
    activity.observe(3 / FPS, None, False, BRIGHT)
    assert seen == [] and activity.current.state == IDLE
    start = 1.0
    steps = int(SIGNING_AFTER_S * FPS) + 3
    for index in range(steps):
        activity.observe(start + index / FPS, start, False, BRIGHT)
    assert seen == [SIGNING]
    activity.observe(start + 1.0, start, True, BRIGHT)  # hands at rest: read speculatively
    activity.observe(start + 1.1, start, False, BRIGHT)  # they moved again: still signing
    activity.reading()  # the sign closed and is being read
    activity.observe(start + 1.5, None, False, BRIGHT)  # published: nobody signing
    assert seen == [SIGNING, READING, SIGNING, READING, IDLE]


def test_darkness_must_last_before_it_shows_and_light_must_return_before_it_clears():
    activity, seen = _tracker()
    t = 0.0
    for _ in range(int(0.9 * FPS)):  # 0.9 s of darkness: not yet
        activity.observe(t, None, False, DARK)
        t += 1 / FPS
    assert seen == []
    for _ in range(int(0.2 * FPS)):
        activity.observe(t, None, False, DARK)
        t += 1 / FPS
    assert seen == [TOO_DARK]
    activity.observe(t, 0.0, False, BRIGHT)  # one bright frame (a flash) does not clear it
    activity.observe(t + 0.1, None, False, DARK)
    assert seen == [TOO_DARK]
    for index in range(int(0.6 * FPS)):
        activity.observe(t + 0.2 + index / FPS, None, False, BRIGHT)
    assert seen == [TOO_DARK, IDLE]
    activity.camera_lost()
    activity.camera_lost()
    assert seen == [TOO_DARK, IDLE, NO_CAMERA]  # a state is reported once, when it changes


def test_luma_is_the_crops_mean_brightness():
    grey = np.full((224, 224, 3), 100, dtype=np.uint8)
    assert luma(grey) == pytest.approx(100.0)
    blue = np.zeros((8, 8, 3), dtype=np.uint8)
    blue[..., 0] = 255  # BGR: pure blue is dark to the eye
    assert 28 < luma(blue) < 30
    assert ActivityState(READING, 12.5).to_json() == {"state": READING, "at": 12.5}


def _activity_states(port: int, timeout_s: float) -> list[str]:
    """The activity states the page's stream carries, until darkness has come and gone."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    connection.request("GET", "/api/events")
    response = connection.getresponse()
    deadline, name, states = time.monotonic() + timeout_s, None, []
    while time.monotonic() < deadline:
        line = response.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name in ("activity", "state"):
            data = json.loads(line[6:])
            states.append(data["state"] if name == "activity" else data["activity"]["state"])
            if TOO_DARK in states and IDLE in states[states.index(TOO_DARK) :]:
                break
    connection.close()
    return states


def test_a_camera_that_goes_dark_makes_the_screen_ask_for_light_until_it_returns(tmp_path: Path):
    rng = sentence_rng(8, 0)
    video = Video.sentence(["book"], rng, (320, 240), FPS, rest_seconds=(1.0, 1.2))
    frames = list(video.render())
    dark = [(frame * 0.08).astype(np.uint8) for frame in frames[-20:]] * 4  # ~2.7 s without light
    path = tmp_path / "dark.mp4"
    write_video(path, frames + dark + frames[:45], FPS)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[source]\nuri = "file://{path}"\nloop = true\n[mqtt]\nport = {free_port()}\n'
        f'[storage]\nstate_dir = "{tmp_path / "state"}"\n[screen]\nport = {port}\ndark_s = 1.0\n',
        encoding="utf-8",
    )
    with running_daemon(config):
        wait_for(lambda: _listening(port), 60, "the screen")
        states = _activity_states(port, 30.0)
    assert TOO_DARK in states
    assert IDLE in states[states.index(TOO_DARK) + 1 :]  # the light came back: the state cleared


def _listening(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/api/state")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False

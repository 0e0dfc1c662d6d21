"""What a kiosk meets in the field, with real components: a looping video, an RTSP camera that is
killed or frozen, a disk that fills up, and systemd's readiness and watchdog."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services import (
    ROOT,
    DaemonProcess,
    Mosquitto,
    MqttSubscriber,
    free_port,
    running_daemon,
    synthetic_sentence,
)

DEVICE = "kiosk-field"


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    """One synthetic sentence (10.7 s, 4 signs) and its words."""
    folder = tmp_path_factory.mktemp("sentence")
    video = synthetic_sentence(folder)
    return video, json.loads((folder / "sentences.json").read_text())[0]["words"]


@pytest.fixture
def broker(tmp_path):
    service = Mosquitto(tmp_path).start()
    yield service
    service.stop()


class Watcher(MqttSubscriber):
    """Every message of the kiosk as (topic suffix, payload, arrival time)."""

    def __init__(self, port: int) -> None:
        prefix = f"asl/{DEVICE}/"
        super().__init__(
            port, prefix + "#", lambda m: (m.topic[len(prefix) :], json.loads(m.payload), time.monotonic())
        )
        assert self.subscribed.wait(10), "the broker did not confirm the subscription"

    def next(self, suffix: str, predicate=lambda payload: True, timeout_s: float = 30.0) -> dict:
        """The next message on ``suffix`` that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {suffix} message as expected within {timeout_s} s"
            topic, payload, _ = self.messages.get(timeout=remaining)
            if topic == suffix and predicate(payload):
                return payload

    def words(self, count: int, timeout_s: float = 60.0) -> list[tuple[str, float]]:
        return [
            (p["word"], p["confidence"])
            for p in (self.next("prediction", timeout_s=timeout_s) for _ in range(count))
        ]


def _config(tmp_path: Path, port: int, source: str, **sections: str) -> Path:
    path = tmp_path / "config.toml"
    text = (
        f'[device]\nid = "{DEVICE}"\n[source]\n{source}\n[mqtt]\nport = {port}\n'
        f'[storage]\nstate_dir = "{sections.pop("state_dir", "state")}"\n[health]\ninterval_s = 0.5\n'
        "[screen]\nport = 0\n"
    )
    path.write_text(text + "".join(sections.values()), encoding="utf-8")
    return path


def _stop(daemon: DaemonProcess) -> str:
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, err[-3000:]
    return err


def _same_signs(reference: list[tuple[str, float]], later: list[tuple[str, float]]) -> None:
    assert [w for w, _ in later] == [w for w, _ in reference]
    for (_, expected), (_, got) in zip(reference, later, strict=True):
        assert abs(got - expected) <= 0.05, (reference, later)


def test_a_looping_video_gives_the_same_words_and_confidences_on_every_pass(sentence, broker, tmp_path):
    video, words = sentence
    watcher = Watcher(broker.port)
    config = _config(tmp_path, broker.port, f'uri = "file://{video}"\nloop = true\nrealtime = false')
    with running_daemon(config) as daemon:
        passes = [watcher.words(len(words)) for _ in range(3)]
        health = watcher.next("health", lambda h: h["capture_epoch"] >= 2)
        _stop(daemon)
    watcher.close()
    assert [w for w, _ in passes[0]] == words
    _same_signs(passes[0], passes[1])
    _same_signs(passes[0], passes[2])
    assert health["signs_cut"] == 0  # the video rests after its last sign: nothing to cut


class RtspCamera:
    """tests/rtsp_camera.py in its own process, so that it can be killed, frozen and restarted."""

    def __init__(self, video: Path, port: int) -> None:
        self.video, self.port = video, port
        self.uri = f"rtsp://127.0.0.1:{port}/cam"
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start serving; returns when it listens (monotonic time)."""
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "rtsp_camera.py"), str(self.video), str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        return time.monotonic()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)


def test_an_rtsp_camera_killed_three_times_comes_back_with_the_same_words(sentence, broker, tmp_path):
    video, words = sentence
    camera = RtspCamera(video, free_port())
    camera.start()
    watcher = Watcher(broker.port)
    config = _config(tmp_path, broker.port, f'uri = "{camera.uri}"\nstall_s = 3.0')

    def down() -> None:
        """Kill the camera and wait until the daemon reports it."""
        camera.kill()
        watcher.next("health", lambda h: h["capture_error"] is not None, timeout_s=20)

    def back_after(restarted_at: float) -> float:
        """Seconds from the camera's return to frames flowing in the daemon again."""
        flowing.append(
            watcher.next("health", lambda h: h["capture_error"] is None and h["fps_in"] > 0, timeout_s=20)
        )
        return time.monotonic() - restarted_at

    flowing: list[dict] = []

    try:
        with running_daemon(config) as daemon:
            reference = watcher.words(len(words))
            reconnects = []
            # 1: killed in the middle of the second sign (the first one's word has just arrived).
            camera.kill()
            camera.start()
            watcher.next("health", lambda h: h["capture_error"] is None and h["fps_in"] > 0, timeout_s=20)
            watcher.next("prediction")
            time.sleep(1.2)
            down()
            time.sleep(1.0)
            reconnects.append(back_after(camera.start()))
            # 2: a short connection, killed before any word.
            time.sleep(1.5)
            down()
            time.sleep(2.0)
            reconnects.append(back_after(camera.start()))
            # 3: a longer outage; then a whole pass of the sentence again.
            down()
            time.sleep(4.0)
            reconnects.append(back_after(camera.start()))
            again = watcher.words(len(words))
            health = watcher.next("health")
            _stop(daemon)
    finally:
        camera.kill()
        watcher.close()
    assert [w for w, _ in reference] == words
    _same_signs(reference, again)
    assert max(reconnects) < 5.0, reconnects
    assert [h["capture_error"] for h in flowing] == [None] * 3  # cleared once frames flow again
    assert health["capture_restarts"] >= 4
    assert health["signs_cut"] >= 1  # the sign the first kill interrupted was dropped, not glued


def test_a_frozen_camera_is_noticed_within_stall_s_and_recovers(sentence, broker, tmp_path):
    video, _ = sentence
    camera = RtspCamera(video, free_port())
    camera.start()
    watcher = Watcher(broker.port)
    config = _config(tmp_path, broker.port, f'uri = "{camera.uri}"\nstall_s = 2.0')
    try:
        with running_daemon(config) as daemon:
            watcher.next("health", lambda h: h["fps_in"] > 0)
            camera.signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            stalled = watcher.next("health", lambda h: h["capture_stalls"] >= 1, timeout_s=10)
            noticed_s = time.monotonic() - frozen_at
            camera.signal(signal.SIGCONT)
            recovered = watcher.next("health", lambda h: h["capture_error"] is None and h["fps_in"] > 0)
            _stop(daemon)
    finally:
        camera.kill()
        watcher.close()
    assert "no frame for 2 s" in stalled["capture_error"]
    assert stalled["fps_in"] == 0
    # stall_s, plus up to one health interval to report it.
    assert noticed_s < 2.0 + 0.5 + 1.0, noticed_s
    assert recovered["capture_stalls"] >= 1


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs for the state directory (root only, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]
    made = subprocess.run(command, capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Take every free byte of the file system holding ``folder``."""
    filler = folder / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
    return filler


def test_a_full_disk_is_a_state_the_daemon_reports_and_recovers_from(sentence, broker, small_disk, tmp_path):
    video, words = sentence
    watcher = Watcher(broker.port)
    config = _config(
        tmp_path, broker.port, f'uri = "file://{video}"\nloop = true', state_dir=str(small_disk / "state")
    )
    with running_daemon(config) as daemon:
        watcher.next("prediction")
        filler = _fill(small_disk)
        # The next signs are still recognized and published; storing them fails and is reported,
        # and so does health.json, which could not be written either. Each shows at its own pace (a
        # health message carries the outcome of the file write before it; a write that finds a few
        # bytes freed succeeds), so the test waits for the message that reports all three.
        full = watcher.next(
            "health",
            lambda h: (
                h["predictions_unstored"] >= 1
                and h["store_error"] is not None
                and h["health_file_error"] is not None
            ),
        )
        unstored = watcher.next("prediction")
        watcher.client.publish(
            f"asl/{DEVICE}/feedback", json.dumps({"prediction_id": unstored["id"], "correct": True}), qos=1
        )
        refused = watcher.next("feedback/ack")
        assert daemon.poll() is None, "the daemon must survive a full disk"
        filler.unlink()
        healed = watcher.next(
            "health", lambda h: h["store_error"] is None and h["predictions"] > full["predictions"] + 1
        )
        stored = watcher.next("prediction")
        watcher.client.publish(
            f"asl/{DEVICE}/feedback", json.dumps({"prediction_id": stored["id"], "correct": True}), qos=1
        )
        accepted = watcher.next("feedback/ack")
        _stop(daemon)
    watcher.close()
    assert "disk is full" in full["store_error"]
    assert full["disk_free_mb"] < 0.5
    assert "No space left on device" in full["health_file_error"]
    assert refused["status"] == "rejected" and "disk" in refused["reason"]
    assert accepted["status"] == "stored"
    assert healed["health_file_error"] is None
    assert unstored["word"] in words


def test_starting_on_a_full_disk_says_so_and_recognizes_anyway(sentence, broker, small_disk, tmp_path):
    video, words = sentence
    _fill(small_disk)
    watcher = Watcher(broker.port)
    config = _config(tmp_path, broker.port, f'uri = "file://{video}"', state_dir=str(small_disk / "state"))
    with running_daemon(config) as daemon:
        health = watcher.next("health", lambda h: h["store_error"] is not None)
        first = watcher.next("prediction")
        err = _stop(daemon)
    watcher.close()
    assert "cannot open the store" in health["store_error"] and "disk is full" in health["store_error"]
    assert "disk is full" in err
    assert first["word"] == words[0]


def test_readiness_and_watchdog_follow_the_inference_loop_not_the_camera(broker, tmp_path):
    """READY=1 once the model is loaded, even with a dead camera; WATCHDOG=1 keeps coming from the
    loop while capture retries; STATUS= names the camera problem."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify.sock")
    listener.bind(address)
    listener.settimeout(20)
    config = _config(tmp_path, broker.port, 'uri = "v4l2:///dev/video-missing"\nreconnect_max_s = 0.5')
    daemon = DaemonProcess("run", "--config", str(config), env={**os.environ, "NOTIFY_SOCKET": address})
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and messages.count("WATCHDOG=1") < 6:
            messages.append(listener.recv(4096).decode())
        _stop(daemon)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        listener.close()
    assert "READY=1" in messages
    ready = messages.index("READY=1")
    assert messages[ready + 1 :].count("WATCHDOG=1") >= 5
    assert any(m.startswith("STATUS=problem: ") for m in messages[ready:]), messages

"""``asl-edge status`` against a real Mosquitto and a real daemon, and ``--check`` without a broker."""

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from asl_edge.cli import main
from tests.conftest import AUTO_CPU_BACKEND
from tests.services import ROOT, Mosquitto, running_daemon
from tests.test_health import readme_health_fields


@pytest.fixture
def broker(tmp_path):
    service = Mosquitto(tmp_path).start()
    yield service
    service.stop()


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[device]\nid = "kiosk-status"\n[source]\nuri = "test://"\nfps = 15\n[mqtt]\nport = {port}\n'
        '[storage]\nstate_dir = "state"\n[health]\ninterval_s = 0.5\n[screen]\nport = 0\n',
        encoding="utf-8",
    )
    return path


def _wait_for(path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _labels(text: str) -> list[str]:
    """What each line of ``asl-edge status`` is about: its padded label, or a health key."""
    return [line.split()[0] if line.startswith("sync_") else line[:13].strip() for line in text.splitlines()]


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `asl-edge status`") :]
    return re.findall(r"```\n(device .*?)```", section, re.S)[0]


def _status(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_of_a_running_then_stopped_daemon(broker, tmp_path, capsys):
    config = _config(tmp_path, broker.port)
    health_file = tmp_path / "state" / "health.json"
    with running_daemon(config) as daemon:
        _wait_for(health_file)
        written = json.loads(health_file.read_text())
        missing = set(written) - readme_health_fields()
        assert not missing, f"health fields missing from the README's health reference: {missing}"
        assert set(written["workers"]) >= {"capture", "mqtt", "sync", "updater", "screen"}
        assert written["workers"]["sync"] == {"state": "disabled", "restarts": 0, "last_error": None}
        assert written["interval_s"] == 0.5
        assert abs(written["time"] - time.time()) < 5
        assert written["model"].startswith("demo_i3d-")

        code, out, err = _status(capsys, "--config", str(config), "--json")
        assert (code, err) == (0, "")
        report = json.loads(out)
        assert report["state"] == "online"
        assert report["health_source"] == "broker"
        assert report["health"]["model"].startswith("demo_i3d-")
        assert report["health"]["backend"] == AUTO_CPU_BACKEND
        if AUTO_CPU_BACKEND == "openvino":  # its compiled model is kept in the state directory
            assert any((tmp_path / "state" / "openvino-cache").iterdir())
        # test:// shows a moving ball: whatever it recognized is what the store holds, no feedback.
        predictions = report["store"]["predictions"]
        assert report["health"]["predictions"] <= predictions
        assert report["store"] == {"predictions": predictions, "feedback": 0, "pending_feedback": 0}
        assert report["waited_s"] < 0.5 + 2.0

        code, out, _ = _status(capsys, "--config", str(config))
        assert code == 0
        assert "state         online" in out
        assert "from the broker" in out
        assert "0 feedback pending upload" in out
        assert _labels(out) == _labels(_readme_example()), "the README's status example is out of date"
        code, out, _ = _status(capsys, "--config", str(config), "--check")
        assert code == 0
        assert out.startswith("alive: health written")

        daemon.send_signal(signal.SIGTERM)
        _, daemon_err = daemon.communicate(timeout=15)
        assert daemon.returncode == 0, daemon_err[-2000:]

    code, out, err = _status(capsys, "--config", str(config), "--json", "--timeout-s", "5")
    report = json.loads(out)
    assert report["state"] == "offline"
    assert report["health_source"] == "health.json"
    assert report["waited_s"] < 4, "an offline kiosk sends no health: do not wait for one"
    assert code == 1
    assert err.strip() == "asl-edge: error: the kiosk is offline on the broker"

    broker.stop()
    code, out, err = _status(capsys, "--config", str(config), "--timeout-s", "2")
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "unreachable" in err and "Traceback" not in err
    assert "state         unknown" in out
    assert "from health.json" in out
    assert "0 feedback pending upload" in out


def test_check_fails_on_a_stale_or_missing_health_file(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[storage]\nstate_dir = "state"\n', encoding="utf-8")
    code, _, err = _status(capsys, "--config", str(config), "--check")
    assert code == 1
    assert "health.json: missing" in err
    (tmp_path / "state").mkdir()
    health = tmp_path / "state" / "health.json"
    health.write_text(json.dumps({"time": time.time() - 31, "interval_s": 10.0}))
    code, _, err = _status(capsys, "--config", str(config), "--check")
    assert code == 1
    assert "more than 30 s" in err
    health.write_text(json.dumps({"time": time.time() - 29, "interval_s": 10.0}))
    assert _status(capsys, "--config", str(config), "--check")[0] == 0


def test_status_connects_with_the_daemons_credentials(tmp_path, capsys, monkeypatch):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk", "s3cret"], check=True)
    service = Mosquitto(tmp_path, extra=f"password_file {passwords}\n").start()
    try:
        config = _config(tmp_path, service.port)
        config.write_text(config.read_text().replace("[mqtt]\n", '[mqtt]\nusername = "kiosk"\n'))
        code, _, err = _status(capsys, "--config", str(config), "--timeout-s", "1")
        assert code == 1
        assert "refused the connection: Not authorized" in err
        (tmp_path / "credentials").mkdir()
        (tmp_path / "credentials" / "mqtt-password").write_text("s3cret\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
        code, out, err = _status(capsys, "--config", str(config), "--timeout-s", "1", "--json")
        assert code == 1
        assert json.loads(out)["broker_error"] is None
        assert "no retained status on asl/kiosk-status/status" in err
    finally:
        service.stop()

"""``asl-edge doctor`` against real parts: a Mosquitto broker, a SeaweedFS bucket and release
channel, a video file as the camera, the demo bundle; and the same kiosk with the broker down, the
bucket missing, a camera that is not there and a channel signed by a key it does not trust."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asl_edge.cli import main
from edge.core.bundle import demo_bundle_path
from tests.conftest import moving_blob_frames, write_video
from tests.services import Mosquitto, SeaweedFS, free_port

PARTS = ["config", "model", "camera", "broker", "s3", "channel", "disk", "clock"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    service = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    service.client().create_bucket(Bucket="fleet")
    service.client().create_bucket(Bucket="releases")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    service = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def published(s3, tmp_path_factory):
    """The demo bundle published as release 1 of s3://releases/stable; the key folders of its
    publisher (``trusted``) and of someone else (``stranger``)."""
    folder = tmp_path_factory.mktemp("keys")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("trusted", "stranger"):
            assert main(["keygen", "--out", str(folder / name)]) == 0
        publish = ["publish", str(demo_bundle_path()), "s3://releases/stable", "--version", "1"]
        key = ["--key", str(folder / "trusted" / "asl-edge.key"), "--endpoint-url", s3.endpoint_url]
        assert main([*publish, *key]) == 0
    return folder


def _config(folder: Path, camera: str, mqtt_port: int, s3: SeaweedFS, bucket: str, public_key: Path) -> Path:
    credentials = s3.write_credentials(folder / "s3-credentials")
    path = folder / "config.toml"
    path.write_text(
        f'[device]\nid = "kiosk-doc"\n[model]\nbackend = "onnxruntime"\n[source]\nuri = "{camera}"\n'
        f"reconnect_max_s = 0.2\n[mqtt]\nport = {mqtt_port}\n"
        f'[storage]\nstate_dir = "state"\nmax_db_mb = 50\n'
        f'[sync]\nbucket = "{bucket}"\nendpoint_url = "{s3.endpoint_url}"\n'
        f'credentials_file = "{credentials}"\n'
        f'[update]\nchannel = "s3://releases/stable"\npublic_key = "{public_key}"\n',
        encoding="utf-8",
    )
    return path


def _doctor(config: Path, capsys) -> tuple[int, dict[str, str], str]:
    """Exit code, each part's line (keyed by its name), and the summary line."""
    code = main(["doctor", "--config", str(config), "--timeout-s", "10"])
    lines = capsys.readouterr().out.splitlines()
    parts = {line.split()[0]: line for line in lines[:-1]}
    assert list(parts) == PARTS, lines
    return code, parts, lines[-1]


def test_a_kiosk_whose_parts_all_work_passes(s3, broker, published, tmp_path, capsys):
    video = write_video(tmp_path / "camera.mp4", moving_blob_frames(12))
    config = _config(
        tmp_path, f"file://{video}", broker.port, s3, "fleet", published / "trusted" / "asl-edge.pub"
    )
    code, parts, summary = _doctor(config, capsys)
    assert code == 0, parts
    assert all(re.match(rf"{name}\s+ok: ", line) for name, line in parts.items()), parts
    assert re.search(r"model\s+ok: demo_i3d-\w+ on onnxruntime: one inference in \d+ ms", parts["model"])
    assert "5 frames of 320x240" in parts["camera"]
    assert f"127.0.0.1:{broker.port} accepted the connection" in parts["broker"]
    assert "a probe object was written and deleted" in parts["s3"]
    assert "points to release 1 (sequence 1, model demo_i3d-" in parts["channel"]
    assert "from the S3 server's clock" in parts["clock"]
    assert summary == "doctor: every configured part works (8 ok)"
    listing = s3.client().list_objects_v2(Bucket="fleet")
    assert listing.get("KeyCount", 0) == 0, "the probe object is left in the bucket"
    assert not (tmp_path / "state").exists(), "doctor wrote into the state directory"


def test_the_broken_parts_fail_by_name_with_their_fix(s3, published, tmp_path, capsys):
    config = _config(
        tmp_path,
        "v4l2:///dev/video-missing",
        free_port(),
        s3,
        "no-such-bucket",
        published / "stranger" / "asl-edge.pub",
    )
    code, parts, summary = _doctor(config, capsys)
    assert code == 1
    failed = [name for name, line in parts.items() if re.match(rf"{name}\s+FAIL: ", line)]
    assert failed == ["camera", "broker", "s3", "channel"], parts
    assert "v4l2:///dev/video-missing: 0 frames" in parts["camera"]
    assert "fix: check the camera with 'ls /dev/video*'" in parts["camera"]
    assert "connection refused by 127.0.0.1" in parts["broker"] and "fix: start the broker" in parts["broker"]
    assert "s3://no-such-bucket/asl-feedback (sync): the bucket does not exist" in parts["s3"]
    assert "which is not trusted" in parts["channel"]
    assert "fix: copy the publisher's asl-edge.pub" in parts["channel"]
    assert summary == "doctor: 4 of 8 parts failed: camera, broker, s3, channel"


def test_unconfigured_parts_are_skipped_and_a_refused_config_stops_at_once(broker, tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[model]\nbackend = "onnxruntime"\n[mqtt]\nport = {broker.port}\n[storage]\nstate_dir = "state"\n',
        encoding="utf-8",
    )
    code, parts, summary = _doctor(config, capsys)
    assert code == 0, parts
    assert parts["s3"] == "s3      skipped (not configured)"
    assert parts["channel"] == "channel skipped (not configured)"
    assert summary == "doctor: every configured part works (6 ok)"
    config.write_text("[source]\nfps = 0\n", encoding="utf-8")
    assert main(["doctor", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "config  FAIL: source.fps: 0 is below the minimum 1\n"
    assert "nothing else was tried" in captured.err

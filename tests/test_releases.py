"""Signed model releases against a real SeaweedFS and Mosquitto: keys, publishing, a running
daemon that adopts, refuses and rolls back releases, kills during a download, offline restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from asl_edge.cli import main
from edge.core.bundle import CHECKPOINT_FILE, DEMO_BUNDLE, LABELS_FILE, MODEL_FILE, sha256_of, update_manifest
from edge.core.config import load_config, update_endpoint_url
from edge.runtime.release_keys import load_private_key
from edge.runtime.releases import (
    POINTER_FILE,
    ChannelPointer,
    ReleaseError,
    ReleaseManifest,
    ReleaseRefused,
    check_name,
    load_public_keys,
    release_key,
    sign_document,
)
from edge.runtime.store import DB_FILE
from tests.browser import wait_for
from tests.conftest import AUTO_CPU_BACKEND
from tests.services import DaemonProcess, Mosquitto, MqttSubscriber, SeaweedFS, SlowLink, running_daemon

BUCKET = "models"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    service = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    service.client().create_bucket(Bucket=BUCKET)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    service = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keys") / "trusted"
    assert main(["keygen", "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def rogue_keys(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keys") / "rogue"
    assert main(["keygen", "--out", str(folder)]) == 0
    return folder


@pytest.fixture
def aws_chain(s3, monkeypatch):
    """The publisher's credentials come from the standard AWS chain (here its environment)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _publish(s3: SeaweedFS, channel: str, bundle: Path, version: str, keys: Path, *extra: str) -> int:
    return main(
        [
            "publish",
            str(bundle),
            channel,
            "--version",
            version,
            "--key",
            str(keys / "asl-edge.key"),
            "--endpoint-url",
            s3.endpoint_url,
            *extra,
        ]
    )


def _promote(s3: SeaweedFS, channel: str, version: str, keys: Path) -> int:
    return main(
        [
            "publish",
            "--promote",
            version,
            channel,
            "--key",
            str(keys / "asl-edge.key"),
            "--endpoint-url",
            s3.endpoint_url,
        ]
    )


def _keys_under(s3: SeaweedFS, prefix: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _demo_copy(folder: Path, model_id: str) -> Path:
    """The demo bundle under another model id, so that each release is recognisable."""
    bundle = shutil.copytree(DEMO_BUNDLE, folder)
    update_manifest(bundle, {}, {"model_id": model_id})
    return bundle


def test_the_update_section_is_checked_whole(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[update]\nchannel = "s3://models/kiosks"\n', encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    assert "update.public_key: set it" in capsys.readouterr().out
    path.write_text(
        '[update]\nchannel = "http://models/kiosks"\npublic_key = 3\ninterval_s = 0\n', encoding="utf-8"
    )
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().out.splitlines() == [
        "update.channel: 'http://models/kiosks' must start with s3://",
        "update.public_key: expected a string or a list of strings, got 3",
        "update.interval_s: 0.0 is below the minimum 0.1",
    ]
    path.write_text(
        '[sync]\nendpoint_url = "http://127.0.0.1:8333"\n'
        '[update]\nchannel = "s3://models/kiosks"\npublic_key = ["old.pub", "/etc/asl-edge/new.pub"]\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.update.public_key == (str(tmp_path / "old.pub"), "/etc/asl-edge/new.pub")
    assert update_endpoint_url(config) == "http://127.0.0.1:8333"
    assert main(["run", "--config", str(path)]) == 2  # refused before anything starts
    assert f"update.public_key: cannot read {tmp_path / 'old.pub'}" in capsys.readouterr().err


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites_one(tmp_path, capsys):
    folder = tmp_path / "keys"
    assert main(["keygen", "--out", str(folder)]) == 0
    private, public = folder / "asl-edge.key", folder / "asl-edge.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    [key_id] = load_public_keys([str(public)])
    assert f"key id {key_id}" in capsys.readouterr().out
    before = private.read_bytes()
    assert main(["keygen", "--out", str(folder)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert private.read_bytes() == before
    private.chmod(0o640)
    with pytest.raises(ReleaseError, match="must not be accessible by group or others"):
        load_private_key(private)


@pytest.mark.parametrize("name", ["..", "../1.0", "a/b", ".hidden", "", "1.0 beta", "v" * 65, "1\n"])
def test_versions_and_file_names_that_could_escape_a_prefix_are_refused(name):
    with pytest.raises(ReleaseError, match="must be 1-64 ASCII letters"):
        check_name(name, "version")


def test_a_signature_covers_every_field_and_only_trusted_keys_verify(keys, rogue_keys):
    trusted = load_public_keys([str(keys / "asl-edge.pub")])
    manifest = ReleaseManifest("1.0.0", "2026-12-02T10:00:00Z", "m", ())
    document = {**manifest.document(), "files": [{"path": "model.onnx", "size": 3, "sha256": "a" * 64}]}
    signed = sign_document(document, load_private_key(keys / "asl-edge.key"))
    assert ReleaseManifest.verify(signed, trusted, "1.0.0").files[0].size == 3
    with pytest.raises(ReleaseRefused, match=r"is for version '1\.0\.0'"):
        ReleaseManifest.verify(signed, trusted, "2.0.0")
    tampered = json.loads(signed)
    tampered["files"][0]["size"] = 4
    with pytest.raises(ReleaseRefused, match="bad signature"):
        ReleaseManifest.verify(json.dumps(tampered).encode(), trusted, "1.0.0")
    unsigned = json.loads(signed)
    del unsigned["signature"]
    with pytest.raises(ReleaseRefused, match="is not signed"):
        ReleaseManifest.verify(json.dumps(unsigned).encode(), trusted, "1.0.0")
    rogue = sign_document(document, load_private_key(rogue_keys / "asl-edge.key"))
    with pytest.raises(ReleaseRefused, match="which is not trusted"):
        ReleaseManifest.verify(rogue, trusted, "1.0.0")
    both = load_public_keys([str(keys / "asl-edge.pub"), str(rogue_keys / "asl-edge.pub")])
    assert ReleaseManifest.verify(rogue, both, "1.0.0").version == "1.0.0", "a key rotation trusts both"
    escaping = sign_document(
        {**document, "files": [{"path": "../x", "size": 1, "sha256": "a" * 64}]},
        load_private_key(keys / "asl-edge.key"),
    )
    with pytest.raises(ReleaseRefused, match="must be 1-64 ASCII"):
        ReleaseManifest.verify(escaping, trusted, "1.0.0")


def test_publish_refuses_a_fine_tuned_bundle_until_evaluate_passed_exactly_it(
    s3, keys, aws_chain, tmp_path, capsys
):
    channel = f"s3://{BUCKET}/gated"
    tuned = _demo_copy(tmp_path / "tuned", "demo-ft")
    update_manifest(tuned, {}, {"lineage": {"parent_model_id": "demo_i3d-bb6825e7"}})
    assert _publish(s3, channel, tuned, "1.0.0", keys) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "refusing to publish" in error and "has not passed 'asl-edge evaluate" in error
    passed = {"verdict": "PASS", "model_sha256": sha256_of(tuned / MODEL_FILE)}
    passed["labels_sha256"] = sha256_of(tuned / LABELS_FILE)
    for gate, why in (
        ({**passed, "verdict": "INCONCLUSIVE"}, "recorded gate INCONCLUSIVE, not PASS"),
        ({**passed, "model_sha256": "0" * 64}, "model.onnx changed after asl-edge evaluate recorded PASS"),
    ):
        update_manifest(tuned, {}, {"gate": gate})
        assert _publish(s3, channel, tuned, "1.0.0", keys) == 2
        assert why in capsys.readouterr().err
    assert _keys_under(s3, "gated/") == [], "nothing of a refused release is uploaded"

    update_manifest(tuned, {}, {"gate": passed})
    assert _publish(s3, channel, tuned, "1.0.0", keys) == 0
    assert "forced" not in capsys.readouterr().out
    trusted = load_public_keys([str(keys / "asl-edge.pub")])
    release = s3.client().get_object(Bucket=BUCKET, Key="gated/" + release_key("1.0.0", "release.json"))
    assert ReleaseManifest.verify(release["Body"].read(), trusted, "1.0.0").forced == ""

    ungated = _demo_copy(tmp_path / "ungated", "demo-ft-2")
    update_manifest(ungated, {}, {"lineage": {"parent_model_id": "demo_i3d-bb6825e7"}})
    assert _publish(s3, channel, ungated, "2.0.0", keys, "--force") == 0
    assert "forced past the gate" in capsys.readouterr().out
    release = s3.client().get_object(Bucket=BUCKET, Key="gated/" + release_key("2.0.0", "release.json"))
    assert "has not passed" in ReleaseManifest.verify(release["Body"].read(), trusted, "2.0.0").forced


def test_publish_uploads_the_release_under_its_version_then_moves_the_pointer(
    s3, keys, aws_chain, tmp_path, capsys
):
    channel = f"s3://{BUCKET}/publish-test"
    assert _publish(s3, channel, DEMO_BUNDLE, "1.0.0", keys) == 0
    out = capsys.readouterr().out
    assert f"{channel} now points to 1.0.0 (sequence 1)" in out
    keys_now = _keys_under(s3, "publish-test/")
    released = sorted(name for name in os.listdir(DEMO_BUNDLE) if name != CHECKPOINT_FILE)
    assert len(released) == len(os.listdir(DEMO_BUNDLE)) - 1  # the training weights stay behind
    assert keys_now == [
        "publish-test/current.json",
        *[f"publish-test/releases/1.0.0/bundle/{name}" for name in released],
        "publish-test/releases/1.0.0/release.json",
    ]
    client = s3.client()
    trusted = load_public_keys([str(keys / "asl-edge.pub")])
    release = client.get_object(Bucket=BUCKET, Key="publish-test/" + release_key("1.0.0", "release.json"))
    manifest = ReleaseManifest.verify(release["Body"].read(), trusted, "1.0.0")
    assert {f.path: f.sha256 for f in manifest.files} == {
        name: sha256_of(DEMO_BUNDLE / name) for name in released
    }
    assert manifest.forced == ""
    pointer = client.get_object(Bucket=BUCKET, Key=f"publish-test/{POINTER_FILE}")["Body"].read()
    assert ChannelPointer.verify(pointer, trusted).version == "1.0.0"

    assert _publish(s3, channel, DEMO_BUNDLE, "1.0.0", keys) == 2
    assert "version 1.0.0 already exists" in capsys.readouterr().err
    broken = shutil.copytree(DEMO_BUNDLE, tmp_path / "broken")
    (broken / MODEL_FILE).write_bytes(b"not a model")
    update_manifest(broken, {MODEL_FILE: sha256_of(broken / MODEL_FILE)}, {})
    assert _publish(s3, channel, broken, "1.0.1", keys) == 2
    assert "ONNX Runtime cannot load the model" in capsys.readouterr().err
    assert _publish(s3, channel, DEMO_BUNDLE, "../1.0.2", keys) == 2
    assert "must be 1-64 ASCII letters" in capsys.readouterr().err
    assert _keys_under(s3, "publish-test/") == keys_now, "nothing of a refused release is uploaded"

    assert _publish(s3, channel, DEMO_BUNDLE, "1.1.0", keys, "--no-promote") == 0
    assert "still points where it did" in capsys.readouterr().out
    assert _promote(s3, channel, "1.1.0", keys) == 0
    assert _promote(s3, channel, "1.0.0", keys) == 0
    assert f"{channel} now points to 1.0.0 (sequence 3)" in capsys.readouterr().out
    assert _promote(s3, channel, "9.9.9", keys) == 2
    assert "has no release.json" in capsys.readouterr().err


class Health(MqttSubscriber):
    """The kiosk's health messages and the model of each prediction, in arrival order."""

    def __init__(self, port: int, prefix: str) -> None:
        super().__init__(port, f"{prefix}/#", lambda m: (m.topic.rsplit("/", 1)[1], json.loads(m.payload)))

    def until(self, kind: str, accept, timeout_s: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            topic, payload = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if topic == kind and accept(payload):
                return payload

    def forget(self) -> None:
        """Drop what a stopped daemon sent, up to its last word (the offline status), so that the
        next one's messages are read alone."""
        self.until("status", lambda status: status["state"] == "offline", timeout_s=15)
        while not self.messages.empty():
            self.messages.get_nowait()


def _kiosk_config(
    folder: Path, s3: SeaweedFS, port: int, channel: str, keys: Path, endpoint: str = ""
) -> Path:
    s3.write_credentials(folder / "s3-credentials")
    path = folder / "config.toml"
    path.write_text(
        f'[device]\nid = "kiosk-releases"\n[model]\nbundle = "{DEMO_BUNDLE}"\nwatch_s = 0\n'
        '[source]\nuri = "test://"\nfps = 15\n[segmenter]\nmax_sign_s = 1.0\n'
        f'[mqtt]\nport = {port}\n[storage]\nstate_dir = "state"\n[health]\ninterval_s = 1.0\n'
        f'[sync]\nendpoint_url = "{s3.endpoint_url}"\ncredentials_file = "s3-credentials"\n'
        f'[update]\nchannel = "{channel}"\npublic_key = "{keys / "asl-edge.pub"}"\ninterval_s = 1.0\n'
        + (f'endpoint_url = "{endpoint}"\n' if endpoint else ""),
        encoding="utf-8",
    )
    return path


def _stored_model_version(state: Path, prediction_id: str) -> str:
    """The release version the kiosk's store recorded for a prediction (what its feedback syncs),
    once the feedback desk's thread has stored it (it is published first)."""

    def stored() -> list[tuple[str]]:
        db = sqlite3.connect(f"{(state / DB_FILE).as_uri()}?mode=ro", uri=True)
        try:
            return db.execute(
                "SELECT model_version FROM predictions WHERE id = ?", (prediction_id,)
            ).fetchall()
        finally:
            db.close()

    [(version,)] = wait_for(stored, 10, f"prediction {prediction_id} in the store")
    return version


def _stop(daemon: DaemonProcess) -> str:
    daemon.send_signal(signal.SIGTERM)
    _, log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log[-3000:]
    return log


def test_a_running_daemon_adopts_refuses_and_rolls_back_releases_and_restarts_offline_on_the_last(
    s3, broker, keys, rogue_keys, aws_chain, tiny_bundle, tmp_path, capsys
):
    channel = f"s3://{BUCKET}/kiosks"
    tiny_id = json.loads((tiny_bundle / "manifest.json").read_text())["model_id"]
    demo_id = json.loads((DEMO_BUNDLE / "manifest.json").read_text())["model_id"]
    health = Health(broker.port, "asl/kiosk-releases")
    config = _kiosk_config(tmp_path, s3, broker.port, channel, keys)
    with running_daemon(config) as daemon:
        first = health.until("health", lambda h: True)
        assert (first["model"], first["model_version"], first["model_update_error"]) == (demo_id, "", None)

        assert _publish(s3, channel, tiny_bundle, "1.0.0", keys) == 0
        adopted = health.until("health", lambda h: h["model_version"] == "1.0.0")
        assert (adopted["model"], adopted["model_update_error"]) == (tiny_id, None)
        prediction = health.until("prediction", lambda p: p["model"] == tiny_id)
        assert prediction["word"]
        assert _stored_model_version(tmp_path / "state", prediction["id"]) == "1.0.0"
        daemon.send_signal(signal.SIGHUP)  # a reload keeps the release and its version
        time.sleep(0.5)
        reloaded = health.until("health", lambda h: True)
        assert (reloaded["model"], reloaded["model_version"], reloaded["model_reload_error"]) == (
            tiny_id,
            "1.0.0",
            None,
        )
        assert json.loads((tmp_path / "state" / "health.json").read_text())["model_version"] == "1.0.0"
        assert main(["status", "--config", str(config), "--timeout-s", "5"]) == 0
        out = capsys.readouterr().out
        assert f"model         {tiny_id} release 1.0.0 on {AUTO_CPU_BACKEND}" in out
        assert "model update  ok" in out

        # A file altered in the bucket after signing.
        assert (
            _publish(s3, channel, _demo_copy(tmp_path / "b2", "demo-2"), "2.0.0", keys, "--no-promote") == 0
        )
        labels = tmp_path / "b2" / "labels.txt"
        altered = labels.read_bytes().replace(b"\n", b" ", 1)
        s3.client().put_object(Bucket=BUCKET, Key="kiosks/releases/2.0.0/bundle/labels.txt", Body=altered)
        assert _promote(s3, channel, "2.0.0", keys) == 0
        refused = health.until("health", lambda h: h["model_update_error"] is not None)
        assert refused["model_update_error"].startswith("release 2.0.0 refused: ")
        assert "labels.txt: sha256" in refused["model_update_error"]
        assert (refused["model"], refused["model_version"]) == (tiny_id, "1.0.0")

        # A release signed by a key the kiosk does not trust.
        assert _publish(s3, channel, _demo_copy(tmp_path / "b3", "demo-3"), "3.0.0", rogue_keys) == 0
        refused = health.until("health", lambda h: "3.0.0" in (h["model_update_error"] or ""))
        assert "not trusted" in refused["model_update_error"]
        assert (refused["model"], refused["model_version"]) == (tiny_id, "1.0.0")
        assert health.until("prediction", lambda p: True)["model"] == tiny_id

        assert _publish(s3, channel, _demo_copy(tmp_path / "b4", "demo-4"), "4.0.0", keys) == 0
        adopted = health.until("health", lambda h: h["model_version"] == "4.0.0")
        assert (adopted["model"], adopted["model_update_error"]) == ("demo-4", None)
        pointer_to_4 = s3.client().get_object(Bucket=BUCKET, Key="kiosks/current.json")["Body"].read()

        # Rollback: the previous release is still on the device.
        assert _promote(s3, channel, "1.0.0", keys) == 0
        adopted = health.until("health", lambda h: h["model_version"] == "1.0.0")
        assert (adopted["model"], adopted["model_update_error"]) == (tiny_id, None)
        assert health.until("prediction", lambda p: True)["model"] == tiny_id

        # A replayed pointer (validly signed, but older than the one adopted) cannot downgrade.
        s3.client().put_object(Bucket=BUCKET, Key="kiosks/current.json", Body=pointer_to_4)
        refused = health.until("health", lambda h: h["model_update_error"] is not None)
        assert refused["model_update_error"].startswith("release 4.0.0 refused: the pointer's sequence ")
        assert "(a replayed pointer?)" in refused["model_update_error"]
        assert (refused["model"], refused["model_version"]) == (tiny_id, "1.0.0")
        log = _stop(daemon)
    health.forget()
    assert "release 1.0.0: from the local copy" in log
    releases = tmp_path / "state" / "releases"
    assert sorted(os.listdir(releases)) == [".channel.json", "1.0.0", "4.0.0"]

    # Offline: the channel's endpoint is unreachable; the kiosk starts on the last verified release.
    offline = _kiosk_config(tmp_path, s3, broker.port, channel, keys, endpoint="http://127.0.0.1:9")
    with running_daemon(offline) as daemon:
        first = health.until("health", lambda h: h["model_update_error"] is not None)
        assert (first["model"], first["model_version"]) == (tiny_id, "1.0.0")
        assert "cannot read current.json" in first["model_update_error"]
        assert health.until("prediction", lambda p: True)["model"] == tiny_id
        _stop(daemon)

    # A release damaged on the device is not run: the one before it is.
    labels = releases / "1.0.0" / "bundle" / "labels.txt"
    labels.write_bytes(labels.read_bytes().replace(b"gloss1", b"glossX"))
    with running_daemon(offline) as daemon:
        first = health.until("health", lambda h: h["model_version"] == "4.0.0")
        assert first["model"] == "demo-4"
        assert "release 1.0.0 (installed) not used: labels.txt: sha256" in first["model_update_error"]
        _stop(daemon)
    health.close()


def _wait_for_bytes(path: Path, at_least: int, daemon: DaemonProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and path.stat().st_size >= at_least):
        assert daemon.poll() is None, daemon.log()[-3000:]
        assert time.monotonic() < deadline, f"{path} never reached {at_least} bytes"
        time.sleep(0.02)


def test_a_daemon_killed_during_a_download_resumes_it_and_never_runs_a_mix(
    s3, broker, keys, aws_chain, tmp_path
):
    channel = f"s3://{BUCKET}/slow"
    bundle = _demo_copy(tmp_path / "b5", "demo-5")
    padding_bytes = 4 << 20
    (bundle / "padding.bin").write_bytes(os.urandom(padding_bytes))
    release_bytes = sum(path.stat().st_size for path in bundle.iterdir())
    assert _publish(s3, channel, bundle, "5.0.0", keys) == 0
    link = SlowLink(int(s3.endpoint_url.rsplit(":", 1)[1]), bytes_per_s=2 << 20)
    config = _kiosk_config(tmp_path, s3, broker.port, channel, keys, endpoint=f"http://127.0.0.1:{link.port}")
    releases = tmp_path / "state" / "releases"
    partial = releases / ".download" / "5.0.0" / "partial" / "padding.bin"
    for kill_at in (1, 3 << 20):
        with running_daemon(config) as daemon:
            _wait_for_bytes(partial, kill_at, daemon)
            daemon.kill()
            daemon.wait()
        assert sorted(os.listdir(releases)) == [".download"], "nothing is installed before it is verified"
    health = Health(broker.port, "asl/kiosk-releases")
    with running_daemon(config) as daemon:
        adopted = health.until("health", lambda h: h["model_version"] == "5.0.0")
        assert (adopted["model"], adopted["model_update_error"]) == ("demo-5", None)
        _stop(daemon)
    health.close()
    link.close()
    assert sorted(os.listdir(releases)) == [".channel.json", "5.0.0"]
    assert (releases / "5.0.0" / "bundle" / "padding.bin").read_bytes() == (
        bundle / "padding.bin"
    ).read_bytes()
    # Resumed, not restarted: a downloader starting over would have fetched the first 3 MiB again.
    assert link.relayed < release_bytes + (1 << 20)

"""Staged rollouts: the pointer's candidate, cohorts, the statistics, the fleet report over a real
SeaweedFS, and running kiosks (real Mosquitto and SeaweedFS) that a good candidate reaches step
by step, a bad one leaves again, and a shadow candidate runs on without ever showing its words."""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import pytest

from asl_edge.cli import main
from calibration.fleet.decide import Thresholds, decide
from calibration.fleet.feedback import Count, PairCount, Tallies
from calibration.fleet.stats import (
    Accuracy,
    Pairs,
    independent_difference,
    mcnemar_exact,
    paired_difference,
    wilson,
)
from edge.core.bundle import DEMO_BUNDLE, read_labels, update_manifest
from edge.core.utc import utc_iso
from edge.runtime.cohort import cohort_of, cohort_position
from edge.runtime.release_keys import load_private_key
from edge.runtime.releases import (
    POINTER_FILE,
    POINTER_SCHEMA,
    Candidate,
    ChannelPointer,
    ReleaseRefused,
    RolloutEntry,
    load_public_keys,
    sign_document,
    verify_document,
)
from edge.runtime.store import SyncRow
from edge.runtime.sync import CSV_COLUMNS, render_batch
from tests.services import Mosquitto, MqttSubscriber, SeaweedFS, SlowLink, running_daemon, synthetic_sentence

CHANNELS = "models"
FEEDBACK = "fleet"
PREFIX = "asl-feedback"
Z95 = 1.959963984540054
# A few signs decide in these tests: 6 right signs have a lower bound 39 points below perfect.
SMALL = ("--min-judged", "6", "--margin", "0.5")


# -- the pointer, cohorts and the statistics -----------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keys") / "publisher"
    assert main(["keygen", "--out", str(folder)]) == 0
    return folder


def _pointer_with_a_candidate() -> ChannelPointer:
    candidate = Candidate("2.0.0", "b" * 64, 0.25, True, "2026-12-04T10:00:00Z", 2, "2026-12-04T11:00:00Z")
    entry = RolloutEntry(
        "expand", "2.0.0", "why", {"margin": 0.1, "steps": [0.1, 0.25]}, "2026-12-04T11:00:00Z", 5
    )
    return ChannelPointer("1.0.0", "a" * 64, 5, "2026-12-01T09:00:00Z", candidate=candidate, history=(entry,))


def test_a_pointer_carries_a_signed_candidate_that_a_first_format_kiosk_ignores(keys):
    trusted = load_public_keys([str(keys / "asl-edge.pub")])
    signed = sign_document(_pointer_with_a_candidate().document(), load_private_key(keys / "asl-edge.key"))
    pointer = ChannelPointer.verify(signed, trusted)
    assert pointer.candidate == _pointer_with_a_candidate().candidate
    assert pointer.history[0].thresholds == {"margin": 0.1, "steps": [0.1, 0.25]}
    # What a kiosk of the first pointer format does (edge/runtime/releases.py before staged
    # rollouts): verify the whole document, then read only version, release_sha256 and sequence.
    document = verify_document(signed, POINTER_SCHEMA, trusted, POINTER_FILE)
    assert (document["version"], document["release_sha256"], document["sequence"]) == ("1.0.0", "a" * 64, 5)
    tampered = json.loads(signed)
    tampered["candidate"]["fraction"] = 1.0  # a bigger canary than the publisher signed
    with pytest.raises(ReleaseRefused, match="bad signature"):
        ChannelPointer.verify(json.dumps(tampered).encode(), trusted)
    malformed = {**json.loads(signed), "candidate": {**json.loads(signed)["candidate"], "fraction": 0}}
    resigned = sign_document(malformed, load_private_key(keys / "asl-edge.key"))
    with pytest.raises(ReleaseRefused, match="fraction must be a number above 0 and at most 1"):
        ChannelPointer.verify(resigned, trusted)


def test_the_canary_grows_with_the_fraction_and_each_channel_draws_its_own():
    devices = [f"kiosk-{index}" for index in range(400)]
    position = {d: cohort_position("s3://models/lobby", d) for d in devices}
    assert all(0.0 <= value < 1.0 for value in position.values())
    candidate = Candidate("2.0.0", "b" * 64, 0.1, False, "2026-12-04T10:00:00Z")
    tenth = {d for d in devices if cohort_of("", position[d], candidate) == "canary"}
    half = {
        d
        for d in devices
        if cohort_of("", position[d], Candidate("2.0.0", "b" * 64, 0.5, False, "t")) == "canary"
    }
    assert tenth < half, "the kiosks of a 10% canary stay in it at 50%"
    assert 20 <= len(tenth) <= 60 and 160 <= len(half) <= 240  # 40 and 200 expected
    other = {d for d in devices if cohort_position("s3://models/hall", d) < 0.1}
    assert len(other & tenth) < len(tenth) / 2, "another channel draws another canary"
    assert position["kiosk-7"] == cohort_position("s3://models/lobby/", "kiosk-7")
    assert cohort_of("stable", 0.0, candidate) == "stable" and cohort_of("canary", 0.99, None) == "canary"
    assert cohort_of("", 0.0, None) == "stable"


def test_the_intervals_and_the_exact_test_give_the_published_values():
    low, high = wilson(81, 263, Z95)  # Newcombe (1998), Statistics in Medicine 17, table I
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 10, Z95) == (0.0, pytest.approx(0.2775, abs=1e-4))
    difference = independent_difference(Accuracy.of(56, 70, Z95), Accuracy.of(48, 80, Z95))
    assert (round(difference.low, 4), round(difference.high, 4)) == (0.0524, 0.3339)  # method 10
    assert mcnemar_exact(1, 7) == pytest.approx(2 * 9 / 256)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64) and mcnemar_exact(0, 0) == 1.0
    # Paired signs that agree tell more than the same counts on separate signs would.
    pairs = Pairs(both=40, stable_only=2, candidate_only=1, neither=7)
    paired = paired_difference(pairs, Z95)
    apart = independent_difference(Accuracy.of(41, 50, Z95), Accuracy.of(42, 50, Z95))
    assert paired.value == pytest.approx(-0.02) and paired.low < -0.02 < paired.high
    assert paired.high - paired.low < apart.high - apart.low


def _tallies(
    stable: tuple[int, int], candidate: tuple[int, int], pairs: tuple[int, int, int, int] = (0, 0, 0, 0)
) -> Tallies:
    releases = [
        Count(("serving", "1.0.0", "m"), stable[1], stable[0]),
        Count(("serving", "2.0.0", "m"), candidate[1], candidate[0]),
    ]
    paired = [PairCount("1.0.0", "2.0.0", sum(pairs), *pairs)]
    return Tallies(releases, [], [], [], [], paired, [])


def test_the_step_holds_saying_what_is_missing_and_moves_on_evidence_alone():
    now = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    started = utc_iso((now - timedelta(hours=2)).timestamp())
    pointer = ChannelPointer(
        "1.0.0", "a" * 64, 3, started, candidate=Candidate("2.0.0", "b" * 64, 0.1, False, started)
    )
    rules = Thresholds(min_judged=60, bake_s=3600.0, margin=0.1)
    held = decide(pointer, _tallies((200, 200), (34, 34)), _tallies((200, 200), (34, 34)), rules, now)
    assert (held.decision, held.why) == ("hold", "34 of 60 judged signs")
    grown = decide(pointer, _tallies((200, 200), (60, 60)), _tallies((200, 200), (60, 60)), rules, now)
    assert grown.decision == "expand" and grown.fraction == 0.5, grown.why
    assert grown.why.endswith(": 0.1 -> 0.5 of the kiosks")
    baking = Thresholds(min_judged=60, bake_s=3 * 3600.0)
    assert decide(
        pointer, _tallies((200, 200), (60, 60)), _tallies((200, 200), (60, 60)), baking, now
    ).why == ("baked 7200 of 10800 s")
    # 60 of 60 against a perfect stable: the lower bound is -6.0 points, inside a 10-point margin
    # and outside a 5-point one, which needs 74 signs.
    tight = decide(
        pointer, _tallies((200, 200), (60, 60)), _tallies((200, 200), (60, 60)), Thresholds(margin=0.05), now
    )
    assert (
        tight.why
        == "not yet within the margin: the difference's lower bound is -6.0 points, it must be above -5"
    )
    bad = decide(pointer, _tallies((40, 40), (0, 3)), _tallies((40, 40), (0, 3)), rules, now)
    assert bad.decision == "rollback", "three wrong signs against a right stable are enough"
    last = ChannelPointer(
        "1.0.0", "a" * 64, 3, started, candidate=Candidate("2.0.0", "b" * 64, 0.5, False, started)
    )
    assert (
        decide(
            last, _tallies((90, 90), (60, 60)), _tallies((90, 90), (60, 60)), rules.__class__(), now
        ).decision
        == "promote"
    )
    shadow = ChannelPointer(
        "1.0.0", "a" * 64, 3, started, candidate=Candidate("2.0.0", "b" * 64, 0.1, True, started)
    )
    five = _tallies((5, 5), (0, 0), (0, 5, 0, 0))  # five signs only the serving model got right
    assert decide(shadow, five, five, rules, now).decision == "hold", "McNemar: p = 0.0625 is not enough"
    six = _tallies((6, 6), (0, 0), (0, 6, 0, 0))
    assert decide(shadow, six, six, rules, now).decision == "rollback"
    assert decide(ChannelPointer("1.0.0", "a" * 64, 3, started), six, six, rules, now).decision == "hold"


# -- the fleet report over synced batches --------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    service = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    for bucket in (CHANNELS, FEEDBACK):
        service.client().create_bucket(Bucket=bucket)
    yield service
    service.stop()


def _row(
    feedback_id: int, prediction_id: str, at: float, word: str, correct: bool, label: str | None, **more
) -> SyncRow:
    values = {"model_id": "demo", "backend": "onnxruntime", "model_version": "1.0.0", **more}
    return SyncRow(feedback_id, prediction_id, at + 5, at, word, 0.9, "[]", correct, label, **values)


def _upload(s3: SeaweedFS, device: str, rows: list[SyncRow], drop: tuple[str, ...] = ()) -> None:
    """A batch as sync writes it; ``drop``: columns a kiosk of an older asl-edge did not write."""
    body = render_batch(rows, device, PREFIX).body
    if drop:
        table = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
        text = io.StringIO()
        writer = csv.DictWriter(text, [c for c in CSV_COLUMNS if c not in drop])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k not in drop} for row in table)
        body = text.getvalue().encode()
    day = datetime.fromtimestamp(rows[0].received_at, timezone.utc).strftime("%Y-%m-%d")
    key = f"{PREFIX}/device={device}/date={day}/{rows[0].feedback_id}-{rows[-1].feedback_id}.csv"
    s3.client().put_object(Bucket=FEEDBACK, Key=key, Body=body)


def test_the_reports_figures_are_a_count_by_hand_of_the_same_rows(s3, tmp_path, capsys):
    day1, day2 = 1_796_000_000.0, 1_796_086_400.0  # 2026-12-1x, two UTC days
    shadowed = {"cohort": "canary", "shadow_version": "2.0.0"}
    old = [_row(1, "o-1", day1, "book", True, None), _row(2, "o-2", day1 + 1, "book", False, "drink")]
    stable = [
        _row(10, "s-1", day2, "go", True, None, cohort="stable"),
        _row(11, "s-2", day2 + 1, "go", False, "chair", cohort="stable"),
        _row(12, "s-3", day2 + 2, "who", False, None, cohort="stable"),  # wrong, right word not named
        _row(13, "s-4", day2 + 3, "who", True, None, cohort="stable"),
    ]
    canary = [
        _row(20, "c-1", day2, "go", True, None, model_version="2.0.0", cohort="canary"),
        _row(21, "c-2", day2 + 1, "fine", False, "deaf", model_version="2.0.0", cohort="canary"),
        _row(22, "c-3", day2 + 2, "book", True, None, model_version="2.0.0", cohort="canary"),
    ]
    shadow = [
        _row(30, "h-1", day2, "go", True, None, shadow_word="go", shadow_confidence=0.7, **shadowed),
        _row(31, "h-2", day2 + 1, "go", True, None, shadow_word="fine", shadow_confidence=0.6, **shadowed),
        _row(32, "h-3", day2 + 2, "book", False, "who", shadow_word="who", shadow_confidence=0.5, **shadowed),
        _row(33, "h-4", day2 + 3, "book", False, None, shadow_word="who", shadow_confidence=0.5, **shadowed),
        _row(34, "h-5", day2 + 4, "candy", True, None, **shadowed),  # the shadow was busy: no word
    ]
    _upload(s3, "kiosk-old", old, drop=("cohort", "shadow_version", "shadow_word", "shadow_confidence"))
    _upload(s3, "kiosk-b", stable)
    _upload(s3, "kiosk-c", canary)
    _upload(s3, "kiosk-d", shadow)
    _upload(
        s3, "kiosk-b", [_row(14, "s-4", day2 + 3600, "who", False, "deaf", cohort="stable")]
    )  # a later correction
    s3.client().put_object(Bucket=FEEDBACK, Key=f"{PREFIX}/revocations/withdrawn.txt", Body=b"c-3\n")
    out = tmp_path / "report"
    arguments = [
        "fleet",
        "report",
        f"s3://{FEEDBACK}/{PREFIX}",
        "--out",
        str(out),
        "--endpoint-url",
        s3.endpoint_url,
    ]
    assert main(arguments) == 0
    assert "1.0.0: 5 of 11 judged signs right" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())

    # By hand: the latest answer of each prediction, c-3 withdrawn; right = the user said so.
    latest = {r.prediction_id: r for r in old + stable + canary + shadow if r.prediction_id != "c-3"}
    latest["s-4"] = _row(14, "s-4", day2 + 3600, "who", False, "deaf", cohort="stable")
    for version in ("1.0.0", "2.0.0"):
        served = [r for r in latest.values() if r.model_version == version]
        right = sum(r.correct for r in served)
        low, high = wilson(right, len(served), Z95)
        entry = report["releases"][version]
        assert (entry["judged"], entry["correct"]) == (len(served), right)
        assert (entry["accuracy"], entry["ci_low"], entry["ci_high"]) == pytest.approx(
            (right / len(served), low, high), abs=1e-6
        )
    assert (report["releases"]["1.0.0"]["judged"], report["releases"]["2.0.0"]["judged"]) == (11, 2)

    def truth(row: SyncRow) -> str | None:
        return row.label or (row.predicted_word if row.correct else None)

    named = [r for r in latest.values() if r.shadow_version and r.shadow_word and truth(r)]
    assert [r.prediction_id for r in named] == ["h-1", "h-2", "h-3"]
    assert report["releases"]["2.0.0"]["shadow"] == {
        "judged": 3,
        "correct": 2,  # h-1 go = go, h-3 who = who
        "accuracy": pytest.approx(2 / 3, abs=1e-6),
        "ci_low": pytest.approx(wilson(2, 3, Z95)[0], abs=1e-6),
        "ci_high": pytest.approx(wilson(2, 3, Z95)[1], abs=1e-6),
    }
    [pair] = report["paired"]
    assert (pair["serving"], pair["shadow"], pair["pairs"]) == ("1.0.0", "2.0.0", 3)
    assert (pair["both_right"], pair["serving_only"], pair["shadow_only"], pair["both_wrong"]) == (1, 1, 1, 0)
    assert pair["mcnemar_p"] == 1.0
    cohorts = {(r["release"], r["cohort"]): (r["judged"], r["correct"]) for r in report["cohorts"]}
    assert cohorts == {
        ("1.0.0", ""): (2, 1),
        ("1.0.0", "stable"): (4, 1),
        ("1.0.0", "canary"): (5, 3),
        ("2.0.0", "canary"): (2, 1),
    }
    words = {(r["release"], r["word"]): (r["judged"], r["correct"]) for r in report["words"]}
    assert (
        words[("1.0.0", "deaf")] == (1, 0) and words[("1.0.0", "go")] == (3, 3) and ("1.0.0", "who") in words
    )
    assert sum(judged for (release, _), (judged, _) in words.items() if release == "1.0.0") == 9, (
        "3 rows name no word"
    )
    devices = {(r["release"], r["device"]): r["judged"] for r in report["devices"]}
    assert devices == {
        ("1.0.0", "kiosk-old"): 2,
        ("1.0.0", "kiosk-b"): 4,
        ("1.0.0", "kiosk-d"): 5,
        ("2.0.0", "kiosk-c"): 2,
    }
    volume = {
        (v["release"], v["cohort"]): (v["answers"], v["kiosk_days"], v["named"])
        for v in report["feedback_volume"]
    }
    assert volume[("1.0.0", "canary")] == (5, 1, 4)
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r"""(src|href)=["'](?!data:)""", page), "the page loads nothing from elsewhere"
    assert "McNemar" in page and "kiosk-old" in page


# -- running kiosks ------------------------------------------------------------------------------


def _demo_copy(folder: Path, model_id: str, rotate: bool = False) -> Path:
    """The demo bundle as another release; ``rotate``: its labels moved by one, so every word is wrong."""
    bundle = shutil.copytree(DEMO_BUNDLE, folder)
    update_manifest(bundle, {}, {"model_id": model_id})
    if rotate:
        labels = list(read_labels(bundle / "labels.txt"))
        (bundle / "labels.txt").write_text("\n".join(labels[1:] + labels[:1]) + "\n", encoding="utf-8")
    return bundle


class Signer:
    """The looping sentence's true words, by stream time: the sign whose span holds a prediction's
    middle (the loop repeats every frame-count / fps seconds, stream time never resets)."""

    def __init__(self, video: Path) -> None:
        entry = json.loads((video.parent.parent / "sentences.json").read_text())[0]
        capture = cv2.VideoCapture(str(video))
        self.period_s = capture.get(cv2.CAP_PROP_FRAME_COUNT) / capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        self.spans = list(zip(entry["words"], entry["spans_s"], strict=True))

    def word(self, prediction: dict) -> str | None:
        middle = ((prediction["start_s"] + prediction["end_s"]) / 2) % self.period_s
        for word, (start, end) in self.spans:
            if start - 0.2 <= middle <= end + 0.2:
                return word
        return None


class Users:
    """Every kiosk's users at once: each prediction is answered with the true word (right, or
    wrong and what it was), and health, predictions and acks are kept per kiosk."""

    def __init__(self, port: int, signer: Signer) -> None:
        self.signer = signer
        self.lock = threading.Condition()
        self.health: dict[str, list[dict]] = collections.defaultdict(list)
        self.predictions: dict[str, list[dict]] = collections.defaultdict(list)
        self.stored: dict[str, int] = {}
        self.answering = True
        self.client = MqttSubscriber(port, "asl/#", self._on_message)

    def _on_message(self, message) -> None:
        _, device, kind = message.topic.split("/", 2)
        payload = json.loads(message.payload)
        with self.lock:
            if kind == "health":
                self.health[device].append(payload)
            elif kind == "prediction":
                self.predictions[device].append(payload)
                truth = self.signer.word(payload)
                if self.answering and truth is not None:
                    answer = {"prediction_id": payload["id"], "correct": payload["word"] == truth}
                    if payload["word"] != truth:
                        answer["label"] = truth
                    self.client.client.publish(f"asl/{device}/feedback", json.dumps(answer), qos=1)
            elif kind == "feedback/ack" and payload["status"] == "stored":
                self.stored[device] = self.stored.get(device, 0) + 1
            self.lock.notify_all()

    def until(self, condition, timeout_s: float = 60.0, what: str = "the condition"):
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while not (found := condition()):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out after {timeout_s} s waiting for {what}"
                self.lock.wait(min(left, 0.5))
            return found

    def latest(self, device: str) -> dict:
        return (self.health.get(device) or [{}])[-1]

    def runs(self, device: str, version: str) -> bool:
        health = self.latest(device)
        return health.get("model_version") == version and not health.get("model_reloading")

    def close(self) -> None:
        self.client.close()


def _kiosk(
    folder: Path,
    s3: SeaweedFS,
    port: int,
    video: Path,
    keys: Path,
    channel: str,
    cohort: str,
    endpoint: str = "",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(
        f'[device]\nid = "{folder.name}"\n[model]\nwatch_s = 0\n'
        f'[source]\nuri = "file://{video}"\nloop = true\n[mqtt]\nport = {port}\n'
        f'[storage]\nstate_dir = "state"\n[health]\ninterval_s = 0.5\n[screen]\nport = 0\n'
        f'[sync]\nbucket = "{FEEDBACK}"\nprefix = "{PREFIX}"\nendpoint_url = "{s3.endpoint_url}"\n'
        f'credentials_file = "{s3.write_credentials(folder / "s3-credentials")}"\ninterval_s = 1.0\n'
        f'[update]\nchannel = "{channel}"\npublic_key = "{keys / "asl-edge.pub"}"\ninterval_s = 1.0\n'
        f'cohort = "{cohort}"\n' + (f'endpoint_url = "{endpoint}"\n' if endpoint else ""),
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def publisher(s3, keys):
    """The publisher's S3 credentials come from the standard AWS chain (its environment)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
        patch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield


def _publish(s3: SeaweedFS, keys: Path, bundle: Path, channel: str, version: str, *extra: str) -> None:
    key = str(keys / "asl-edge.key")
    assert (
        main(
            [
                "publish",
                str(bundle),
                channel,
                "--version",
                version,
                "--key",
                key,
                "--endpoint-url",
                s3.endpoint_url,
                *extra,
            ]
        )
        == 0
    )


@pytest.fixture(scope="module")
def fleet(s3, keys, publisher, tmp_path_factory):
    """Two kiosks on one looping sentence, one always in the canary and one never, following a
    channel whose stable release is the demo model."""
    folder = tmp_path_factory.mktemp("fleet")
    video = synthetic_sentence(folder / "signer")
    channel = f"s3://{CHANNELS}/lobby"
    _publish(s3, keys, _demo_copy(folder / "b1", "demo-1"), channel, "1.0.0")
    broker = Mosquitto(folder).start()
    users = Users(broker.port, Signer(video))
    kiosks = {
        name: _kiosk(folder / name, s3, broker.port, video, keys, channel, cohort)
        for name, cohort in (("canary-1", "canary"), ("stable-1", "stable"))
    }
    with contextlib.ExitStack() as stack:
        daemons = {name: stack.enter_context(running_daemon(config)) for name, config in kiosks.items()}
        users.until(lambda: all(users.runs(name, "1.0.0") for name in kiosks), 90, "both kiosks on 1.0.0")
        yield {"users": users, "channel": channel, "folder": folder, "daemons": daemons, "kiosks": kiosks}
        for daemon in daemons.values():
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons.values():
            _, log = daemon.communicate(timeout=30)
            assert daemon.returncode == 0, log[-3000:]
    users.close()
    broker.stop()


def _step(s3: SeaweedFS, keys: Path, channel: str, cache: Path, *flags: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "rollout",
                "step",
                channel,
                "--feedback",
                f"s3://{FEEDBACK}/{PREFIX}",
                "--key",
                str(keys / "asl-edge.key"),
                "--endpoint-url",
                s3.endpoint_url,
                "--cache",
                str(cache),
                "--bake-s",
                "0",
                *flags,
            ]
        )
    lines = out.getvalue().splitlines()
    assert code == 0 and lines[-1].startswith("decision: "), lines
    return lines


def _step_until(s3, keys, channel, cache, decision: str, *flags: str, timeout_s: float = 60.0) -> list[str]:
    """Steps (as a timer would run them) until one decides ``decision``; every other one holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = _step(s3, keys, channel, cache, *flags)
        if lines[-1].startswith(f"decision: {decision} — "):
            return lines
        assert lines[-1].startswith("decision: hold — "), lines
        assert time.monotonic() < deadline, f"no {decision} in {timeout_s} s: " + "\n".join(lines)
        time.sleep(1.0)


def _pointer(s3: SeaweedFS, channel: str) -> dict:
    prefix = channel.split("/", 3)[3]
    return json.loads(s3.client().get_object(Bucket=CHANNELS, Key=f"{prefix}/{POINTER_FILE}")["Body"].read())


def test_a_good_candidate_is_expanded_then_promoted_and_a_bad_one_rolled_back(fleet, s3, keys, tmp_path):
    users, channel, folder = fleet["users"], fleet["channel"], fleet["folder"]
    cache = tmp_path / "cache"
    _publish(
        s3, keys, _demo_copy(folder / "b2", "demo-2"), channel, "2.0.0", "--candidate", "--fraction", "0.1"
    )
    users.until(lambda: users.runs("canary-1", "2.0.0"), 30, "the canary on 2.0.0")
    held = _step(s3, keys, channel, cache, *SMALL, "--dry-run")
    pattern = r"decision: hold — [0-5] of 6 judged signs(; no judged signs of stable 1\.0\.0 to compare)?"
    assert re.fullmatch(pattern, held[-1]), held[-1]
    expanded = _step_until(s3, keys, channel, cache, "expand", *SMALL)
    assert expanded[-1].endswith(": 0.1 -> 0.5 of the kiosks")
    pointer = _pointer(s3, channel)
    assert (pointer["version"], pointer["candidate"]["fraction"], pointer["candidate"]["step"]) == (
        "1.0.0",
        0.5,
        2,
    )
    assert pointer["history"][-1]["thresholds"] == {
        "min_judged": 6,
        "bake_s": 0.0,
        "margin": 0.5,
        "confidence": 0.95,
        "steps": [0.1, 0.5, 1.0],
    }
    assert users.runs("stable-1", "1.0.0")
    promoted = _step_until(s3, keys, channel, cache, "promote", *SMALL)
    stepped_at = time.monotonic()
    assert promoted[-1].endswith(": 2.0.0 becomes the stable release for every kiosk")
    users.until(
        lambda: all(users.runs(k, "2.0.0") for k in ("canary-1", "stable-1")), 10, "every kiosk on 2.0.0"
    )
    assert time.monotonic() - stepped_at <= 2 * 1.0 + 1.0, "within two interval_s (and a health interval)"
    assert [e["decision"] for e in _pointer(s3, channel)["history"]] == ["start", "expand", "promote"]

    _publish(
        s3,
        keys,
        _demo_copy(folder / "b3", "demo-3", rotate=True),
        channel,
        "3.0.0",
        "--candidate",
        "--fraction",
        "0.5",
    )
    users.until(lambda: users.runs("canary-1", "3.0.0"), 30, "the canary on the bad candidate")
    rolled = _step_until(s3, keys, channel, cache, "rollback")
    judged = int(re.search(r"worse than stable 2\.0\.0 .*: 0 of (\d+) right", rolled[-1])[1])
    assert 1 <= judged <= 60, rolled[-1]
    users.until(lambda: users.runs("canary-1", "2.0.0"), 10, "the canary back on 2.0.0")
    assert "candidate" not in _pointer(s3, channel)
    assert all(h.get("model_version") != "3.0.0" for h in users.health["stable-1"]), "no stable kiosk ran it"
    assert not (folder / "stable-1" / "state" / "releases" / "3.0.0").exists(), "nor downloaded it"
    wrong = [p for p in users.predictions["canary-1"] if p["model"] == "demo-3"]
    assert wrong and all(p["word"] != users.signer.word(p) for p in wrong if users.signer.word(p))


def test_a_shadow_candidate_never_shows_its_words_and_is_judged_on_the_same_signs(fleet, s3, keys, tmp_path):
    users, channel, folder = fleet["users"], fleet["channel"], fleet["folder"]
    stable = _pointer(s3, channel)["version"]
    _publish(
        s3,
        keys,
        _demo_copy(folder / "b4", "demo-4", rotate=True),
        channel,
        "4.0.0",
        "--candidate",
        "--fraction",
        "0.1",
        "--shadow",
    )
    users.until(lambda: users.latest("canary-1").get("shadow_version") == "4.0.0", 30, "4.0.0 in shadow")
    shadowing = users.latest("canary-1")
    assert (shadowing["model_version"], shadowing["cohort"], shadowing["workers"]["shadow"]["state"]) == (
        stable,
        "canary",
        "running",
    )
    assert users.latest("stable-1")["shadow_version"] is None
    first = len(users.predictions["canary-1"])
    users.until(lambda: users.latest("canary-1").get("shadow_signs", 0) >= 2, 30, "the shadow's signs")
    screen = users.latest("canary-1")["screen_url"]
    shown = json.loads(urllib.request.urlopen(f"{screen}api/state", timeout=5).read())["prediction"]
    rolled = _step_until(s3, keys, channel, tmp_path / "cache", "rollback")
    assert "McNemar p = " in rolled[-1]
    users.until(lambda: users.latest("canary-1").get("shadow_version") is None, 10, "the shadow stopped")

    served = {p["id"]: p for p in users.predictions["canary-1"][first:]}
    model = {"1.0.0": "demo-1", "2.0.0": "demo-2"}[stable]
    assert served and all(p["model"] == model for p in served.values())
    assert not any(key.startswith("shadow") for p in served.values() for key in p), (
        "nothing of the shadow on MQTT"
    )
    every = {p["id"]: p for p in users.predictions["canary-1"]}
    assert every[shown["id"]]["word"] == shown["word"], "the screen shows the serving word"
    labels = list(read_labels(DEMO_BUNDLE / "labels.txt"))
    rotated = dict(zip(labels, labels[1:] + labels[:1], strict=True))
    rows = []
    for item in s3.client().list_objects_v2(Bucket=FEEDBACK, Prefix=f"{PREFIX}/device=canary-1/")["Contents"]:
        body = s3.client().get_object(Bucket=FEEDBACK, Key=item["Key"])["Body"].read().decode()
        rows += [r for r in csv.DictReader(io.StringIO(body, newline="")) if r["shadow_version"] == "4.0.0"]
    assert len(rows) >= 6, "McNemar's test needs six discordant signs at 95%"
    for row in rows:
        assert (row["cohort"], row["model_version"]) == ("canary", stable)
        assert row["shadow_word"] == rotated[row["predicted_word"]] != row["predicted_word"]
        assert 0 < float(row["shadow_confidence"]) <= 1
        assert every[row["prediction_id"]]["word"] == row["predicted_word"], "MQTT had the serving word only"
        if row["prediction_id"] == shown["id"]:
            assert shown["word"] != row["shadow_word"]


def test_a_kiosk_killed_while_its_cohort_takes_a_candidate_restarts_on_a_verified_release(
    s3, keys, publisher, tmp_path, capsys
):
    channel = f"s3://{CHANNELS}/hall"
    key, endpoint = str(keys / "asl-edge.key"), ["--endpoint-url", s3.endpoint_url]
    publish = ["publish", str(DEMO_BUNDLE), channel, "--version", "0.9.0", "--key", key, *endpoint]
    assert main([*publish, "--fraction", "0.5"]) == 2
    assert "--fraction and --shadow go with --candidate" in capsys.readouterr().err
    assert main([*publish, "--candidate"]) == 2
    assert "publish --candidate needs --fraction F" in capsys.readouterr().err
    assert main([*publish, "--candidate", "--fraction", "0.5"]) == 2
    assert "has no stable release signed by this key" in capsys.readouterr().err
    listing = s3.client().list_objects_v2(Bucket=CHANNELS, Prefix="hall/")
    assert listing["KeyCount"] == 0, "nothing is uploaded for a rollout that cannot start"
    _publish(s3, keys, _demo_copy(tmp_path / "b1", "hall-1"), channel, "1.0.0")
    video = synthetic_sentence(tmp_path / "signer")
    broker = Mosquitto(tmp_path).start()
    users = Users(broker.port, Signer(video))
    link = SlowLink(int(s3.endpoint_url.rsplit(":", 1)[1]), bytes_per_s=1 << 20)
    config = _kiosk(
        tmp_path / "hall-kiosk",
        s3,
        broker.port,
        video,
        keys,
        channel,
        "",
        endpoint=f"http://127.0.0.1:{link.port}",
    )
    partial = (
        tmp_path / "hall-kiosk" / "state" / "releases" / ".download" / "2.0.0" / "partial" / "padding.bin"
    )
    try:
        with running_daemon(config) as daemon:
            users.until(lambda: users.runs("hall-kiosk", "1.0.0"), 60, "the kiosk on 1.0.0")
            candidate = _demo_copy(tmp_path / "b2", "hall-2")
            (candidate / "padding.bin").write_bytes(os.urandom(1 << 20))
            _publish(s3, keys, candidate, channel, "2.0.0", "--candidate", "--fraction", "1.0")
            deadline = time.monotonic() + 30
            while not partial.is_file():  # its first 1 MiB chunk is still on the way
                assert daemon.poll() is None and time.monotonic() < deadline, (
                    "the candidate's download never began"
                )
                time.sleep(0.02)
            daemon.kill()
            daemon.wait()
        users.health.pop("hall-kiosk", None)
        with running_daemon(config) as daemon:
            first = users.until(
                lambda: users.latest("hall-kiosk").get("model") and users.latest("hall-kiosk"), 60
            )
            assert (first["model"], first["model_version"]) == ("hall-1", "1.0.0"), (
                "the verified release, not a mix"
            )
            adopted = users.until(
                lambda: users.runs("hall-kiosk", "2.0.0") and users.latest("hall-kiosk"), 60
            )
            assert (adopted["model"], adopted["cohort"]) == ("hall-2", "canary")
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
        assert sorted(os.listdir(tmp_path / "hall-kiosk" / "state" / "releases")) == [
            ".channel.json",
            "1.0.0",
            "2.0.0",
        ]
    finally:
        link.close()
        users.close()
        broker.stop()

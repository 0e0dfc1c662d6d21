"""``make demo-loop`` / ``asl-edge demo --loop``: the learning loop, end to end, on one machine.

A left-handed signer uses a kiosk whose model never saw one (the demo model reads about 40% of
their signs). The demo runs the whole loop with real components and the project's own commands,
each printed as it runs:

1. a kiosk daemon (real Mosquitto, real SeaweedFS) watches left-handed sentences with
   ``[sync] clips = true``, and the signer answers every word on the feedback topic as a person
   would (right, or the word they signed) with consent; sync uploads feedback and clips;
2. ``asl-edge dataset build`` turns the bucket into a dataset, ``asl-edge finetune`` trains on it
   (with synthetic replay), ``asl-edge evaluate`` gates it, ``asl-edge publish`` signs and
   uploads the release to the kiosk's channel;
3. the kiosk, back on duty on fresh left-handed sentences, adopts the release without stopping,
   and reads them again.

It prints the left-handed accuracy before and after, and the fine-tuned model's accuracy on fresh
right-handed signs. The glosses are placeholder names for a drawn signer's gestures, NOT real ASL.
Everything runs in a temporary folder and everything started is stopped; about 10 minutes on 2
cores, most of it fine-tuning.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from edge.core.bundle import DEMO_BUNDLE
from edge.demo.broker import Mosquitto, free_port
from edge.demo.s3store import SeaweedFS
from edge.demo.signer import GLOSSES, Video
from edge.demo.synth import write_dataset, write_frames

DEVICE = "loop-kiosk"
FEEDBACK_BUCKET, FEEDBACK_PREFIX = "kiosk-feedback", "asl-feedback"
CHANNEL = "s3://kiosk-models/lobby"
SIZE, FPS = (640, 480), 30.0
SENTENCE_SIGNS = 4
ADOPT_TIMEOUT_S = 60.0  # [update] interval_s is 2 s here
RIGHT_HANDED_CLIPS = 48
RELEASE = "loop-1"


class LoopFailed(RuntimeError):
    """A step of the loop did not do what it should; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    seed: int = 2027
    clips_per_word: int = 12  # consented feedback clips per word (the "at most 12")
    test_sentences: int = 3  # fresh left-handed sentences the kiosk reads before and after
    finetune_steps: int | None = None  # None: finetune's own default


@dataclass(frozen=True)
class Rendered:
    """A video of sentences one after another, and each sign's word and span on its clock."""

    path: Path
    words: list[str]
    spans_s: list[tuple[float, float]]
    duration_s: float  # a looping file's stream clock goes on by exactly this each pass


def render_sentences(path: Path, sentences: list[list[str]], seed: int, handedness: str) -> Rendered:
    """One MP4 of the sentences signed one after another (each its own scene), at ``SIZE``,
    rendered and encoded a frame at a time."""
    words: list[str] = []
    spans: list[tuple[float, float]] = []
    offset = [0]  # frames written before the sentence being rendered

    def frames() -> Iterator[np.ndarray]:
        for index, sentence in enumerate(sentences):
            video = Video.sentence(
                sentence, np.random.default_rng([seed, 7, index]), SIZE, FPS, handedness=handedness
            )
            start_s = offset[0] / FPS
            words.extend(sentence)
            spans.extend((start_s + a, start_s + b) for a, b in video.spans_s)
            offset[0] += len(video)
            yield from video.frames()

    count = write_frames(path, frames(), FPS, SIZE)
    return Rendered(path, words, spans, count / FPS)


def balanced_sentences(repeats: int, seed: int) -> list[list[str]]:
    """``repeats`` signs of every word in shuffled sentences of ``SENTENCE_SIGNS`` different words."""
    rng = np.random.default_rng([seed, 11])
    sentences: list[list[str]] = []
    for _ in range(repeats):
        order = [GLOSSES[i] for i in rng.permutation(len(GLOSSES))]
        sentences += [order[i : i + SENTENCE_SIGNS] for i in range(0, len(order), SENTENCE_SIGNS)]
    return sentences


def true_word(rendered: Rendered, start_s: float, end_s: float) -> str | None:
    """The word whose sign overlaps a prediction's span the most (None: no sign there)."""
    overlaps = [max(0.0, min(end_s, b) - max(start_s, a)) for a, b in rendered.spans_s]
    best = int(np.argmax(overlaps))
    return rendered.words[best] if overlaps[best] > 0 else None


class Kiosk:
    """One ``asl-edge run`` with a subscriber on its topics; ``answers`` makes the signer answer
    every word with consent, as they would on the kiosk's screen."""

    def __init__(
        self, folder: Path, config: Path, broker: Mosquitto, rendered: Rendered, answers: bool
    ) -> None:
        self.rendered = rendered
        self.answers = answers
        self.predictions: queue.Queue[dict[str, Any]] = queue.Queue()
        self.health: dict[str, Any] = {}
        self.acks = 0
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.on_connect = lambda c, *_: c.subscribe(f"asl/{DEVICE}/#", qos=1)
        self._client.on_message = self._message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        self._subscribed.wait(5)
        self.log_path = folder / "daemon.log"
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asl_edge", "run", "--config", str(config)],
            stdout=self._log,
            stderr=self._log,
        )

    def _message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        if message.topic.endswith("/prediction"):
            self.predictions.put(payload)
            word = true_word(self.rendered, payload["start_s"], payload["end_s"])
            if self.answers and word is not None:
                answer: dict[str, Any] = {"prediction_id": payload["id"], "correct": word == payload["word"]}
                if word != payload["word"]:
                    answer["label"] = word
                answer["consent"] = True
                client.publish(f"asl/{DEVICE}/feedback", json.dumps(answer), qos=1)
        elif message.topic.endswith("/feedback/ack") and payload.get("status") == "stored":
            self.acks += 1
        elif message.topic.endswith("/health"):
            self.health = payload

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._client.disconnect()
        self._client.loop_stop()
        self._log.close()


def score(predictions: list[dict[str, Any]], rendered: Rendered) -> tuple[int, int]:
    """Signs read right, of the signs in the video (a sign never published counts as wrong)."""
    right = {
        i
        for p in predictions
        for i, (a, b) in enumerate(rendered.spans_s)
        if min(p["end_s"], b) - max(p["start_s"], a) > 0 and p["word"] == rendered.words[i]
    }
    return len(right), len(rendered.words)


def drain(kiosk: Kiosk) -> list[dict[str, Any]]:
    found = []
    while not kiosk.predictions.empty():
        found.append(kiosk.predictions.get())
    return found


def _kiosk_config(folder: Path, video: Path, broker: Mosquitto, s3: SeaweedFS, loop: bool) -> Path:
    config = folder / ("kiosk-live.toml" if loop else "kiosk-feedback.toml")
    config.write_text(
        f'[device]\nid = "{DEVICE}"\n'
        f'[source]\nuri = "file://{video}"\nloop = {str(loop).lower()}\nrealtime = {str(loop).lower()}\n'
        f"[mqtt]\nport = {broker.port}\n"
        f'[storage]\nstate_dir = "{folder / "state"}"\n'
        f'[sync]\nbucket = "{FEEDBACK_BUCKET}"\nprefix = "{FEEDBACK_PREFIX}"\n'
        f'endpoint_url = "{s3.endpoint_url}"\ncredentials_file = "{folder / "s3-credentials"}"\n'
        "interval_s = 5.0\nclips = true\n"
        f'[update]\nchannel = "{CHANNEL}"\npublic_key = "{folder / "keys" / "asl-edge.pub"}"\n'
        "interval_s = 2.0\n"
        f"[health]\ninterval_s = 1.0\n[screen]\nport = {free_port()}\n"
        '[logging]\nlevel = "warning"\n',
        encoding="utf-8",
    )
    return config


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _run(args: list[str], env: dict[str, str]) -> str:
    """An asl-edge command, printed as a person would type it, with what it prints."""
    print(f"$ asl-edge {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "asl_edge", *args],
        check=False,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
    )
    if done.stdout:
        print(done.stdout.rstrip(), flush=True)
    if done.returncode != 0:
        raise LoopFailed(f"'asl-edge {args[0]}' exited with {done.returncode}")
    return done.stdout


def _services(folder: Path) -> tuple[Mosquitto, SeaweedFS, dict[str, str]]:
    """The broker and the S3 store, with the buckets the kiosk syncs to and follows, and the
    environment that lets the workstation's commands write to them."""
    broker = Mosquitto(folder).start()
    s3 = SeaweedFS(folder / "s3").start()
    client = s3.client()
    for bucket in (FEEDBACK_BUCKET, CHANNEL.removeprefix("s3://").split("/")[0]):
        client.create_bucket(Bucket=bucket)
    s3.write_credentials(folder / "s3-credentials")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": s3.SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    print(f"broker 127.0.0.1:{broker.port}, S3 {s3.endpoint_url}")
    return broker, s3, env


def _share(right: int, total: int) -> str:
    return f"{right}/{total} = {right / max(1, total):.0%}"


def _workstation(folder: Path, s3: SeaweedFS, env: dict[str, str], settings: Settings) -> tuple[Path, float]:
    """Dataset, fine-tuning, the gate and the signed release: the candidate and the tuning time."""
    dataset, candidate = folder / "dataset", folder / "bundles" / "demo-left"
    source = f"s3://{FEEDBACK_BUCKET}/{FEEDBACK_PREFIX}"
    build = ["dataset", "build", source, "--out", str(dataset), "--endpoint-url", s3.endpoint_url]
    _run([*build, "--labels", str(DEMO_BUNDLE), "--no-progress"], env)
    tune = ["finetune", str(DEMO_BUNDLE), "--dataset", str(dataset), "--replay", "synthetic"]
    tune += ["--out", str(candidate), "--seed", str(settings.seed), "--no-progress"]
    if settings.finetune_steps:
        tune += ["--steps", str(settings.finetune_steps)]
    tuned_at = time.monotonic()
    _run(tune, env)
    finetune_s = time.monotonic() - tuned_at
    _run(["evaluate", str(candidate), "--baseline", str(DEMO_BUNDLE), "--dataset", str(dataset)], env)
    return candidate, finetune_s


def _publish(folder: Path, candidate: Path, s3: SeaweedFS, env: dict[str, str]) -> str:
    """The gated candidate, signed and uploaded to the kiosk's channel; its model id."""
    key = str(folder / "keys" / "asl-edge.key")
    publish = ["publish", str(candidate), CHANNEL, "--version", RELEASE, "--key", key]
    _run([*publish, "--endpoint-url", s3.endpoint_url], env)
    return str(json.loads((candidate / "manifest.json").read_text(encoding="utf-8"))["model_id"])


def run(settings: Settings) -> dict[str, float]:
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="asl-edge-loop-"))
    services: tuple[Mosquitto, SeaweedFS, dict[str, str]] | None = None
    kiosks: list[Kiosk] = []
    try:
        _step("rendering a left-handed signer (placeholder gestures, not real ASL)")
        sentences = balanced_sentences(settings.clips_per_word, settings.seed)
        feedback_video = render_sentences(folder / "feedback.mp4", sentences, settings.seed, "left")
        rng = np.random.default_rng([settings.seed, 13])
        fresh = [
            [GLOSSES[i] for i in rng.choice(len(GLOSSES), SENTENCE_SIGNS, replace=False)]
            for _ in range(settings.test_sentences)
        ]
        test_video = render_sentences(folder / "fresh.mp4", fresh, settings.seed + 1, "left")
        print(
            f"{len(feedback_video.words)} signs to answer ({settings.clips_per_word} of each word), "
            f"{len(test_video.words)} fresh signs to read before and after"
        )
        services = _services(folder)
        broker, s3, env = services
        _run(["keygen", "--out", str(folder / "keys")], env)

        _step("1. the kiosk reads the left-handed signer; they answer every word, with consent")
        config = _kiosk_config(folder, feedback_video.path, broker, s3, loop=False)
        kiosk = Kiosk(folder, config, broker, feedback_video, answers=True)
        kiosks.append(kiosk)
        if kiosk.wait(600) != 0:
            raise LoopFailed(f"the kiosk exited with {kiosk.process.returncode}: see {folder / 'daemon.log'}")
        feedback_score = score(drain(kiosk), feedback_video)
        print(
            f"the kiosk read {_share(*feedback_score)} left-handed signs right; {kiosk.acks} answers stored"
        )
        kiosk.stop()
        _run(["sync", "--config", str(config)], env)

        _step("2. the workstation: dataset, fine-tuning, the gate")
        candidate, finetune_s = _workstation(folder, s3, env, settings)

        _step("3. the kiosk, back on duty on fresh left-handed sentences, is sent the release")
        live_config = _kiosk_config(folder, test_video.path, broker, s3, loop=True)
        live = Kiosk(folder, live_config, broker, test_video, answers=False)
        kiosks.append(live)
        before = _one_pass(live, test_video, lambda model: True)
        print(f"on its own model the kiosk reads {_share(*before)} of the fresh signs")
        model_id = _publish(folder, candidate, s3, env)
        _wait_for_release(live)
        after = _one_pass(live, test_video, lambda model: model == model_id)
        right_handed = _right_handed(folder, candidate, settings.seed, env)

        _step("the loop, closed")
        print(
            f"left-handed signs before: {_share(*before)} (while giving feedback: {_share(*feedback_score)})"
        )
        print(f"left-handed signs after:  {_share(*after)}")
        print(f"right-handed signs after: {_share(*right_handed)}")
        minutes = (time.monotonic() - started) / 60
        print(f"fine-tuning took {finetune_s / 60:.1f} min; the whole loop {minutes:.1f} min")
        return {
            "before": before[0] / before[1],
            "after": after[0] / after[1],
            "right_handed": right_handed[0] / right_handed[1],
        }
    finally:
        for kiosk in kiosks:
            kiosk.stop()
        if services is not None:
            services[1].stop()
            services[0].stop()
        shutil.rmtree(folder, ignore_errors=True)


def _one_pass(live: Kiosk, rendered: Rendered, by: Callable[[str], bool]) -> tuple[int, int]:
    """The signs of the next whole pass of the looping video, every one read by a model ``by``
    accepts: how many of them it read right. A looping file's stream clock goes on by the
    video's duration each pass, so a prediction's pass and its place in it come from its time."""
    passes: dict[int, list[dict[str, Any]]] = {}
    first = None
    deadline = time.monotonic() + 3 * rendered.duration_s + 60
    while time.monotonic() < deadline:
        try:
            prediction = live.predictions.get(timeout=0.5)
        except queue.Empty:
            continue
        index = int(prediction["start_s"] // rendered.duration_s)
        if not by(str(prediction["model"])):
            continue
        if first is None:
            first = index + 1  # the pass under way may have begun on another model
        passes.setdefault(index, []).append(prediction)
        if first is not None and index > first:  # the pass after ``first`` has begun: ``first`` is whole
            return _pass_score(passes.get(first, []), rendered)
    raise LoopFailed(f"the kiosk read no whole pass of the fresh sentences in time: see {live.log_path}")


def _wait_for_release(live: Kiosk) -> None:
    deadline = time.monotonic() + ADOPT_TIMEOUT_S
    while time.monotonic() < deadline and live.health.get("model_version") != RELEASE:
        time.sleep(0.2)
    if live.health.get("model_version") != RELEASE:
        why = live.health.get("model_update_error")
        raise LoopFailed(f"the kiosk did not adopt release {RELEASE} in {ADOPT_TIMEOUT_S:.0f} s: {why}")
    print(f"the kiosk runs {live.health['model']} (release {RELEASE}) and never stopped")


def _pass_score(predictions: list[dict[str, Any]], rendered: Rendered) -> tuple[int, int]:
    """Of the video's signs, how many a prediction of this pass read right (a sign missed counts)."""
    folded = [
        {**p, "start_s": p["start_s"] % rendered.duration_s, "end_s": p["end_s"] % rendered.duration_s}
        for p in predictions
    ]
    return score(folded, rendered)


def _right_handed(folder: Path, candidate: Path, seed: int, env: dict[str, str]) -> tuple[int, int]:
    data = folder / "right-handed"
    write_dataset(data, RIGHT_HANDED_CLIPS, seed + 2, progress=False)
    clips = sorted((data / "clips").glob("*.mp4"))
    done = subprocess.run(
        [sys.executable, "-m", "asl_edge", "recognize", *map(str, clips), "--bundle", str(candidate)],
        env=env,
        text=True,
        capture_output=True,
        check=True,
    )
    right = sum(
        line.split("\t")[1] == Path(line.split("\t")[0]).stem.split("_", 1)[1]
        for line in done.stdout.splitlines()
    )
    return right, len(clips)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--clips-per-word", type=int, default=Settings.clips_per_word)
    parser.add_argument("--steps", type=int, help="fine-tuning steps (default: finetune's own)")
    args = parser.parse_args(argv)
    try:
        run(Settings(args.seed, args.clips_per_word, finetune_steps=args.steps))
    except LoopFailed as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

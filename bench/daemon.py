"""The kiosk daemon on a real-time 640x480 30 fps source: drops, per-frame cost, latency, memory.

Renders a synthetic signed sentence, starts a private Mosquitto, runs ``asl-edge run`` on the
video at its own frame rate (as a camera delivers it) with the demo bundle, and reads the
daemon's last health message: frames in and dropped, capture-to-segmenter cost per frame
(crop + motion), inference latency and end-of-sign to MQTT latency (p50/p95), the daemon's CPU
time per second of video, and its peak RSS (each daemon's own, from ``wait4``). The last line
printed is a JSON object.

Variants run alternated, sentence by sentence, so that they share the machine's state:
``--speculate both`` compares ``[segmenter] speculate`` on and off, ``--page both`` a kiosk page
connected (a client reading the events and the self-view stream, as the page does) with none,
``--shadow both`` a canary kiosk running a candidate in shadow beside the serving model with a
kiosk of the same channel that does not (a private SeaweedFS holds the channel: the stable
release and a ``--shadow`` candidate, both the demo model; each variant keeps its own state
directory, so the releases are downloaded once).

    python bench/daemon.py [--seed 2026] [--sentences 2] [--backend auto|onnxruntime|openvino]
                           [--speculate on|off|both] [--page none|connected|both]
                           [--shadow off|on|both] [--shadow-threads 1] [--shadow-nice 10]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from edge.demo.broker import Mosquitto, free_port  # noqa: E402
from edge.demo.synth import write_dataset  # noqa: E402
from tests.services import SeaweedFS  # noqa: E402


def start_channel(folder: Path) -> tuple[SeaweedFS, str, Path]:
    """A private SeaweedFS with a channel: the demo model as the stable release and, as a copy
    under another id, as a candidate in shadow. Returns the store, the channel and the public key."""
    import os
    import shutil

    from asl_edge.cli import main as asl_edge
    from edge.core.bundle import DEMO_BUNDLE, update_manifest

    s3 = SeaweedFS(folder / "seaweedfs").start()
    s3.client().create_bucket(Bucket="bench")
    os.environ.update(AWS_ACCESS_KEY_ID=s3.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=s3.SECRET_KEY)
    channel, key = "s3://bench/kiosks", folder / "keys" / "asl-edge.key"
    asl_edge(["keygen", "--out", str(key.parent)])
    for version, extra in (("1.0.0", []), ("2.0.0", ["--candidate", "--fraction", "1.0", "--shadow"])):
        bundle = shutil.copytree(DEMO_BUNDLE, folder / f"bundle-{version}")
        update_manifest(bundle, {}, {"model_id": f"bench-{version}"})
        publish = ["publish", str(bundle), channel, "--version", version, "--key", str(key)]
        if asl_edge([*publish, "--endpoint-url", s3.endpoint_url, *extra]) != 0:
            raise SystemExit(f"publishing {version} to {channel} failed")
    return s3, channel, key.parent / "asl-edge.pub"


def _read_forever(port: int, path: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """What a page does: keep a stream open and read it (retrying until the daemon listens)."""
    while not stop.is_set():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            response = connection.getresponse()
            while not stop.is_set() and (chunk := response.read1(65536)):
                counts[path] = counts.get(path, 0) + len(chunk)
        except OSError:
            time.sleep(0.05)
        finally:
            with contextlib.suppress(Exception):
                connection.close()


def run_one(
    folder: Path,
    video: Path,
    broker: Mosquitto,
    backend: str,
    speculate: bool,
    page: bool,
    update: str = "",
    state_name: str = "state",
) -> tuple[dict, list[dict], float, dict[str, int], float]:
    """One daemon on one sentence: its health, predictions, CPU seconds, page bytes and peak RSS
    (MB); ``update`` is its ``[update]`` section (empty: none)."""
    config = folder / "config.toml"
    port = free_port()
    state = folder / state_name
    config.write_text(
        f'[device]\nid = "bench"\n[model]\nbackend = "{backend}"\n[source]\nuri = "file://{video}"\n'
        f"[mqtt]\nport = {broker.port}\n"
        f'[storage]\nstate_dir = "{state}"\n[health]\ninterval_s = 1.0\n[screen]\nport = {port}\n'
        f"[segmenter]\nspeculate = {str(speculate).lower()}\n"
        '[logging]\nlevel = "warning"\n' + update,
        encoding="utf-8",
    )
    messages: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe("asl/bench/#", qos=1)
    client.on_message = lambda _c, _u, m: messages.put((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    time.sleep(0.2)
    stop, counts = threading.Event(), {}
    readers = [
        threading.Thread(target=_read_forever, args=(port, path, stop, counts), daemon=True)
        for path in (("/api/events", "/api/self-view") if page else ())
    ]
    for reader in readers:
        reader.start()
    daemon = subprocess.Popen([sys.executable, "-m", "asl_edge", "run", "--config", str(config)], cwd=ROOT)
    _, status, usage = os.wait4(daemon.pid, 0)  # this daemon's own CPU time and peak RSS
    daemon.returncode = os.waitstatus_to_exitcode(status)
    if daemon.returncode != 0:
        raise SystemExit(f"asl-edge run exited with {daemon.returncode}")
    stop.set()
    for reader in readers:
        reader.join(5)
    cpu_s = usage.ru_utime + usage.ru_stime
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()
    health, predictions = {}, []
    while not messages.empty():
        topic, payload = messages.get()
        if topic.endswith("/health"):
            health = payload
        elif topic.endswith("/prediction"):
            predictions.append(payload)
    return health, predictions, cpu_s, counts, usage.ru_maxrss / 1024.0


def _summary(rows: list[tuple], video_s: float) -> dict[str, object]:
    frames_in = sum(h["frames_in"] for h, *_ in rows)
    dropped = sum(h["frames_dropped"] for h, *_ in rows)
    inference = [p["latency_ms"] for _, ps, *_ in rows for p in ps]
    end_to_publish = [p["sign_end_to_publish_ms"] for _, ps, *_ in rows for p in ps]

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1)

    return {
        "frames_in": frames_in,
        "frames_dropped": dropped,
        "dropped_pct": round(100.0 * dropped / max(1, frames_in), 3),
        "frame_ms_p50": max(h["frame_ms_p50"] for h, *_ in rows),
        "frame_ms_p95": max(h["frame_ms_p95"] for h, *_ in rows),
        # the median run's p95: one busy moment of the shared machine moves the max
        "frame_ms_p95_median_run": sorted(h["frame_ms_p95"] for h, *_ in rows)[len(rows) // 2],
        "inference_ms_p50": pct(inference, 50),
        "inference_ms_p95": pct(inference, 95),
        "sign_end_to_publish_ms_p50": pct(end_to_publish, 50),
        "sign_end_to_publish_ms_p95": pct(end_to_publish, 95),
        "speculations_discarded": sum(h.get("speculations_discarded", 0) for h, *_ in rows),
        "self_view_frames": sum(h.get("screen_self_view_frames", 0) for h, *_ in rows),
        "shadow_signs": sum(h.get("shadow_signs", 0) for h, *_ in rows),
        "shadow_skipped": sum(h.get("shadow_skipped", 0) for h, *_ in rows),
        "shadow_inference_ms_p50": max((h.get("shadow_inference_ms_p50") or 0.0) for h, *_ in rows),
        "daemon_cpu_per_video_s": round(sum(r[4] for r in rows) / max(video_s, 1e-6), 3),
        "words_right": sum(r[2] for r in rows),
        "words_expected": sum(r[3] for r in rows),
        "daemon_peak_rss_mb": round(max(r[5] for r in rows)),
    }


def _update(channel: str, public_key: Path, endpoint_url: str, shadow: bool, threads: int, nice: int) -> str:
    """The ``[update]`` section of a kiosk of the bench's channel: in its canary (the candidate runs
    in shadow) or not; and ``[sync]``'s endpoint, which the channel's reads use."""
    return (
        f'[sync]\nendpoint_url = "{endpoint_url}"\n'
        f'[update]\nchannel = "{channel}"\npublic_key = "{public_key}"\ninterval_s = 5.0\n'
        f'cohort = "{"canary" if shadow else "stable"}"\nshadow_threads = {threads}\nshadow_nice = {nice}\n'
    )


def _name(speculate: bool, page: bool, shadow: bool | None) -> str:
    name = f"speculate={'on' if speculate else 'off'},page={'connected' if page else 'none'}"
    return name if shadow is None else f"{name},shadow={'on' if shadow else 'off'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sentences", type=int, default=2)
    parser.add_argument("--backend", default="auto", help="[model] backend for the daemon (default auto)")
    parser.add_argument("--speculate", choices=("on", "off", "both"), default="on")
    parser.add_argument("--page", choices=("none", "connected", "both"), default="none")
    parser.add_argument("--shadow", choices=("off", "on", "both"), default="off")
    parser.add_argument("--shadow-threads", type=int, default=1, help="[update] shadow_threads (1)")
    parser.add_argument("--shadow-nice", type=int, default=10, help="[update] shadow_nice (10)")
    args = parser.parse_args()
    speculations = {"on": (True,), "off": (False,), "both": (False, True)}[args.speculate]
    pages = {"none": (False,), "connected": (True,), "both": (False, True)}[args.page]
    shadows: tuple[bool | None, ...] = {"off": (None,), "on": (True,), "both": (False, True)}[args.shadow]
    variants = list(itertools.product(speculations, pages, shadows))
    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-daemon-") as name:
        folder = Path(name)
        write_dataset(folder / "data", clips=0, seed=args.seed, sentences=args.sentences, progress=False)
        entries = json.loads((folder / "data" / "sentences.json").read_text())
        video_s = sum(entry["spans_s"][-1][1] + 1.0 for entry in entries)
        broker = Mosquitto(folder).start()
        s3 = None
        rows: dict[tuple[bool, bool, bool | None], list[tuple]] = {variant: [] for variant in variants}
        updates: dict[bool | None, str] = {None: ""}
        try:
            if args.shadow != "off":
                s3, channel, public_key = start_channel(folder)
                for shadow in (False, True):
                    updates[shadow] = _update(
                        channel, public_key, s3.endpoint_url, shadow, args.shadow_threads, args.shadow_nice
                    )
                for shadow in shadows:  # unmeasured: the releases downloaded, the models compiled
                    first = folder / "data" / entries[0]["file"]
                    run_one(
                        folder, first, broker, args.backend, True, False, updates[shadow], f"state-{shadow}"
                    )
            for entry in entries:  # alternated: every variant on each sentence before the next
                for speculate, page, shadow in variants:
                    video = folder / "data" / entry["file"]
                    health, predictions, cpu_s, _, rss_mb = run_one(
                        folder,
                        video,
                        broker,
                        args.backend,
                        speculate,
                        page,
                        updates[shadow],
                        f"state-{shadow}",
                    )
                    words = [p["word"] for p in predictions]
                    hits = sum(a == b for a, b in zip(entry["words"], words, strict=False))
                    rows[speculate, page, shadow].append(
                        (health, predictions, hits, len(entry["words"]), cpu_s, rss_mb)
                    )
        finally:
            broker.stop()
            if s3 is not None:
                s3.stop()
    summary: dict[str, object] = {_name(*variant): _summary(rows[variant], video_s) for variant in variants}
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

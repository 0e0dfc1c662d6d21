"""The kiosk daemon on a real-time 640x480 30 fps source: drops, per-frame cost, latency, memory.

Renders a synthetic signed sentence, starts a private Mosquitto, runs ``asl-edge run`` on the
video at its own frame rate (as a camera delivers it) with the demo bundle, and reads the
daemon's last health message: frames in and dropped, capture-to-segmenter cost per frame
(crop + motion), inference latency and end-of-sign to MQTT latency (p50/p95), the daemon's CPU
time per second of video, and its peak RSS. The last line printed is a JSON object.

Variants run alternated, sentence by sentence, so that they share the machine's state:
``--speculate both`` compares ``[segmenter] speculate`` on and off, ``--page both`` a kiosk page
connected (a client reading the events and the self-view stream, as the page does) with none.

    python bench/daemon.py [--seed 2026] [--sentences 2] [--backend auto|onnxruntime|openvino]
                           [--speculate on|off|both] [--page none|connected|both]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import queue
import resource
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
    folder: Path, video: Path, broker: Mosquitto, backend: str, speculate: bool, page: bool
) -> tuple[dict, list[dict], float, dict[str, int]]:
    config = folder / "config.toml"
    port = free_port()
    config.write_text(
        f'[device]\nid = "bench"\n[model]\nbackend = "{backend}"\n[source]\nuri = "file://{video}"\n'
        f"[mqtt]\nport = {broker.port}\n"
        f'[storage]\nstate_dir = "{folder / "state"}"\n[health]\ninterval_s = 1.0\n[screen]\nport = {port}\n'
        f"[segmenter]\nspeculate = {str(speculate).lower()}\n"
        '[logging]\nlevel = "warning"\n',
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
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "asl_edge", "run", "--config", str(config)], check=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop.set()
    for reader in readers:
        reader.join(5)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
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
    return health, predictions, cpu_s, counts


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
        "inference_ms_p50": pct(inference, 50),
        "inference_ms_p95": pct(inference, 95),
        "sign_end_to_publish_ms_p50": pct(end_to_publish, 50),
        "sign_end_to_publish_ms_p95": pct(end_to_publish, 95),
        "speculations_discarded": sum(h.get("speculations_discarded", 0) for h, *_ in rows),
        "self_view_frames": sum(h.get("screen_self_view_frames", 0) for h, *_ in rows),
        "daemon_cpu_per_video_s": round(sum(r[4] for r in rows) / max(video_s, 1e-6), 3),
        "words_right": sum(r[2] for r in rows),
        "words_expected": sum(r[3] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sentences", type=int, default=2)
    parser.add_argument("--backend", default="auto", help="[model] backend for the daemon (default auto)")
    parser.add_argument("--speculate", choices=("on", "off", "both"), default="on")
    parser.add_argument("--page", choices=("none", "connected", "both"), default="none")
    args = parser.parse_args()
    speculations = {"on": (True,), "off": (False,), "both": (False, True)}[args.speculate]
    pages = {"none": (False,), "connected": (True,), "both": (False, True)}[args.page]
    variants = list(itertools.product(speculations, pages))
    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-daemon-") as name:
        folder = Path(name)
        write_dataset(folder / "data", clips=0, seed=args.seed, sentences=args.sentences, progress=False)
        entries = json.loads((folder / "data" / "sentences.json").read_text())
        video_s = sum(entry["spans_s"][-1][1] + 1.0 for entry in entries)
        broker = Mosquitto(folder).start()
        rows: dict[tuple[bool, bool], list[tuple]] = {variant: [] for variant in variants}
        try:
            for entry in entries:  # alternated: every variant on each sentence before the next
                for speculate, page in variants:
                    video = folder / "data" / entry["file"]
                    health, predictions, cpu_s, _ = run_one(
                        folder, video, broker, args.backend, speculate, page
                    )
                    words = [p["word"] for p in predictions]
                    hits = sum(a == b for a, b in zip(entry["words"], words, strict=False))
                    rows[speculate, page].append((health, predictions, hits, len(entry["words"]), cpu_s))
        finally:
            broker.stop()
    summary: dict[str, object] = {
        f"speculate={'on' if speculate else 'off'},page={'connected' if page else 'none'}": _summary(
            rows[speculate, page], video_s
        )
        for speculate, page in variants
    }
    summary["daemon_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

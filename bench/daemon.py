"""The kiosk daemon on a real-time 640x480 30 fps source: drops, per-frame cost, latency, memory.

Renders a synthetic signed sentence, starts a private Mosquitto, runs ``asl-edge run`` on the
video at its own frame rate (as a camera delivers it) with the demo bundle, and reads the
daemon's last health message: frames in and dropped, capture-to-segmenter cost per frame
(crop + motion), inference latency and end-of-sign to MQTT latency (p50/p95), and the daemon's
peak RSS. The last line printed is a JSON object.

    python bench/daemon.py [--seed 2026] [--sentences 2] [--backend auto|onnxruntime|openvino]
"""

from __future__ import annotations

import argparse
import json
import queue
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from edge.demo.broker import Mosquitto  # noqa: E402
from edge.demo.synth import write_dataset  # noqa: E402


def run_one(folder: Path, video: Path, broker: Mosquitto, backend: str) -> tuple[dict, list[dict]]:
    config = folder / "config.toml"
    config.write_text(
        f'[device]\nid = "bench"\n[model]\nbackend = "{backend}"\n[source]\nuri = "file://{video}"\n'
        f"[mqtt]\nport = {broker.port}\n"
        f'[storage]\nstate_dir = "{folder / "state"}"\n[health]\ninterval_s = 1.0\n[screen]\nport = 0\n'
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
    subprocess.run([sys.executable, "-m", "asl_edge", "run", "--config", str(config)], check=True, cwd=ROOT)
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
    return health, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sentences", type=int, default=2)
    parser.add_argument("--backend", default="auto", help="[model] backend for the daemon (default auto)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-daemon-") as name:
        folder = Path(name)
        write_dataset(folder / "data", clips=0, seed=args.seed, sentences=args.sentences, progress=False)
        entries = json.loads((folder / "data" / "sentences.json").read_text())
        broker = Mosquitto(folder).start()
        rows = []
        try:
            for entry in entries:
                health, predictions = run_one(folder, folder / "data" / entry["file"], broker, args.backend)
                words = [p["word"] for p in predictions]
                hits = sum(a == b for a, b in zip(entry["words"], words, strict=False))
                rows.append((health, predictions, hits, len(entry["words"])))
        finally:
            broker.stop()
    frames_in = sum(h["frames_in"] for h, *_ in rows)
    dropped = sum(h["frames_dropped"] for h, *_ in rows)
    inference = [p["latency_ms"] for _, ps, *_ in rows for p in ps]
    end_to_publish = [p["sign_end_to_publish_ms"] for _, ps, *_ in rows for p in ps]

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1)

    summary = {
        "frames_in": frames_in,
        "frames_dropped": dropped,
        "dropped_pct": round(100.0 * dropped / max(1, frames_in), 3),
        "frame_ms_p50": max(h["frame_ms_p50"] for h, *_ in rows),
        "frame_ms_p95": max(h["frame_ms_p95"] for h, *_ in rows),
        "inference_ms_p50": pct(inference, 50),
        "inference_ms_p95": pct(inference, 95),
        "sign_end_to_publish_ms_p50": pct(end_to_publish, 50),
        "sign_end_to_publish_ms_p95": pct(end_to_publish, 95),
        "words_right": sum(r[2] for r in rows),
        "words_expected": sum(r[3] for r in rows),
        "daemon_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

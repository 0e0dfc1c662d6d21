"""``make demo`` / ``asl-edge demo``: the kiosk daemon recognizing a signed sentence, live.

Renders a synthetic sentence video (placeholder gestures, not real ASL), starts a private
Mosquitto broker on a free loopback port, runs ``asl-edge run`` on the video through GStreamer at
its own frame rate, as a camera would deliver it, prints each word as it arrives over MQTT, then
the expected and recognized sentences. The daemon's kiosk screen listens on a free loopback port
whose address is printed first: open it in a browser to watch the words arrive. Everything it
starts, it stops.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.demo.broker import Mosquitto, free_port
from edge.demo.synth import write_dataset


def run(seed: int, realtime: bool) -> float:
    folder = Path(tempfile.mkdtemp(prefix="asl-edge-live-"))
    broker = None
    try:
        print("rendering a synthetic sentence (placeholder gestures, not real ASL) ...", flush=True)
        write_dataset(folder / "data", clips=0, seed=seed, sentences=1, progress=False)
        entry = json.loads((folder / "data" / "sentences.json").read_text())[0]
        broker = Mosquitto(folder).start()
        port = broker.port
        screen_port = free_port()
        config = folder / "config.toml"
        config.write_text(
            f'[device]\nid = "demo"\n[source]\nuri = "file://{folder / "data" / entry["file"]}"\n'
            f"realtime = {'true' if realtime else 'false'}\n[mqtt]\nport = {port}\n"
            f'[storage]\nstate_dir = "{folder / "state"}"\n[logging]\nlevel = "warning"\n'
            f"[screen]\nport = {screen_port}\n",
            encoding="utf-8",
        )
        words: queue.Queue[dict[str, Any]] = queue.Queue()
        listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        listener.on_connect = lambda c, *_: c.subscribe("asl/demo/prediction", qos=1)
        listener.on_message = lambda _c, _u, m: words.put(json.loads(m.payload))
        listener.connect("127.0.0.1", port)
        listener.loop_start()
        time.sleep(0.2)
        print(f"asl-edge run: broker 127.0.0.1:{port}, source {entry['file']} ({len(entry['words'])} signs)")
        print(
            f"kiosk screen: http://127.0.0.1:{screen_port}/ (open it to watch the words arrive)", flush=True
        )
        daemon = subprocess.Popen([sys.executable, "-m", "asl_edge", "run", "--config", str(config)])
        recognized: list[str] = []
        while daemon.poll() is None or not words.empty():
            try:
                message = words.get(timeout=0.2)
            except queue.Empty:
                continue
            recognized.append(str(message["word"]))
            print(
                f"  {message['start_s']:5.2f}-{message['end_s']:5.2f} s  {message['word']}  "
                f"({message['confidence']:.2f})",
                flush=True,
            )
        listener.disconnect()
        listener.loop_stop()
        expected = entry["words"]
        hits = sum(a == b for a, b in zip(expected, recognized, strict=False))
        print(f"expected:   {' '.join(expected)}")
        print(f"recognized: {' '.join(recognized)}")
        print(f"accuracy: {hits}/{len(expected)} = {hits / len(expected):.0%}")
        if daemon.returncode != 0:
            raise RuntimeError(f"asl-edge run exited with {daemon.returncode}")
        return hits / len(expected)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--fast", action="store_true", help="read the video as fast as possible")
    args = parser.parse_args(argv)
    try:
        run(args.seed, realtime=not args.fast)
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

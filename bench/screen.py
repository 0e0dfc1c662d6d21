"""The kiosk screen: how long a word takes from MQTT to the page, and what the page weighs.

Renders a synthetic signed sentence, starts a private Mosquitto and ``asl-edge run`` on the video
at its own frame rate with the screen on a free port, opens the page in headless Chromium (Debian's
chromium and chromium-driver, through selenium), and for each word compares when an MQTT
subscriber received it with when the page had it on screen (``window.aslScreen.shown``, both on
this machine's clock). The screen does not go through the broker, so a negative value means the
page was first. The last line printed is a JSON object.

    python bench/screen.py [--seed 2026] [--words 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.demo.synth import write_dataset  # noqa: E402
from tests.browser import start_chromium  # noqa: E402
from tests.services import Mosquitto, MqttSubscriber, free_port, running_daemon  # noqa: E402

ASSETS = ("", "screen.css", "screen.js")


def page_bytes(url: str) -> dict[str, int]:
    sizes = {}
    for name in ASSETS:
        with urllib.request.urlopen(url + name, timeout=5) as response:
            sizes[name or "index.html"] = len(response.read())
    return sizes


def wait_for_page(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            page_bytes(url)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the screen at {url} did not answer")


def measure(folder: Path, video: Path, words: int) -> tuple[list[float], dict[str, int]]:
    broker = Mosquitto(folder).start()
    port = free_port()
    config = folder / "config.toml"
    config.write_text(
        f'[device]\nid = "bench"\n[source]\nuri = "file://{video}"\nloop = true\n'
        f'[mqtt]\nport = {broker.port}\n[storage]\nstate_dir = "{folder / "state"}"\n'
        f'[screen]\nport = {port}\n[logging]\nlevel = "warning"\n',
        encoding="utf-8",
    )
    url = f"http://127.0.0.1:{port}/"
    subscriber = MqttSubscriber(
        broker.port, "asl/bench/prediction", lambda m: (json.loads(m.payload)["id"], time.time())
    )
    latencies_ms: list[float] = []
    try:
        with running_daemon(config):
            wait_for_page(url)
            sizes = page_bytes(url)
            driver = start_chromium(800, 480)
            try:
                driver.get(url)
                while len(latencies_ms) < words:
                    prediction_id, arrived_s = subscriber.messages.get(timeout=30)
                    deadline = time.monotonic() + 5
                    shown = None
                    while shown is None and time.monotonic() < deadline:
                        shown = driver.execute_script(
                            "return window.aslScreen.shown[arguments[0]]", prediction_id
                        )
                        time.sleep(0.01)
                    if shown is None:
                        raise RuntimeError(f"prediction {prediction_id} never reached the page")
                    latencies_ms.append(shown - arrived_s * 1000.0)
            finally:
                driver.quit()
    finally:
        subscriber.close()
        broker.stop()
    return latencies_ms, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--words", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-screen-") as name:
        folder = Path(name)
        write_dataset(folder / "data", clips=0, seed=args.seed, sentences=1, progress=False)
        entry = json.loads((folder / "data" / "sentences.json").read_text())[0]
        latencies_ms, sizes = measure(folder, folder / "data" / entry["file"], args.words)
    ordered = sorted(latencies_ms)
    for value in latencies_ms:
        print(f"  MQTT arrival -> on screen: {value:+7.1f} ms")
    summary = {
        "words": len(ordered),
        "mqtt_to_screen_ms_p50": round(ordered[len(ordered) // 2], 1),
        "mqtt_to_screen_ms_max": round(ordered[-1], 1),
        "mqtt_to_screen_ms_min": round(ordered[0], 1),
        "page_bytes": sum(sizes.values()),
        "page_bytes_by_file": sizes,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

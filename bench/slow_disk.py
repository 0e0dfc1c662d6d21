"""The kiosk daemon with its state directory on a slow disk: this tree against a baseline revision.

A slow disk, made here without special hardware: ``bench/slow_disk.c``, an LD_PRELOAD shim that
delays every fsync/fdatasync (``--sync-ms``), write (``--write-ms``) and rename/statvfs
(``--meta-ms``) on files under the state directory, as an SD card or a busy eMMC does. (A FUSE
filesystem needs libfuse, and a dm-delay or throttled loop device needs device-mapper or a cgroup
I/O controller, none of which this machine has; the shim delays the same calls without costing
CPU, so the two daemons compete for nothing else.)

Each round runs the daemon of the baseline (``git archive REV``) and of this tree, in turn (the
order alternates), in-process in a child Python with the shim preloaded, on the same synthetic
signed sentence played at its real frame rate, with health every ``--health-s`` and the metrics
textfile in the state directory. Both are measured the same way from outside their code:

- frame delay: how late each frame reached the sign pipeline against its stream time (the
  earliest frame counts as on time): the time it waited in capture's queue while the inference
  thread was busy with something else;
- sign end to publish: from when the frame that ended a sign's motion arrived (its stream time
  on the same clock) to the prediction handed to MQTT; it includes the segmenter's rest wait and
  the classification, the same for both;
- the daemon's frames dropped and the child's peak RSS.

The last line printed is a JSON object (per variant: p50/p95/max of each, medians over rounds).

    python bench/slow_disk.py [--baseline main] [--rounds 3] [--sync-ms 100] [--write-ms 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1)

    return {"p50": pick(50), "p95": pick(95), "max": round(ordered[-1], 1)}


def child(checkout: Path, config_path: Path) -> None:
    """Run one daemon from ``checkout`` on the config; print what was measured as JSON."""
    sys.path.insert(0, str(checkout))
    from edge.core.config import load_config
    from edge.runtime.daemon import Daemon
    from edge.runtime.mqtt import MqttLink
    from edge.runtime.pipeline import SignPipeline

    config = load_config(config_path)
    frames: list[tuple[float, float]] = []  # (monotonic when the pipeline got it, stream time)
    published: list[tuple[float, float]] = []  # (monotonic when published, segment end_s)
    feed, publish = SignPipeline.feed, MqttLink.publish

    def timed_feed(self, frame, backend):  # type: ignore[no-untyped-def]
        frames.append((time.monotonic(), frame.timestamp_s))
        return feed(self, frame, backend)

    def timed_publish(self, suffix, payload, *args, **kwargs):  # type: ignore[no-untyped-def]
        if suffix == "prediction":
            published.append((time.monotonic(), payload["end_s"]))
        return publish(self, suffix, payload, *args, **kwargs)

    SignPipeline.feed = timed_feed  # type: ignore[method-assign]
    MqttLink.publish = timed_publish  # type: ignore[method-assign]
    daemon = Daemon(config)
    daemon.run()
    first_at, first_ts = frames[0]
    lateness = [(at - first_at) - (ts - first_ts) for at, ts in frames]
    on_time = min(lateness)
    post_roll_s = config.segmenter.post_roll_s
    end_to_publish = [
        (at - (first_at + on_time + (end_s - post_roll_s - first_ts))) * 1000.0 for at, end_s in published
    ]
    print(
        json.dumps(
            {
                "frames": len(frames),
                "frames_dropped": daemon.capture.stats.frames_dropped,
                "frame_delay_ms": [round((late - on_time) * 1000.0, 2) for late in lateness],
                "sign_end_to_publish_ms": [round(ms, 1) for ms in end_to_publish],
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
            }
        )
    )


def write_config(folder: Path, video: Path, port: int, backend: str, health_s: float) -> Path:
    state = folder / "state"
    config = folder / "config.toml"
    config.write_text(
        f'[device]\nid = "bench"\n[model]\nbackend = "{backend}"\n[source]\nuri = "file://{video}"\n'
        f'[mqtt]\nport = {port}\n[storage]\nstate_dir = "{state}"\n[health]\ninterval_s = {health_s}\n'
        f'[screen]\nenabled = false\n[metrics]\ntextfile = "{state / "asl-edge.prom"}"\n'
        '[logging]\nlevel = "warning"\n',
        encoding="utf-8",
    )
    return config


def run_variant(checkout: Path, config: Path, shim: Path, state: Path, delays: dict[str, int]) -> dict:
    env = {
        **os.environ,
        "LD_PRELOAD": str(shim),
        "SLOW_DISK_DIR": str(state),
        "SLOW_DISK_SYNC_MS": str(delays["sync"]),
        "SLOW_DISK_WRITE_MS": str(delays["write"]),
        "SLOW_DISK_META_MS": str(delays["meta"]),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(checkout), str(config)],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the daemon of {checkout} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git revision to compare against (default main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sync-ms", type=int, default=100, help="delay of each fsync/fdatasync")
    parser.add_argument("--write-ms", type=int, default=2, help="delay of each write")
    parser.add_argument("--meta-ms", type=int, default=10, help="delay of each rename and statvfs")
    parser.add_argument("--health-s", type=float, default=1.0, help="[health] interval_s of both daemons")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--child", nargs=2, metavar=("CHECKOUT", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    sys.path.insert(0, str(ROOT))
    from edge.demo.broker import Mosquitto
    from edge.demo.synth import write_dataset

    delays = {"sync": args.sync_ms, "write": args.write_ms, "meta": args.meta_ms}
    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-slow-disk-") as name:
        folder = Path(name)
        shim = folder / "slow_disk.so"
        subprocess.run(
            ["cc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(ROOT / "bench" / "slow_disk.c"), "-ldl"],
            check=True,
        )
        baseline = folder / "baseline"
        baseline.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        write_dataset(folder / "data", clips=0, seed=args.seed, sentences=1, progress=False)
        video = folder / "data" / json.loads((folder / "data" / "sentences.json").read_text())[0]["file"]
        broker = Mosquitto(folder).start()
        results: dict[str, list[dict]] = {"baseline": [], "this tree": []}
        try:
            for round_index in range(args.rounds):
                order = [("baseline", baseline), ("this tree", ROOT)]
                for label, checkout in order if round_index % 2 == 0 else order[::-1]:
                    run = folder / f"run-{round_index}-{label.replace(' ', '-')}"
                    run.mkdir()
                    config = write_config(run, video, broker.port, args.backend, args.health_s)
                    results[label].append(run_variant(checkout, config, shim, run / "state", delays))
        finally:
            broker.stop()
    summary: dict[str, object] = {"revision": args.baseline, "delays_ms": delays, "rounds": args.rounds}
    for label, runs in results.items():
        rows = [
            {
                "frame_delay_ms": percentiles(r["frame_delay_ms"]),
                "sign_end_to_publish_ms": percentiles(r["sign_end_to_publish_ms"]),
            }
            for r in runs
        ]
        summary[label] = {
            metric: {
                stat: statistics.median(row[metric][stat] for row in rows if row[metric][stat] is not None)
                for stat in ("p50", "p95", "max")
            }
            for metric in ("frame_delay_ms", "sign_end_to_publish_ms")
        } | {
            "frames_dropped": [r["frames_dropped"] for r in runs],
            "predictions": [len(r["sign_end_to_publish_ms"]) for r in runs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

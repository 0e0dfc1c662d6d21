"""``asl-edge dataset build`` over a fleet's bucket: time, rows/s and peak memory, at several sizes.

Fills a private SeaweedFS with what a fleet's sync leaves: CSV batches of ``--rows-per-object``
rows (default 100, so 10,000 objects hold 1,000,000 rows) from 50 kiosks over 30 days, written by
sync's own renderer, with 2% of the predictions answered twice and 100 consented clips. Then runs
``asl-edge dataset build`` as its own process, reporting its own peak RSS (Linux ``VmHWM``): on a
one-object prefix (the baseline: interpreter, boto3, DuckDB, OpenCV), on a tenth of the objects,
on all of them, on as many rows as all of them hold but in a tenth of the objects (rows grow,
objects do not), and again on all of them with the cache from that run (a rerun fetches
nothing). If memory followed the rows, ten times the rows would need about ten times the tenth's
growth over the baseline. The last line printed is a JSON object.

    python bench/dataset.py [--objects 10000] [--rows-per-object 100]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge.runtime.store import SyncRow  # noqa: E402
from edge.runtime.sync import render_batch  # noqa: E402
from tests.backlog import WORDS  # noqa: E402
from tests.services import SeaweedFS  # noqa: E402

BUCKET = "fleet-bench"
DEVICES = 50
DAYS = 30
CLIPS = 100
START_S = 1_795_000_000.0  # 2026-11-18 (UTC)
UPLOAD_THREADS = 16

# asl-edge dataset build, then the process's own peak RSS (VmHWM counts from exec).
_MEASURED_BUILD = (
    "import sys; from asl_edge.cli import main; code = main(['dataset', 'build', *sys.argv[1:]]); "
    "print(open('/proc/self/status').read()); sys.exit(code)"
)


def _clip(path: Path, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 64))
    for _ in range(8):
        writer.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    writer.release()
    return path.read_bytes()


def _objects(prefix: str, objects: int, rows_per_object: int, seed: int):
    """(key, CSV body) of each batch; the first CLIPS rows name a clip."""
    rng = random.Random(seed)
    feedback_id = 0
    for index in range(objects):
        device = f"kiosk-{index % DEVICES:03d}"
        day_s = START_S + (index * DAYS // objects) * 86400.0
        rows = []
        for _ in range(rows_per_object):
            feedback_id += 1
            again = feedback_id > 100 and rng.random() < 0.02  # a second answer for an earlier sign
            prediction = f"p{rng.randrange(1, feedback_id):09d}" if again else f"p{feedback_id:09d}"
            word = rng.choice(WORDS)
            correct = rng.random() < 0.7
            top_k = json.dumps([{"word": w, "score": 0.1} for w in rng.sample(WORDS, 5)])
            rows.append(
                SyncRow(
                    feedback_id,
                    prediction,
                    day_s + feedback_id % 86000,
                    day_s + feedback_id % 86000 - 2.0,
                    word,
                    0.8,
                    top_k,
                    correct,
                    None if correct else rng.choice(WORDS),
                    "demo_i3d-bench",
                    "onnxruntime",
                    f"{prediction}.mp4" if feedback_id <= CLIPS else None,
                    "2026.12.1",
                )
            )
        rendered = render_batch(rows, device, prefix)
        assert rendered is not None
        key = f"{prefix}/device={device}/date={time.strftime('%Y-%m-%d', time.gmtime(day_s))}/"
        yield f"{key}{rows[0].feedback_id}-{rows[-1].feedback_id}.csv", rendered.body, rendered.clips


def fill(s3: SeaweedFS, prefix: str, objects: int, rows_per_object: int, folder: Path) -> dict:
    client = s3.client()
    clip = _clip(folder / "clip.mp4", 0)
    started = time.perf_counter()
    size = 0
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        uploads: list[tuple[str, bytes]] = []
        for key, body, clips in _objects(prefix, objects, rows_per_object, seed=objects):
            uploads += [(key, body), *((clip_key, clip) for clip_key, _ in clips)]
            size += len(body)
            if len(uploads) >= 256:  # in chunks: the bodies are never all in memory at once
                list(
                    pool.map(
                        lambda item: client.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]), uploads
                    )
                )
                uploads = []
        list(pool.map(lambda item: client.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]), uploads))
    return {"objects": objects, "rows": objects * rows_per_object, "csv_mb": round(size / 1e6, 1),
            "fill_s": round(time.perf_counter() - started, 1)}  # fmt: skip


def build(s3: SeaweedFS, prefix: str, out: Path) -> dict:
    started = time.perf_counter()
    command = [
        f"s3://{BUCKET}/{prefix}",
        "--out",
        str(out),
        "--endpoint-url",
        s3.endpoint_url,
        "--no-progress",
    ]
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED_BUILD, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed_s = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"asl-edge dataset build failed for {prefix}: {result.stderr[-2000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "seconds": round(elapsed_s, 2),
        "rows": manifest["counts"]["rows"],
        "predictions": manifest["counts"]["predictions"],
        "examples": manifest["counts"]["examples"],
        "peak_rss_mb": round(int(result.stdout.split("VmHWM:")[1].split()[0]) / 1024, 1),
        "fetched": next(line for line in result.stdout.splitlines() if line.startswith("fetched")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rows-per-object", type=int, default=100)
    args = parser.parse_args()
    per_object = args.rows_per_object
    sizes = {  # prefix: (objects, rows in each)
        "one": (1, per_object),
        "tenth": (args.objects // 10, per_object),
        "full": (args.objects, per_object),
        "full-rows-in-a-tenth": (args.objects // 10, per_object * 10),  # rows, not objects, grow
    }
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as temp:
        folder = Path(temp)
        s3 = SeaweedFS(folder / "seaweedfs").start()
        try:
            s3.client().create_bucket(Bucket=BUCKET)
            filled = {name: fill(s3, name, *size, folder) for name, size in sizes.items()}
            runs = {name: build(s3, name, folder / f"out-{name}") for name in sizes}
            runs["full, rerun"] = build(s3, "full", folder / "out-full")
        finally:
            s3.stop()
    baseline = runs["one"]["peak_rss_mb"]
    for name, run in runs.items():
        rows = run["rows"]
        print(
            f"{name}: {rows} rows -> {run['predictions']} predictions, {run['examples']} examples in "
            f"{run['seconds']} s = {round(rows / run['seconds'])} rows/s; peak RSS {run['peak_rss_mb']} MB "
            f"(+{run['peak_rss_mb'] - baseline:.1f} MB over one object); {run['fetched']}"
        )
    print(json.dumps({"filled": filled, "runs": runs}))


if __name__ == "__main__":
    main()

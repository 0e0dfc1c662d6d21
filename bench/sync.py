"""Syncing a feedback backlog to a local SeaweedFS: time, rows/s and peak memory of ``asl-edge sync``.

Writes a backlog of N feedback rows (default 100,000, as after weeks offline) into a fresh store,
starts a private SeaweedFS, and runs ``asl-edge sync`` as its own process for each batch size; the
process reports its own peak RSS (Linux ``VmHWM``). The same command on a one-row backlog is the
memory baseline (interpreter, boto3 and its first request, SQLite), so the growth is what the
backlog costs; a tenth of the backlog at the same batch size shows whether that grows with the
backlog. The last line printed is a JSON object.

    python bench/sync.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.backlog import write_backlog  # noqa: E402
from tests.services import SeaweedFS  # noqa: E402

# asl-edge sync, then the process's own peak RSS (VmHWM counts from exec: not the parent's pages).
_MEASURED_SYNC = (
    "import sys; from asl_edge.cli import main; code = main(['sync', '--config', sys.argv[1]]); "
    "print(open('/proc/self/status').read()); sys.exit(code)"
)


def run_sync(folder: Path, s3: SeaweedFS, bucket: str, rows: int, batch_rows: int, batch_bytes: int) -> dict:
    folder.mkdir()
    write_backlog(folder / "state", rows)
    s3.client().create_bucket(Bucket=bucket)
    config = folder / "config.toml"
    config.write_text(
        f'[storage]\nstate_dir = "state"\n[sync]\nbucket = "{bucket}"\nendpoint_url = "{s3.endpoint_url}"\n'
        f'credentials_file = "{s3.write_credentials(folder / "credentials")}"\n'
        f"batch_rows = {batch_rows}\nbatch_bytes = {batch_bytes}\n",
        encoding="utf-8",
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED_SYNC, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed_s = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"asl-edge sync failed for batch_rows={batch_rows}: {result.stderr}")
    peak_kb = int(result.stdout.split("VmHWM:")[1].split()[0])
    listing = s3.client().list_objects_v2(Bucket=bucket, MaxKeys=1000).get("Contents", [])
    return {
        "rows": rows,
        "batch_rows": batch_rows,
        "batch_bytes": batch_bytes,
        "objects": len(listing),
        "csv_mb": round(sum(item["Size"] for item in listing) / 1e6, 1),
        "seconds": round(elapsed_s, 2),
        "rows_per_s": round(rows / elapsed_s),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as temp:
        folder = Path(temp)
        s3 = SeaweedFS(folder / "seaweedfs").start()
        try:
            baseline = run_sync(folder / "one-row", s3, "one-row", 1, 5000, 4_000_000)
            plans = [(args.rows // 10, 5000), (args.rows, 5000), (args.rows, 1000), (args.rows, 20000)]
            runs = [
                run_sync(folder / f"run-{index}", s3, f"run-{index}", rows, batch_rows, 4_000_000)
                for index, (rows, batch_rows) in enumerate(plans)
            ]
        finally:
            s3.stop()
    print(f"baseline (one row): {baseline['seconds']} s, peak RSS {baseline['peak_rss_mb']} MB")
    for run in runs:
        print(
            f"{run['rows']} rows, batch_rows {run['batch_rows']}: {run['objects']} objects, "
            f"{run['csv_mb']} MB of CSV in {run['seconds']} s = {run['rows_per_s']} rows/s; "
            f"peak RSS {run['peak_rss_mb']} MB "
            f"(+{run['peak_rss_mb'] - baseline['peak_rss_mb']:.1f} MB over the baseline)"
        )
    print(json.dumps({"baseline": baseline, "runs": runs}))


if __name__ == "__main__":
    main()

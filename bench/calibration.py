"""``asl-edge calibrate``'s peak memory and time against the clip count, on a full-size bundle.

The bundle is the full I3D (width 1, 100 classes, T=64) computing the demo model
(bench/full_model.py), so the accuracy report has a model that recognizes the synthetic signs.
Calibration and validation read a folder of synthetic sign videos (``labels.csv``), as a user's
folder of videos would be read. Each count runs ``asl-edge calibrate`` in its own process on a
fresh copy of the bundle; its peak RSS comes from the kernel (``wait4``), its time is the wall
clock. Calibration streams, so the peak should not grow with the count. The last line printed is
a JSON object: per count the peak RSS in MB, the seconds and the exit code, and the ratio of the
largest count's peak to the smallest's.

    python bench/calibration.py [--counts 4,16,64] [--eval-count 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

VIDEO_SEED = 7


def measure(command: list[str]) -> tuple[float, float, int, str]:
    """(peak RSS in MB, seconds, exit code, last lines of stdout) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - started, process.returncode, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--counts", default="4,16,64", help="calibration clip counts, comma-separated")
    parser.add_argument("--eval-count", type=int, default=8, help="validation clips of each run (8)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    from bench.full_model import write_full_bundle
    from edge.demo.synth import write_dataset

    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="asl-edge-calibration-bench-") as folder:
        work = Path(folder)
        template = write_full_bundle(work / "template", args.classes, args.frames)
        write_dataset(work / "signs", max(counts), VIDEO_SEED, progress=False)
        videos = work / "signs"  # clips/*.mp4 and labels.csv
        print(
            f"asl-edge calibrate on I3D full width, {args.classes} classes, T={args.frames}; "
            f"{args.eval_count} validation clips",
            flush=True,
        )
        for count in counts:
            bundle = work / f"bundle-{count}"
            shutil.copytree(template, bundle)
            command = [sys.executable, "-m", "asl_edge", "calibrate", str(bundle), "--clips", str(videos)]
            command += ["--count", str(count), "--eval", str(videos), "--eval-count", str(args.eval_count)]
            peak_mb, seconds, code, output = measure(command)
            results[count] = {"peak_rss_mb": round(peak_mb), "seconds": round(seconds, 1), "exit": code}
            verdicts = [
                line for line in output.splitlines() if line.endswith(("PASS", "FAIL", "INCONCLUSIVE"))
            ]
            print(
                f"--count {count:3d}: peak RSS {peak_mb:7.0f} MB, {seconds:6.1f} s, exit {code}", flush=True
            )
            for line in verdicts:
                print(f"    {line}", flush=True)
            shutil.rmtree(bundle)
    smallest, largest = results[min(counts)], results[max(counts)]
    summary = {
        "counts": results,
        "peak_ratio_largest_vs_smallest": round(largest["peak_rss_mb"] / smallest["peak_rss_mb"], 3),
        "frames": args.frames,
        "classes": args.classes,
        "eval_count": args.eval_count,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

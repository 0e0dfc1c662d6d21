"""``asl-edge finetune`` on the demo model: left-handed accuracy gained, right-handed kept, time, memory.

For each seed: a field dataset of at most ``--clips-per-word`` consented clips per word from a
left-handed signer (sentences of four signs through the kiosk's own segmenter and cropper, saved as
the kiosk saves consented clips: tests/field_dataset.py); ``asl-edge finetune`` with its defaults
in its own process (wall time, CPU time and peak RSS from the kernel); then ``asl-edge recognize``
with the baseline and the new bundle on fresh clips at sizes the dataset never used (left-handed:
mirrored, as ``asl-edge synth --handedness left`` renders them; and right-handed), and ``asl-edge
evaluate`` (its gate line). ``--ablation`` trains once more per seed with ``--replay-fraction 1``:
the same steps without a single field clip, to show how much of the gain the field data gives. The
last line printed is a JSON object of every number.

    python bench/finetune.py [--seeds 1,2,3] [--clips-per-word 12] [--sentence-words 4]
                             [--eval-clips 48] [--ablation]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from edge.core.bundle import DEMO_BUNDLE  # noqa: E402
from edge.demo.signer import GLOSSES, Video  # noqa: E402
from tests.field_dataset import write_field_dataset  # noqa: E402

EVAL_SIZES = ((640, 480), (1280, 720), (360, 640), (960, 540))


def measure(command: list[str]) -> dict[str, object]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MB), exit code and output of a child."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    output = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024.0),
        "rc": os.waitstatus_to_exitcode(status),
        "output": output,
    }


def write_eval_videos(folder: Path, count: int, seed: int, handedness: str) -> list[tuple[Path, str]]:
    """Fresh one-sign videos at sizes the dataset never used; left-handed ones are mirrored."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for index in range(count):
        word, size = GLOSSES[index % len(GLOSSES)], EVAL_SIZES[index % len(EVAL_SIZES)]
        video = Video.clip(word, np.random.default_rng([seed, index]), size)
        path = folder / f"{index:04d}_{word}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), video.fps, size)
        for frame in video.frames():
            writer.write(cv2.flip(frame, 1) if handedness == "left" else frame)
        writer.release()
        videos.append((path, word))
    return videos


def accuracy(bundle: Path, videos: list[tuple[Path, str]]) -> float:
    """Top-1 of ``asl-edge recognize --bundle`` on the videos."""
    command = [sys.executable, "-m", "asl_edge", "recognize", "--bundle", str(bundle), "--json"]
    result = measure(command + [str(path) for path, _ in videos])
    words = [json.loads(line)["word"] for line in str(result["output"]).splitlines() if line.startswith("{")]
    return sum(w == truth for w, (_, truth) in zip(words, videos, strict=True)) / len(videos)


def finetune(dataset: Path, out: Path, *extra: str) -> dict[str, object]:
    command = [sys.executable, "-m", "asl_edge", "finetune", str(DEMO_BUNDLE), "--dataset", str(dataset)]
    result = measure([*command, "--out", str(out), "--no-progress", *extra])
    if result["rc"] != 0:
        raise SystemExit(f"finetune failed: {result['output']}")
    return {k: v for k, v in result.items() if k != "output"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--clips-per-word", type=int, default=12)
    parser.add_argument("--sentence-words", type=int, default=4, help="signs per recorded sentence")
    parser.add_argument("--eval-clips", type=int, default=48)
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--work", type=Path, help="keep datasets and bundles here (default: temporary)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-finetune-") as scratch:
        work = args.work or Path(scratch)
        left = write_eval_videos(work / "eval-left", args.eval_clips, 9_001, "left")
        right = write_eval_videos(work / "eval-right", args.eval_clips, 9_002, "right")
        baseline = {"left": accuracy(DEMO_BUNDLE, left), "right": accuracy(DEMO_BUNDLE, right)}
        print(f"baseline: left {baseline['left']:.1%}, right {baseline['right']:.1%}", flush=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            dataset = write_field_dataset(
                work / f"dataset-{seed}", args.clips_per_word, seed, sentence_words=args.sentence_words
            )
            out = work / f"tuned-{seed}"
            run: dict[str, object] = {"seed": seed, "finetune": finetune(dataset, out, "--seed", str(seed))}
            run["left"], run["right"] = accuracy(out, left), accuracy(out, right)
            gate = measure([
                sys.executable, "-m", "asl_edge", "evaluate", str(out), "--baseline", str(DEMO_BUNDLE),
                "--dataset", str(dataset), "--report", str(work / f"report-{seed}"),
            ])  # fmt: skip
            run["gate"] = str(gate["output"]).strip().splitlines()[-1]
            run["evaluate_s"] = gate["wall_s"]
            if args.ablation:
                ablated = work / f"no-field-{seed}"
                finetune(dataset, ablated, "--seed", str(seed), "--replay-fraction", "1")
                run["without_field_clips"] = {
                    "left": accuracy(ablated, left),
                    "right": accuracy(ablated, right),
                }
            print(json.dumps(run), flush=True)
            runs.append(run)
    print(json.dumps({"baseline": baseline, "clips_per_word": args.clips_per_word, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

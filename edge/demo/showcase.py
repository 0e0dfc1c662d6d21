"""``make demo-clips``: synthetic sign videos recognized by the demo bundle through ``asl-edge recognize``.

Renders a few one-sign clips with the synthetic signer (``asl-edge synth``), runs the real
``asl-edge recognize --json`` on the video files, and prints each recognized word beside the
expected one, then the accuracy. The words are placeholders, not real ASL (see edge.demo.signer).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _asl_edge(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "asl_edge", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def run(clips: int, seed: int, size: str, keep: Path | None) -> float:
    folder = Path(tempfile.mkdtemp(prefix="asl-edge-demo-"))
    try:
        made = _asl_edge(
            "synth",
            "--out",
            str(folder),
            "--clips",
            str(clips),
            "--seed",
            str(seed),
            "--size",
            size,
            "--no-progress",
        )
        if made.returncode != 0:
            raise RuntimeError(f"asl-edge synth failed: {made.stderr.strip()}")
        with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
            expected = {row["file"]: row["word"] for row in csv.DictReader(handle)}
        files = [str(folder / name) for name in expected]
        print(f"recognizing {len(files)} synthetic clips ({size}) with the demo bundle ...", flush=True)
        result = _asl_edge("recognize", *files, "--json", "--top-k", "3")
        if result.stderr.strip():
            print(result.stderr.strip(), file=sys.stderr)
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        hits = 0
        print(f"{'clip':28s} {'expected':10s} {'recognized':10s} {'conf':>6s} {'ms':>6s}")
        for row in rows:
            name = str(Path(row["source"]).relative_to(folder))
            ok = row["word"] == expected[name]
            hits += ok
            print(
                f"{name:28s} {expected[name]:10s} {row['word']:10s} {row['confidence']:6.2f} "
                f"{row['latency_ms']:6.0f}  {'ok' if ok else 'WRONG'}"
            )
        accuracy = hits / max(1, len(expected))
        print(f"accuracy: {hits}/{len(expected)} = {accuracy:.0%}")
        return accuracy
    finally:
        if keep is not None:
            shutil.copytree(folder, keep, dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--keep", type=Path, help="copy the generated clips here")
    args = parser.parse_args(argv)
    try:
        run(args.clips, args.seed, args.size, args.keep)
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

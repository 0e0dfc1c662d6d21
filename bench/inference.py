"""Full-size I3D on this CPU: eager PyTorch (what the cloud prototype served) vs ONNX Runtime.

Each engine runs in its own child process, so each one's peak memory is its own; all run in one
invocation because these shared machines drift by tens of percent between runs: compare ratios.
The last line printed is a JSON object with ``torch_ms``, ``ort_fp32_ms`` and ``speedup``.

    python bench/inference.py [--frames 64] [--classes 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _timed(run, clip: np.ndarray, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run(clip)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(clip)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def phase_torch(work: Path, args: argparse.Namespace) -> dict[str, float]:
    import torch

    from convert.i3d import InceptionI3d

    torch.set_num_threads(args.threads)
    model = InceptionI3d(args.classes)
    model.load_state_dict(torch.load(work / "weights.pt", weights_only=True))
    model.eval()
    clip = np.load(work / "clip.npy")

    def run(x: np.ndarray) -> None:
        with torch.inference_mode():
            model(torch.from_numpy(x))

    times = _timed(run, clip, args.runs, args.warmup)
    return {"ms": statistics.median(times), "min_ms": min(times), "peak_rss_mb": _peak_rss_mb()}


def phase_ort(work: Path, args: argparse.Namespace, tuned: bool) -> dict[str, float]:
    import onnxruntime as ort

    from edge.core.bundle import ModelSpec
    from edge.core.preprocess import PreprocessParams
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend

    clip = np.load(work / "clip.npy")
    model_path = work / "model.onnx"
    if tuned:
        spec = ModelSpec(
            input_name="clip",
            input_shape=clip.shape,  # type: ignore[arg-type]
            output_name="logits",
            output_shape=(1, args.classes, args.frames // 8 - 1),
            labels=tuple(str(i) for i in range(args.classes)),
            preprocessing=PreprocessParams(),
            model_id="bench",
        )
        backend = OnnxRuntimeBackend(model_path, spec, threads=args.threads)
        run = backend.infer
    else:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

        def run(x: np.ndarray) -> None:
            session.run(None, {"clip": x})

    times = _timed(run, clip, args.runs, args.warmup)
    return {"ms": statistics.median(times), "min_ms": min(times), "peak_rss_mb": _peak_rss_mb()}


def prepare(work: Path, args: argparse.Namespace) -> None:
    import torch

    from convert.export import export_onnx
    from convert.i3d import InceptionI3d
    from convert.random_model import randomize, smooth_random_clips

    model = randomize(InceptionI3d(args.classes), seed=0, frames=16, probes=2)
    torch.save(model.state_dict(), work / "weights.pt")
    export_onnx(model, args.frames, work / "model.onnx")
    np.save(work / "clip.npy", smooth_random_clips(1, args.frames, seed=1))


def _child(work: Path, phase: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", phase, "--work", str(work)]
    for name in ("frames", "classes", "runs", "warmup", "threads"):
        command += [f"--{name}", str(getattr(args, name))]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: every core this process may use")
    parser.add_argument("--phase", choices=("prepare", "torch", "ort", "ort_default"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.threads:
        from edge.runtime.backends.onnxruntime import default_threads

        args.threads = default_threads()

    if args.phase:
        phases = {
            "prepare": lambda: prepare(args.work, args) or {},
            "torch": lambda: phase_torch(args.work, args),
            "ort": lambda: phase_ort(args.work, args, tuned=True),
            "ort_default": lambda: phase_ort(args.work, args, tuned=False),
        }
        print(json.dumps(phases[args.phase]()))
        return

    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-") as folder:
        work = Path(folder)
        print(
            f"I3D full width, {args.classes} classes, clip 1x3x{args.frames}x224x224, "
            f"{args.threads} threads, median of {args.runs} runs after {args.warmup} warm-up"
        )
        _child(work, "prepare", args)
        results = {phase: _child(work, phase, args) for phase in ("torch", "ort_default", "ort")}
    for phase, label in (
        ("torch", "PyTorch eager"),
        ("ort_default", "ONNX Runtime, default options"),
        ("ort", "ONNX Runtime, tuned (asl-edge backend)"),
    ):
        r = results[phase]
        print(f"{label:40s} {r['ms']:8.0f} ms (min {r['min_ms']:.0f})  peak RSS {r['peak_rss_mb']:6.0f} MB")
    summary = {
        "torch_ms": round(results["torch"]["ms"], 1),
        "ort_fp32_ms": round(results["ort"]["ms"], 1),
        "ort_default_ms": round(results["ort_default"]["ms"], 1),
        "speedup": round(results["torch"]["ms"] / results["ort"]["ms"], 3),
        "speedup_default": round(results["torch"]["ms"] / results["ort_default"]["ms"], 3),
        "torch_peak_rss_mb": round(results["torch"]["peak_rss_mb"]),
        "ort_peak_rss_mb": round(results["ort"]["peak_rss_mb"]),
        "frames": args.frames,
        "classes": args.classes,
        "threads": args.threads,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""CPU speed of the reduced-precision ONNX models against FP32, in one run (ratios matter).

Times FP32, INT8 QDQ (ONNX Runtime's integer kernels, and simulated: Q/DQ around float
convolutions) and FP16 for the demo bundle (with its committed ``model.int8.onnx``, else one
calibrated here) and, with ``--full``, for the full-size I3D (random weights, 100 classes, T=64,
calibrated on a few probe clips). On a CPU these models serve accuracy checks, not speed: FP16 and
INT8 speed is TensorRT's job on the Jetson. The last line printed is a JSON object.

    python bench/precision.py [--full] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibration.qdq import quantize_to_qdq  # noqa: E402
from calibration.runners import write_fp16_model  # noqa: E402
from edge.runtime.backends.onnxruntime import default_threads, session_options  # noqa: E402


def _median_ms(path: Path, clip: np.ndarray, runs: int, simulated: bool = False) -> float:
    options = session_options(default_threads())
    if simulated:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: clip}
    session.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def measure(name: str, fp32: Path, int8: Path, clip: np.ndarray, runs: int, work: Path) -> dict[str, float]:
    fp16 = work / (fp32.stem + ".fp16.onnx")
    write_fp16_model(fp32, fp16)
    result = {
        "fp32_ms": _median_ms(fp32, clip, runs),
        "int8_ms": _median_ms(int8, clip, runs),
        "int8_simulated_ms": _median_ms(int8, clip, runs, simulated=True),
        "fp16_ms": _median_ms(fp16, clip, runs),
    }
    result = {key: round(value, 1) for key, value in result.items()}
    result["int8_vs_fp32"] = round(result["int8_ms"] / result["fp32_ms"], 2)
    result["int8_simulated_vs_fp32"] = round(result["int8_simulated_ms"] / result["fp32_ms"], 2)
    result["fp16_vs_fp32"] = round(result["fp16_ms"] / result["fp32_ms"], 2)
    print(
        f"{name:22s} FP32 {result['fp32_ms']:7.0f} ms   INT8 {result['int8_ms']:7.0f} ms "
        f"({result['int8_vs_fp32']:.2f}x)   INT8 simulated {result['int8_simulated_ms']:7.0f} ms "
        f"({result['int8_simulated_vs_fp32']:.2f}x)   FP16 {result['fp16_ms']:7.0f} ms "
        f"({result['fp16_vs_fp32']:.2f}x)",
        flush=True,
    )
    return result


def demo_case(work: Path, runs: int) -> dict[str, float]:
    from convert.sources import open_source
    from edge.core.bundle import load_bundle

    bundle = load_bundle(ROOT / "edge" / "demo" / "bundle")
    int8 = bundle.path / "model.int8.onnx"
    if not int8.is_file():
        int8 = work / "demo.int8.onnx"
        clips = (c.clip for c in open_source("synthetic", bundle.spec, 16, seed=1))
        quantize_to_qdq(bundle.model_path, int8, bundle.spec.input_name, clips)
    clip = next(open_source("synthetic", bundle.spec, 1, seed=9)).clip
    return measure("demo (w=1/8, T=32)", bundle.model_path, int8, clip, runs, work)


def full_case(work: Path, runs: int) -> dict[str, float]:
    from convert.export import export_onnx
    from convert.i3d import InceptionI3d
    from convert.random_model import randomize, smooth_random_clips

    fp32, int8 = work / "full.onnx", work / "full.int8.onnx"
    export_onnx(randomize(InceptionI3d(100), seed=0, frames=16, probes=2), 64, fp32)
    quantize_to_qdq(fp32, int8, "clip", (c[None] for c in smooth_random_clips(4, 64, seed=2)))
    return measure("full (w=1, T=64)", fp32, int8, smooth_random_clips(1, 64, seed=3), runs, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also the full-size I3D (a few minutes)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asl-edge-precision-") as folder:
        work = Path(folder)
        summary = {"threads": default_threads(), "demo": demo_case(work, args.runs)}
        if args.full:
            summary["full"] = full_case(work, args.runs)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Full-size I3D on this CPU: PyTorch eager, ONNX Runtime, and OpenVINO in FP32, BF16 and INT8.

The model is the full network (width 1, 100 classes, T=64: 111 GMAC a clip) computing the trained
demo model (bench/full_model.py), so the INT8 and BF16 gates judge a model that has learnt
something; PyTorch runs the same network with random weights (its speed does not depend on them).
Each engine runs in its own child process (so each peak RSS is its own) and all are loaded at
once: the timed runs are interleaved, one run of each engine per round, so the drift of these
shared machines hits every engine alike. Compare the ratios. OpenVINO BF16 runs only where the
CPU has BF16; OpenVINO INT8 is the model NNCF quantizes from synthetic signs, as ``asl-edge
calibrate`` does. Each OpenVINO precision is gated against ONNX Runtime FP32 on fresh synthetic
signs with ``asl-edge verify``'s tolerances (FP32: logits within 1e-3 relative and the same top-1;
BF16 and INT8: the same top-1 on at least 95% of the signs); the fastest that passes is
``openvino_ms``. Throughput is in GMAC/s (the convolutions' multiply-accumulates, from the ONNX
graph), to compare with the CPU's peak. The last line printed is a JSON object with ``torch_ms``,
``ort_fp32_ms``, ``speedup`` (ONNX Runtime FP32 vs PyTorch), ``openvino_ms`` and
``openvino_precision``.

    python bench/inference.py [--runs 5] [--probes 24] [--calibration 16]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

ENGINES = {
    "torch": "PyTorch eager",
    "ort_default": "ONNX Runtime FP32, default options",
    "ort": "ONNX Runtime FP32, tuned (asl-edge backend)",
    "openvino_fp32": "OpenVINO FP32 (asl-edge backend)",
    "openvino_bf16": "OpenVINO BF16 (asl-edge backend)",
    "openvino_int8": "OpenVINO INT8, NNCF (asl-edge backend)",
}
OPENVINO_FASTEST_FIRST = ("int8", "bf16", "fp32")
REFERENCE = "reference_logits.npy"
PROBE_SEED, CALIBRATION_SEED, CLIP_SEED = 2_000, 1_000, 3_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_engine(name: str, work: Path, args: argparse.Namespace) -> Callable[[np.ndarray], np.ndarray]:
    """One inference function for ``name``, ready to be timed."""
    from edge.core.bundle import load_bundle

    bundle = load_bundle(work / "bundle")
    if name == "torch":
        import torch

        from convert.i3d import InceptionI3d

        torch.set_num_threads(args.threads)
        model = InceptionI3d(args.classes)
        model.load_state_dict(torch.load(work / "weights.pt", weights_only=True))
        model.eval()

        def run_torch(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        return run_torch
    if name == "ort_default":
        import onnxruntime as ort

        session = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"clip": x})[0]
    if name == "ort":
        from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=args.threads).infer
    from edge.runtime.backends.openvino import OpenVinoBackend

    return OpenVinoBackend(bundle, name.removeprefix("openvino_"), threads=args.threads).infer


def gate(name: str, run: Callable[[np.ndarray], np.ndarray], work: Path) -> dict[str, object]:
    """ONNX Runtime FP32 writes the reference logits of the probe signs; each OpenVINO precision is
    checked against them with ``asl-edge verify``'s tolerances."""
    from calibration.verify import TOLERANCES

    if name != "ort" and not name.startswith("openvino_"):
        return {}
    labels = np.load(work / "probe_labels.npy")
    # One probe in memory at a time, so that the peak RSS stays the engine's own.
    logits = np.stack([np.array(run(np.load(work / f"probe_{i:03d}.npy"))) for i in range(len(labels))])
    top1 = logits.mean(-1).argmax(-1).ravel()
    accuracy = {"top1_accuracy": float(np.mean(top1 == labels))}
    if name == "ort":
        np.save(work / REFERENCE, logits)
        return accuracy
    reference = np.load(work / REFERENCE)
    max_rel, min_agreement = TOLERANCES[name.removeprefix("openvino_")]
    rel = float(np.abs(logits - reference).max() / max(np.abs(reference).max(), 1e-12))
    agreement = float(np.mean(top1 == reference.mean(-1).argmax(-1).ravel()))
    passed = rel <= max_rel and agreement >= min_agreement
    return {**accuracy, "max_rel_diff": rel, "top1_agreement": agreement, "passed": passed}


def child(name: str, work: Path, args: argparse.Namespace) -> None:
    """Load, warm up, gate, say ready; then one timed run per ``run`` line; ``done`` ends it."""
    run = load_engine(name, work, args)
    clip = np.load(work / "clip.npy")
    for _ in range(args.warmup):
        run(clip)
    checked = gate(name, run, work)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        started, cpu_started = time.perf_counter(), time.process_time()
        run(clip)
        wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        print(f"{wall_s * 1000.0:.3f} {cpu_s * 1000.0:.3f}", flush=True)
    print(json.dumps({"peak_rss_mb": _peak_rss_mb(), "gate": checked}), flush=True)


def conv_macs(model_path: Path) -> int:
    """Multiply-accumulates of the model's convolutions for one clip."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*model.graph.value_info, *model.graph.output, *model.graph.input)
    }
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    return sum(
        int(np.prod(shapes[node.output[0]])) * int(np.prod(weights[node.input[1]][1:]))
        for node in model.graph.node
        if node.op_type == "Conv"
    )


def prepare(work: Path, args: argparse.Namespace) -> None:
    """The widened demo bundle with its OpenVINO INT8 model, PyTorch's random weights, the timed
    clip and the gate's probe signs (all synthetic signs at T frames)."""
    import torch

    from bench.full_model import write_full_bundle
    from calibration.openvino_int8 import quantize_for_openvino
    from convert.i3d import InceptionI3d
    from convert.random_model import randomize
    from convert.sources import open_source
    from edge.core.bundle import (
        DEMO_BUNDLE,
        OPENVINO_INT8_FILE,
        OPENVINO_INT8_WEIGHTS_FILE,
        load_bundle,
        sha256_of,
        update_manifest,
    )

    torch.set_num_threads(args.threads)
    torch.save(
        randomize(InceptionI3d(args.classes), seed=0, frames=16, probes=2).state_dict(), work / "weights.pt"
    )
    bundle = write_full_bundle(work / "bundle", args.classes, args.frames)
    demo = load_bundle(DEMO_BUNDLE).spec
    signs = dataclasses.replace(demo, input_shape=(1, 3, args.frames, 224, 224))
    np.save(work / "clip.npy", next(open_source("synthetic", signs, 1, CLIP_SEED)).clip)
    labels = []
    for index, probe in enumerate(open_source("synthetic", signs, args.probes, PROBE_SEED)):
        np.save(work / f"probe_{index:03d}.npy", probe.clip)
        labels.append(probe.label)
    np.save(work / "probe_labels.npy", np.array(labels))
    quantize_for_openvino(
        bundle / "model.onnx",
        bundle / OPENVINO_INT8_FILE,
        lambda: (c.clip for c in open_source("synthetic", signs, args.calibration, CALIBRATION_SEED)),
        args.calibration,
    )
    names = (OPENVINO_INT8_FILE, OPENVINO_INT8_WEIGHTS_FILE)
    update_manifest(bundle, {name: sha256_of(bundle / name) for name in names}, {})


def _command(phase: str, work: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, __file__, "--phase", phase, "--work", str(work)]
    for option in ("frames", "classes", "runs", "warmup", "threads", "probes", "calibration"):
        command += [f"--{option}", str(getattr(args, option))]
    return command


def _start(name: str, work: Path, args: argparse.Namespace) -> subprocess.Popen:
    process = subprocess.Popen(
        _command(name, work, args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    ready = process.stdout.readline().strip()  # type: ignore[union-attr]
    if ready != "ready":
        raise RuntimeError(f"{name} did not start (exit {process.wait()})")
    return process


def _ask(process: subprocess.Popen, line: str) -> str:
    process.stdin.write(line + "\n")  # type: ignore[union-attr]
    process.stdin.flush()  # type: ignore[union-attr]
    return process.stdout.readline().strip()  # type: ignore[union-attr]


def engines_for_this_cpu() -> tuple[list[str], str]:
    """The engines to run, and the CPU's native precisions as OpenVINO names them."""
    from edge.runtime.backends.openvino import cpu_capabilities, import_openvino

    capabilities = cpu_capabilities(import_openvino().Core())
    names = [n for n in ENGINES if n != "openvino_bf16" or "BF16" in capabilities]
    return names, ", ".join(sorted(c for c in capabilities if c in ("FP32", "BF16", "INT8")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--probes", type=int, default=24, help="synthetic signs of the precision gates")
    parser.add_argument("--calibration", type=int, default=16, help="synthetic signs NNCF calibrates on")
    parser.add_argument("--threads", type=int, default=0, help="0: every core this process may use")
    parser.add_argument("--phase", choices=("prepare", *ENGINES), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.threads:
        from edge.runtime.backends.onnxruntime import default_threads

        args.threads = default_threads()
    if args.phase == "prepare":
        prepare(args.work, args)
        return
    if args.phase:
        child(args.phase, args.work, args)
        return

    names, capabilities = engines_for_this_cpu()
    with tempfile.TemporaryDirectory(prefix="asl-edge-bench-") as folder:
        work = Path(folder)
        print(
            f"I3D full width, {args.classes} classes, clip 1x3x{args.frames}x224x224, "
            f"{args.threads} threads, CPU natively runs {capabilities}; median of {args.runs} interleaved "
            f"runs after {args.warmup} warm-up",
            flush=True,
        )
        subprocess.run(_command("prepare", work, args), check=True)
        gmac = conv_macs(work / "bundle" / "model.onnx") / 1e9
        processes = {name: _start(name, work, args) for name in names}  # "ort" first: the reference
        times: dict[str, list[float]] = {name: [] for name in names}
        cpu_times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.runs):
            for name, process in processes.items():
                wall_ms, cpu_ms = _ask(process, "run").split()
                times[name].append(float(wall_ms))
                cpu_times[name].append(float(cpu_ms))
        results = {}
        for name, process in processes.items():
            results[name] = json.loads(_ask(process, "done"))
            process.wait()
    ort_ms = statistics.median(times["ort"])
    rows = {}
    for name in names:
        ms = statistics.median(times[name])
        rows[name] = {
            "ms": round(ms, 1),
            "min_ms": round(min(times[name]), 1),
            "vs_ort_fp32": round(ort_ms / ms, 2),
            "gmac_per_s": round(gmac / (ms / 1000.0), 1),
            # per second of CPU time (all threads): what a core sustains, whatever else ran meanwhile
            "gmac_per_cpu_s": round(gmac / (statistics.median(cpu_times[name]) / 1000.0), 1),
            "peak_rss_mb": round(results[name]["peak_rss_mb"]),
            **results[name]["gate"],
        }
        gate_text = f"  top-1 {rows[name]['top1_accuracy']:.0%}" if "top1_accuracy" in rows[name] else ""
        if "passed" in rows[name]:
            gate_text += (
                f", gate {'PASS' if rows[name]['passed'] else 'FAIL'} (rel {rows[name]['max_rel_diff']:.1e}, "
                f"same top-1 as ONNX Runtime on {rows[name]['top1_agreement']:.0%} of {args.probes} signs)"
            )
        print(
            f"{ENGINES[name]:40s} {ms:8.0f} ms (min {min(times[name]):.0f})  {ort_ms / ms:5.2f}x ORT FP32  "
            f"{rows[name]['gmac_per_s']:6.1f} GMAC/s ({rows[name]['gmac_per_cpu_s']:5.1f} per CPU-s)  "
            f"peak RSS {rows[name]['peak_rss_mb']:5d} MB{gate_text}"
        )
    passed = [p for p in OPENVINO_FASTEST_FIRST if rows.get(f"openvino_{p}", {}).get("passed")]
    fastest = min(passed, key=lambda p: rows[f"openvino_{p}"]["ms"]) if passed else None
    summary = {
        "torch_ms": rows["torch"]["ms"],
        "ort_fp32_ms": rows["ort"]["ms"],
        "ort_default_ms": rows["ort_default"]["ms"],
        "speedup": round(rows["torch"]["ms"] / rows["ort"]["ms"], 3),
        "speedup_default": round(rows["torch"]["ms"] / rows["ort_default"]["ms"], 3),
        "openvino_ms": rows[f"openvino_{fastest}"]["ms"] if fastest else None,
        "openvino_precision": fastest,
        "openvino_vs_ort_fp32": rows[f"openvino_{fastest}"]["vs_ort_fp32"] if fastest else None,
        "torch_peak_rss_mb": rows["torch"]["peak_rss_mb"],
        "ort_peak_rss_mb": rows["ort"]["peak_rss_mb"],
        "engines": rows,
        "gmac_per_clip": round(gmac, 2),
        "cpu_native": capabilities,
        "frames": args.frames,
        "classes": args.classes,
        "threads": args.threads,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

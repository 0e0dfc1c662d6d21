"""The ``asl-edge`` command. Only this module turns errors into messages and exit codes.

Exit codes: 0 success; 2 bad input (a source, checkpoint, bundle, config or missing TensorRT that
makes the command impossible); 1 a check that ran and failed (INT8 beyond its accuracy margin, an
engine outside tolerance) or an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from edge import __version__
from edge.errors import AslEdgeError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _error(message: str) -> None:
    """One line per error, even when a library's message spans several."""
    line = " | ".join(part.strip() for part in message.strip().splitlines() if part.strip())
    print(f"asl-edge: error: {line}", file=sys.stderr, flush=True)


def _parse_roi(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,width,height as fractions, got {text!r}")
    return values[0], values[1], values[2], values[3]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def cmd_convert(args: argparse.Namespace) -> int:
    from convert.pipeline import convert_checkpoint
    from edge.preprocess import PreprocessParams

    try:
        preprocessing = PreprocessParams(resize_short_side=args.resize_short_side, roi=args.roi)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    result = convert_checkpoint(
        args.checkpoint,
        args.labels,
        args.frames,
        args.output,
        preprocessing,
        args.parity_clips,
        args.sampling,
    )
    parity = result.parity
    spec = result.manifest.spec
    print(
        f"wrote {result.bundle}: {spec.num_classes} classes, input {list(spec.input_shape)}, "
        f"output {list(spec.output_shape)}"
    )
    print(
        f"parity (ONNX Runtime vs PyTorch, {parity.clips} clips): max abs diff "
        f"{parity.max_abs_diff:.3g}, relative {parity.max_rel_diff:.3g}, top-1 agreement "
        f"{parity.top1_agreement:.0%}"
    )
    return EXIT_OK


def _open_recognizer(args: argparse.Namespace):
    from edge.backends.select import open_backend
    from edge.bundle import load_bundle, resolve_bundle_path
    from edge.config import load_config
    from edge.recognize import VideoRecognizer

    config = load_config(args.config).model
    bundle = load_bundle(resolve_bundle_path(args.bundle, config.bundle))
    backend, _ = open_backend(
        bundle, config.backend, args.threads or config.threads, config.precision, config.build_if_missing
    )
    top_k = args.top_k or config.top_k
    combine = args.combine or config.combine
    return VideoRecognizer(backend, combine, top_k, config.min_confidence, args.sampling)  # type: ignore[arg-type]


def cmd_recognize(args: argparse.Namespace) -> int:
    recognizer = _open_recognizer(args)
    failed = 0
    try:
        for source in args.sources:
            try:
                recognition = recognizer.recognize_source(source)
            except AslEdgeError as exc:
                failed += 1
                message = str(exc)
                _error(message if source in message else f"{source}: {message}")
                continue
            if args.json:
                print(json.dumps(recognition.to_json(), ensure_ascii=False), flush=True)
            else:
                decision = recognition.result
                print(f"{source}\t{decision.word}\t{decision.confidence:.3f}", flush=True)
    finally:
        recognizer.backend.close()
    return EXIT_BAD_INPUT if failed else EXIT_OK


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def cmd_calibrate(args: argparse.Namespace) -> int:
    from calibration.calibrate import CalibrationPlan, calibrate_bundle

    plan = CalibrationPlan(
        clips=args.clips,
        count=args.count,
        eval_source=args.eval,
        eval_count=args.eval_count,
        margin=args.margin,
        method=args.method,
        video_root=Path(args.video_root) if args.video_root else None,
    )
    report = calibrate_bundle(Path(args.bundle), plan)
    print(report.table())
    print(f"wrote {Path(args.bundle) / 'model.int8.onnx'} and int8_report.json")
    return EXIT_OK if report.passed else EXIT_FAILURE


def cmd_build(args: argparse.Namespace) -> int:
    from convert.engine import build_engine

    engine = build_engine(Path(args.bundle), args.precision, args.workspace_mb, args.dla_core)
    print(f"wrote {engine} and {engine.name}.json")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from calibration.clips import SYNTHETIC, open_source, random_clips
    from demo.signer import GLOSSES
    from edge.backends.onnxruntime import OnnxRuntimeBackend
    from edge.backends.tensorrt import TensorRTBackend, import_tensorrt
    from edge.bundle import load_bundle
    from edge.engines import current_device, read_sidecar, select_engine
    from edge.errors import BackendError
    from edge.verify import compare_backends

    import_tensorrt()
    bundle = load_bundle(args.bundle)
    engine = (
        Path(args.engine) if args.engine else select_engine(bundle.path, current_device(), bundle.checksums())
    )
    if engine is None:
        raise BackendError(f"no engine for this device in {bundle.path / 'engines'}; run 'asl-edge build'")
    source = args.clips or (SYNTHETIC if bundle.spec.labels == GLOSSES else None)
    clips = (
        open_source(source, bundle.spec, args.count) if source else random_clips(bundle.spec, args.count, 0)
    )
    candidate = TensorRTBackend(bundle, engine)
    reference = OnnxRuntimeBackend(bundle.model_path, bundle.spec)
    try:
        report = compare_backends(
            candidate, reference, (c.clip for c in clips), read_sidecar(engine).precision
        )
    finally:
        candidate.close()
        reference.close()
    print(f"{engine.name}: {report.summary()}")
    return EXIT_OK if report.passed else EXIT_FAILURE


def cmd_run(args: argparse.Namespace) -> int:
    from edge.config import find_config_path, load_config
    from edge.daemon import run_daemon

    path = find_config_path(args.config)
    config = load_config(path)
    logging.getLogger().setLevel(config.logging.level.upper())
    return run_daemon(config, path)


def cmd_status(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.health import check_health_file
    from edge.status import collect_status, format_status

    config = load_config(args.config)
    if args.check:
        alive, why = check_health_file(Path(config.storage.state_dir).expanduser())
        if not alive:
            _error(why)
            return EXIT_FAILURE
        print(why)
        return EXIT_OK
    timeout_s = args.timeout_s if args.timeout_s is not None else config.health.interval_s + 2.0
    report = collect_status(config, timeout_s)
    print(json.dumps(report.to_json(), ensure_ascii=False) if args.json else format_status(report))
    problem = report.problem()
    if problem:
        _error(problem)
        return EXIT_FAILURE
    return EXIT_OK


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def cmd_sync(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.sync import FeedbackSync, SyncBusy, SyncInterrupted, UploadFailed

    config = load_config(args.config)
    sync = FeedbackSync(config)
    try:
        result = sync.run_pass(lock_wait_s=args.wait_s)
    except (SyncBusy, UploadFailed, SyncInterrupted) as exc:
        _error(str(exc))
        return EXIT_FAILURE
    print(
        f"uploaded {result.rows} feedback rows in {result.batches} batches and {result.clips} clips to "
        f"s3://{config.sync.bucket}/{config.sync.prefix.strip('/')}; {result.backlog} rows wait",
        flush=True,
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from demo.live import main as live_demo

    return live_demo(["--seed", str(args.seed)] + (["--fast"] if args.fast else []))


def _size(text: str) -> tuple[int, int]:
    from demo.synth import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_synth(args: argparse.Namespace) -> int:
    from demo.synth import write_dataset

    try:
        write_dataset(
            args.out, args.clips, args.seed, args.sentences, args.size, args.fps, not args.no_progress
        )
    except (ValueError, RuntimeError, OSError) as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    print(f"wrote {args.clips} clips and {args.sentences} sentences to {args.out}")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge.config import read_config

    _, problems = read_config(args.file)
    for problem in problems:
        print(problem)
    if problems:
        return EXIT_BAD_INPUT
    print(f"{args.file}: ok")
    return EXIT_OK


def cmd_config_reference(args: argparse.Namespace) -> int:
    from edge.config_doc import render_reference, write_reference

    if args.write:
        changed = write_reference(Path(args.write))
        print(f"{args.write}: configuration reference {'updated' if changed else 'already current'}")
    else:
        print(render_reference(), end="")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asl-edge", description="American Sign Language word recognition on the edge."
    )
    parser.add_argument("--version", action="version", version=f"asl-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="WLASL I3D checkpoint to a verified ONNX bundle")
    convert.add_argument("checkpoint", help="PyTorch state_dict (.pt/.pth) of a WLASL InceptionI3d")
    convert.add_argument("--labels", required=True, help="wlasl_class_list.txt or one gloss per line")
    convert.add_argument(
        "--frames", type=_positive_int, default=64, help="clip length T (multiple of 8, >= 16)"
    )
    convert.add_argument("-o", "--output", required=True, help="bundle directory to write")
    convert.add_argument("--resize-short-side", type=_positive_int, default=256, help="pixels (default 256)")
    convert.add_argument("--roi", type=_parse_roi, help="region of interest x,y,w,h as fractions")
    convert.add_argument(
        "--sampling",
        choices=("windows", "resample"),
        default="windows",
        help="how videos become T-frame clips: WLASL-style windows (default) or whole-sign resampling",
    )
    convert.add_argument("--parity-clips", type=_positive_int, default=3, help="clips for the parity check")
    convert.set_defaults(handler=cmd_convert)

    calibrate = commands.add_parser(
        "calibrate", help="INT8 QDQ model and accuracy report (FP32 vs INT8 vs FP16)"
    )
    calibrate.add_argument("bundle", help="model bundle directory")
    calibrate.add_argument(
        "--clips", required=True, help="'synthetic', a folder of videos, or a WLASL split (nslt_N.json)"
    )
    calibrate.add_argument("--count", type=_positive_int, default=64, help="calibration clips (64)")
    calibrate.add_argument(
        "--eval", help="labelled validation set (default: the split's test subset, fresh synthetic clips)"
    )
    calibrate.add_argument("--eval-count", type=_positive_int, default=120, help="validation clips (120)")
    calibrate.add_argument(
        "--margin", type=_fraction, default=0.01, help="top-1 INT8 may lose, as a fraction (0.01)"
    )
    calibrate.add_argument("--method", choices=("entropy", "minmax", "percentile"), default="entropy")
    calibrate.add_argument("--video-root", help="WLASL videos folder (default: videos/ beside the split)")
    calibrate.set_defaults(handler=cmd_calibrate)

    build = commands.add_parser("build", help="TensorRT engine for this device (on the Jetson)")
    build.add_argument("bundle", help="model bundle directory")
    build.add_argument("--precision", choices=("fp16", "int8", "fp32"), default="fp16")
    build.add_argument("--workspace-mb", type=_positive_int, default=1024, help="builder workspace (MiB)")
    build.add_argument("--dla-core", type=int, help="build for this DLA core (GPU fallback allowed)")
    build.set_defaults(handler=cmd_build)

    verify = commands.add_parser("verify", help="compare a TensorRT engine with ONNX Runtime FP32")
    verify.add_argument("bundle", help="model bundle directory")
    verify.add_argument("--engine", help="engine file (default: this device's best engine in the bundle)")
    verify.add_argument(
        "--clips", help="'synthetic', a folder of videos or a WLASL split (default: synthetic or random)"
    )
    verify.add_argument("--count", type=_positive_int, default=16, help="clips to compare (16)")
    verify.set_defaults(handler=cmd_verify)

    recognize = commands.add_parser("recognize", help="recognize the sign in video files or URLs")
    recognize.add_argument("sources", nargs="+", metavar="SOURCE", help="video file or http(s) URL")
    recognize.add_argument("--bundle", help="model bundle (default: config, else the demo bundle)")
    recognize.add_argument("--config", help="config file (default: $ASL_EDGE_CONFIG, /etc/asl-edge)")
    recognize.add_argument("--top-k", type=_positive_int, help="ranked words to report")
    recognize.add_argument("--combine", choices=("mean", "max"), help="score combination over time")
    recognize.add_argument(
        "--sampling", choices=("windows", "resample"), help="override the bundle's temporal sampling"
    )
    recognize.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    recognize.add_argument("--json", action="store_true", help="one JSON object per source")
    recognize.set_defaults(handler=cmd_recognize)

    synth = commands.add_parser(
        "synth", help="render synthetic signer videos (placeholder gestures, not real ASL)"
    )
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--clips", type=int, required=True, help="one-sign clips (labels.csv)")
    synth.add_argument("--seed", type=int, required=True, help="same seed, same pixels")
    synth.add_argument("--sentences", type=int, default=0, help="multi-sign videos (sentences.json)")
    synth.add_argument("--size", type=_size, default=(640, 480), help="WIDTHxHEIGHT (default 640x480)")
    synth.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(handler=cmd_synth)

    run = commands.add_parser("run", help="the kiosk daemon: camera to MQTT words, feedback kept")
    run.add_argument("--config", help="config file (default: $ASL_EDGE_CONFIG, /etc/asl-edge)")
    run.set_defaults(handler=cmd_run)

    sync = commands.add_parser("sync", help="upload unsynced feedback to S3 now (one pass, as the daemon's)")
    sync.add_argument("--config", help="config file (default: $ASL_EDGE_CONFIG, /etc/asl-edge)")
    sync.add_argument(
        "--wait-s", type=float, default=60.0, help="seconds to wait for a pass in progress (default 60)"
    )
    sync.set_defaults(handler=cmd_sync)

    status = commands.add_parser(
        "status", help="the kiosk's state, health and backlog (broker and local state directory)"
    )
    status.add_argument("--config", help="config file (default: $ASL_EDGE_CONFIG, /etc/asl-edge)")
    status.add_argument(
        "--timeout-s",
        type=_positive_float,
        help="seconds to wait for a health message (default: [health] interval_s + 2)",
    )
    status.add_argument(
        "--check",
        action="store_true",
        help="liveness probe without the broker: exit 0 when health.json is younger than 3 intervals",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(handler=cmd_status)

    demo = commands.add_parser("demo", help="the daemon on a synthetic sentence, with a local broker")
    demo.add_argument("--seed", type=int, default=2026, help="which synthetic sentence")
    demo.add_argument("--fast", action="store_true", help="read the video as fast as possible")
    demo.set_defaults(handler=cmd_demo)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(handler=cmd_check_config)

    reference = commands.add_parser(
        "config-reference", help="every config key as Markdown tables, from the config schema"
    )
    reference.add_argument("--write", metavar="FILE", help="replace the generated block in FILE (README.md)")
    reference.set_defaults(handler=cmd_config_reference)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="asl-edge: %(levelname)s: %(message)s",
    )
    try:
        return args.handler(args)
    except AslEdgeError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``asl-edge calibrate`` and ``asl-edge verify``: the INT8 and engine checks of this layer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.core.command_line import EXIT_FAILURE, EXIT_OK, fraction, positive_int


def cmd_calibrate(args: argparse.Namespace) -> int:
    from calibration.calibrate import CalibrationPlan, calibrate_bundle

    plan = CalibrationPlan(
        clips=args.clips,
        count=args.count,
        eval_source=args.eval,
        eval_count=args.eval_count,
        margin=args.margin,
        min_agreement=args.min_agreement,
        method=args.method,
        video_root=Path(args.video_root) if args.video_root else None,
        openvino=args.openvino,
    )
    done = calibrate_bundle(
        Path(args.bundle), plan, lambda line: print(f"asl-edge: {line}", file=sys.stderr, flush=True)
    )
    print(done.summary(Path(args.bundle)))
    return EXIT_OK if done.report.all_passed else EXIT_FAILURE


def cmd_verify(args: argparse.Namespace) -> int:
    from calibration.verify import verify_engine

    engine, report = verify_engine(Path(args.bundle), args.engine, args.clips, args.count)
    print(f"{engine.name}: {report.summary()}")
    return EXIT_OK if report.passed else EXIT_FAILURE


def register(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="INT8 models (QDQ for TensorRT, NNCF for OpenVINO) and their accuracy report and gate",
    )
    calibrate.add_argument("bundle", help="model bundle directory")
    calibrate.add_argument(
        "--clips", required=True, help="'synthetic', a folder of videos, or a WLASL split (nslt_N.json)"
    )
    calibrate.add_argument("--count", type=positive_int, default=64, help="calibration clips (64)")
    calibrate.add_argument(
        "--eval", help="labelled validation set (default: the split's test subset, fresh synthetic clips)"
    )
    calibrate.add_argument("--eval-count", type=positive_int, default=120, help="validation clips (120)")
    calibrate.add_argument(
        "--margin", type=fraction, default=0.01, help="top-1 INT8 may lose, as a fraction (0.01)"
    )
    calibrate.add_argument(
        "--min-agreement",
        type=fraction,
        default=0.95,
        help="fraction of clips on which INT8 must agree with FP32's top-1 (0.95)",
    )
    calibrate.add_argument("--method", choices=("entropy", "minmax", "percentile"), default="entropy")
    calibrate.add_argument("--video-root", help="WLASL videos folder (default: videos/ beside the split)")
    calibrate.add_argument(
        "--openvino",
        choices=("auto", "yes", "no"),
        default="auto",
        help="the OpenVINO INT8 model (NNCF): auto makes it where NNCF and OpenVINO are installed "
        "(a Jetson needs neither), yes insists, no skips it",
    )
    calibrate.set_defaults(handler=cmd_calibrate)

    verify = commands.add_parser("verify", help="compare a TensorRT engine with ONNX Runtime FP32")
    verify.add_argument("bundle", help="model bundle directory")
    verify.add_argument("--engine", help="engine file (default: this device's best engine in the bundle)")
    verify.add_argument(
        "--clips", help="'synthetic', a folder of videos or a WLASL split (default: synthetic or random)"
    )
    verify.add_argument("--count", type=positive_int, default=16, help="clips to compare (16)")
    verify.set_defaults(handler=cmd_verify)

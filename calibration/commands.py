"""``asl-edge calibrate`` and ``asl-edge verify`` (the INT8 and engine checks of this layer) and
``asl-edge evaluate`` (a fine-tuned candidate against its baseline: the gate before publishing)."""

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
    )
    report = calibrate_bundle(
        Path(args.bundle), plan, lambda line: print(f"asl-edge: {line}", file=sys.stderr, flush=True)
    )
    print(report.table())
    print(
        f"wrote {Path(args.bundle) / 'model.int8.onnx'}, model.openvino.int8.xml (.bin) and int8_report.json"
    )
    return EXIT_OK if report.all_passed else EXIT_FAILURE


def cmd_verify(args: argparse.Namespace) -> int:
    from calibration.verify import verify_engine

    engine, report = verify_engine(Path(args.bundle), args.engine, args.clips, args.count)
    print(f"{engine.name}: {report.summary()}")
    return EXIT_OK if report.passed else EXIT_FAILURE


def cmd_evaluate(args: argparse.Namespace) -> int:
    from calibration.evaluate import EvaluationPlan, evaluate_candidate, summary_lines
    from calibration.gate import GateRules

    plan = EvaluationPlan(
        candidate=Path(args.candidate),
        baseline=Path(args.baseline),
        dataset=Path(args.dataset),
        regression=args.regression,
        regression_count=args.regression_count,
        report_dir=Path(args.report) if args.report else None,
        rules=GateRules(alpha=args.alpha, margin=args.margin, max_class_drop=args.max_class_drop),
    )
    result = evaluate_candidate(plan, lambda line: print(f"asl-edge: {line}", file=sys.stderr, flush=True))
    print("\n".join(summary_lines(result)))
    return EXIT_OK if result.verdict.passed else EXIT_FAILURE


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
    calibrate.set_defaults(handler=cmd_calibrate)

    verify = commands.add_parser("verify", help="compare a TensorRT engine with ONNX Runtime FP32")
    verify.add_argument("bundle", help="model bundle directory")
    verify.add_argument("--engine", help="engine file (default: this device's best engine in the bundle)")
    verify.add_argument(
        "--clips", help="'synthetic', a folder of videos or a WLASL split (default: synthetic or random)"
    )
    verify.add_argument("--count", type=positive_int, default=16, help="clips to compare (16)")
    verify.set_defaults(handler=cmd_verify)

    evaluate = commands.add_parser(
        "evaluate", help="a fine-tuned bundle against its baseline on new and old data: the gate"
    )
    evaluate.add_argument("candidate", help="the fine-tuned bundle (the verdict is recorded in it)")
    evaluate.add_argument("--baseline", required=True, help="the bundle it would replace")
    evaluate.add_argument(
        "--dataset", required=True, help="dataset directory (its test split is the new data)"
    )
    evaluate.add_argument(
        "--regression",
        help="what the baseline knew: 'synthetic', a folder of labelled videos, a WLASL split "
        "(default: the replay source in the candidate's lineage, on examples it did not train on)",
    )
    evaluate.add_argument("--regression-count", type=positive_int, default=120, help="regression clips (120)")
    evaluate.add_argument(
        "--report", help="folder for report.html and report.json (default: CANDIDATE.evaluation)"
    )
    evaluate.add_argument(
        "--alpha", type=fraction, default=0.05, help="significance of the paired sign test, one-sided (0.05)"
    )
    evaluate.add_argument(
        "--margin",
        type=fraction,
        default=0.01,
        help="top-1 the candidate may lose on the regression source (0.01)",
    )
    evaluate.add_argument(
        "--max-class-drop",
        type=fraction,
        default=0.10,
        help="top-1 any class may lose where it has enough clips to tell (0.10)",
    )
    evaluate.set_defaults(handler=cmd_evaluate)

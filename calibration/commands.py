"""``asl-edge calibrate`` and ``asl-edge verify`` (the INT8 and engine checks of this layer),
``asl-edge dataset build`` (the kiosks' feedback as a training set), ``asl-edge evaluate`` (a
fine-tuned candidate against its baseline: the gate before publishing), and the fleet's verdict on
its releases: ``asl-edge fleet report`` and ``asl-edge rollout step``."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

from edge.core.command_line import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    fraction,
    number,
    positive_int,
    print_error,
)


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


def day(text: str) -> str:
    """An argparse type: a UTC day as YYYY-MM-DD."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}")


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from calibration.dataset.build import BuildPlan, build_dataset
    from calibration.dataset.errors import SourceUnavailable

    if args.since and args.until and args.since > args.until:
        print_error(f"--since {args.since} is after --until {args.until}")
        return EXIT_BAD_INPUT
    plan = BuildPlan(
        source=args.source,
        out=Path(args.out),
        endpoint_url=args.endpoint_url or "",
        credentials_file=args.credentials_file or "",
        since=args.since,
        until=args.until,
        labels=Path(args.labels) if args.labels else None,
        holdout_since=args.holdout_since,
        progress=not args.no_progress,
    )
    try:
        result = build_dataset(plan, lambda line: tqdm.write(f"asl-edge: {line}", file=sys.stderr))
    except (SourceUnavailable, OSError) as exc:  # S3 refused or is unreachable; a local disk failed
        print_error(str(exc))
        return EXIT_FAILURE
    splits = ", ".join(f"{subset} {count}" for subset, count in result.per_split.items())
    skipped = ", ".join(f"{reason} {count}" for reason, count in result.skipped.items()) or "none"
    print(f"read {result.rows} feedback rows in {result.batches} batches; skipped: {skipped}")
    fetched = result.fetched
    print(
        f"fetched {fetched['batches']} batches, {fetched['revocations']} revocation lists and "
        f"{fetched['clips']} clips (the rest was cached)"
    )
    print(f"dataset {result.version} in {args.out}: {result.examples} examples ({splits})")
    return EXIT_OK


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


def steps(text: str) -> tuple[float, ...]:
    """An argparse type: rollout fractions, increasing, each above 0 and at most 1 (0.1,0.5,1.0)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not 0 < v <= 1 for v in values) or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(
            f"expected increasing fractions in (0, 1], comma-separated (0.1,0.5,1.0); got {text!r}"
        )
    return values


def cmd_fleet_report(args: argparse.Namespace) -> int:
    from calibration.dataset.errors import SourceUnavailable
    from calibration.fleet.report import ReportPlan, build_report

    plan = ReportPlan(
        args.source,
        Path(args.out),
        args.endpoint_url or "",
        args.credentials_file or "",
        args.since,
        args.confidence,
    )
    try:
        report = build_report(plan)
    except (SourceUnavailable, OSError) as exc:
        print_error(str(exc))
        return EXIT_FAILURE
    for name, entry in sorted(report["releases"].items()):
        shadow = entry["shadow"]
        line = f"{name}: {entry['correct']} of {entry['judged']} judged signs right"
        if not entry["judged"]:
            line = f"{name}: not served"
        else:
            line += f" ({entry['accuracy']:.1%}, CI {entry['ci_low']:.1%}-{entry['ci_high']:.1%})"
        if shadow:
            line += f"; in shadow {shadow['correct']} of {shadow['judged']} right"
        print(line)
    print(f"wrote {Path(args.out) / 'report.json'} and report.html ({report['judged']} judged signs)")
    return EXIT_OK


def cmd_rollout_step(args: argparse.Namespace) -> int:
    from calibration.dataset.errors import SourceUnavailable
    from calibration.fleet.decide import Thresholds
    from calibration.fleet.step import StepPlan, run_step
    from edge.runtime.releases import ChannelError

    thresholds = Thresholds(args.min_judged, args.bake_s, args.margin, args.confidence, args.steps)
    plan = StepPlan(
        args.channel,
        args.feedback,
        Path(args.key),
        args.endpoint_url or "",
        args.credentials_file or "",
        thresholds,
        args.dry_run,
        Path(args.cache) if args.cache else None,
    )
    try:
        decision = run_step(plan, lambda line: print(line, flush=True))
    except (SourceUnavailable, ChannelError, OSError) as exc:
        print_error(str(exc))
        return EXIT_FAILURE
    print(f"decision: {decision.decision} — {decision.why}", flush=True)
    return EXIT_OK


def _synced_feedback(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The arguments of a command that reads what the kiosks synced (dataset build, fleet report)."""
    parser.add_argument(
        "source", metavar="s3://BUCKET/PREFIX", help="where the kiosks sync ([sync] bucket and prefix)"
    )
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS S3)")
    parser.add_argument(
        "--credentials-file",
        help="AWS shared-credentials file (default: the AWS chain; without any, requests go unsigned)",
    )
    parser.add_argument("--since", type=day, help="first day (YYYY-MM-DD, UTC) of the batches read")


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

    dataset = commands.add_parser("dataset", help="training data from the kiosks' feedback in S3")
    actions = dataset.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="a versioned dataset (videos, labels.txt, split.json, manifest.json) from synced feedback and "
        "consented clips",
    )
    _synced_feedback(build, "the dataset directory (its .cache/ makes reruns fetch only what changed)")
    build.add_argument("--until", type=day, help="last day (YYYY-MM-DD, UTC) of the batches read")
    build.add_argument(
        "--labels",
        metavar="FILE_OR_BUNDLE",
        help="the class list: a labels.txt or a model bundle (default: every word the feedback shows)",
    )
    build.add_argument(
        "--holdout-since",
        type=day,
        metavar="DAY",
        help="predictions made on this day (UTC) or later are the test split (default: by a hash of the id)",
    )
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.set_defaults(handler=cmd_dataset_build)

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

    fleet = commands.add_parser("fleet", help="how each release does in the field, from the kiosks' feedback")
    fleet_actions = fleet.add_subparsers(dest="action", required=True, metavar="ACTION")
    report = fleet_actions.add_parser(
        "report",
        help="accuracy per release (serving and shadow), cohort, word and kiosk with intervals, the paired "
        "shadow table and the feedback volume: report.json and an offline report.html",
    )
    _synced_feedback(report, "the report's folder (its .cache/ keeps the batches)")
    report.add_argument(
        "--confidence", type=number(float, 0.5, 0.999), default=0.95, help="of the intervals (0.95)"
    )
    report.set_defaults(handler=cmd_fleet_report)

    rollout = commands.add_parser("rollout", help="staged rollouts decided by the fleet's feedback")
    rollout_actions = rollout.add_subparsers(dest="action", required=True, metavar="ACTION")
    step = rollout_actions.add_parser(
        "step",
        help="judge the channel's candidate on the feedback and promote, expand, roll back or hold "
        "(re-signing the pointer); the last line is 'decision: ...'",
    )
    step.add_argument("channel", metavar="s3://BUCKET/PREFIX", help="the release channel (asl-edge publish)")
    step.add_argument(
        "--feedback", required=True, metavar="s3://BUCKET/PREFIX", help="where the kiosks sync their feedback"
    )
    step.add_argument("--key", required=True, help="the publisher's private key (asl-edge keygen)")
    step.add_argument("--endpoint-url", help="S3-compatible endpoint of both (default: AWS S3)")
    step.add_argument("--credentials-file", help="AWS shared-credentials file (default: the AWS chain)")
    step.add_argument(
        "--min-judged",
        type=positive_int,
        default=60,
        help="judged signs the candidate needs in a step before it may move on (60)",
    )
    step.add_argument(
        "--bake-s",
        type=number(float, 0.0),
        default=0.0,
        help="seconds each step must run before it may move on (0: the judged signs decide)",
    )
    step.add_argument(
        "--margin",
        type=number(float, 0.0, 1.0),
        default=0.1,
        help="how much worse than stable the candidate may be, as a fraction (0.1: ten points)",
    )
    step.add_argument(
        "--confidence", type=number(float, 0.5, 0.999), default=0.95, help="of the intervals and tests (0.95)"
    )
    step.add_argument(
        "--steps", type=steps, default=(0.1, 0.5, 1.0), help="the rollout's fractions (0.1,0.5,1.0)"
    )
    step.add_argument("--cache", help="where the feedback is mirrored (default: ~/.cache/asl-edge/feedback)")
    step.add_argument("--dry-run", action="store_true", help="decide, print, and change nothing")
    step.set_defaults(handler=cmd_rollout_step)

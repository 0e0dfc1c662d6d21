"""``asl-edge convert`` (a WLASL checkpoint to a verified ONNX bundle) and ``asl-edge finetune`` (a
bundle's model trained further on a field dataset); both need PyTorch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.core.command_line import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    fraction,
    positive_float,
    positive_int,
    print_error,
)


def _parse_roi(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,width,height as fractions, got {text!r}")
    return values[0], values[1], values[2], values[3]


def cmd_convert(args: argparse.Namespace) -> int:
    from convert.pipeline import convert_checkpoint
    from edge.core.preprocess import PreprocessParams

    try:
        preprocessing = PreprocessParams(resize_short_side=args.resize_short_side, roi=args.roi)
    except ValueError as exc:
        print_error(str(exc))
        return EXIT_BAD_INPUT
    result = convert_checkpoint(
        args.checkpoint,
        args.labels,
        args.frames,
        args.output,
        preprocessing,
        args.parity_clips,
        args.sampling,
        args.keep_checkpoint,
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


def cmd_finetune(args: argparse.Namespace) -> int:
    from convert.finetune import FinetuneJob, FinetuneSettings, finetune

    defaults = FinetuneSettings()
    settings = FinetuneSettings(
        steps=args.steps or defaults.steps,
        epochs=args.epochs or defaults.epochs,
        batch=args.batch or defaults.batch,
        learning_rate=args.learning_rate or defaults.learning_rate,
        replay_fraction=defaults.replay_fraction if args.replay_fraction is None else args.replay_fraction,
        replay_count=args.replay_count or defaults.replay_count,
        train_from=args.train_from or defaults.train_from,
        augment=not args.no_augment,
        seed=args.seed,
    )
    job = FinetuneJob(
        bundle=Path(args.bundle),
        dataset=Path(args.dataset),
        out=Path(args.out),
        replay=args.replay,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        device=args.device,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        save_every=args.save_every,
        parent_licence=args.parent_licence,
        progress=not args.no_progress,
    )
    result = finetune(job, settings, lambda line: print(f"asl-edge: {line}", file=sys.stderr, flush=True))
    if result.conversion is None:  # a torchrun process other than 0: process 0 reports
        return EXIT_OK
    spec, parity = result.conversion.manifest.spec, result.conversion.parity
    val = "no val split" if result.val_top1 is None else f"val top-1 {result.val_top1:.1%}"
    print(
        f"trained {result.steps} steps in {result.train_s:.0f} s ({result.cpu_s:.0f} s CPU), final loss "
        f"{result.final_loss:.3f}, {val}"
    )
    print(
        f"wrote {result.conversion.bundle}: model {spec.model_id}, parity max relative difference "
        f"{parity.max_rel_diff:.3g}; gate it with 'asl-edge evaluate {result.conversion.bundle} "
        f"--baseline {args.bundle} --dataset {args.dataset}'"
    )
    return EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser("convert", help="WLASL I3D checkpoint to a verified ONNX bundle")
    convert.add_argument("checkpoint", help="PyTorch state_dict (.pt/.pth) of a WLASL InceptionI3d")
    convert.add_argument("--labels", required=True, help="wlasl_class_list.txt or one gloss per line")
    convert.add_argument(
        "--frames", type=positive_int, default=64, help="clip length T (multiple of 8, >= 16)"
    )
    convert.add_argument("-o", "--output", required=True, help="bundle directory to write")
    convert.add_argument("--resize-short-side", type=positive_int, default=256, help="pixels (default 256)")
    convert.add_argument("--roi", type=_parse_roi, help="region of interest x,y,w,h as fractions")
    convert.add_argument(
        "--sampling",
        choices=("windows", "resample"),
        default="windows",
        help="how videos become T-frame clips: WLASL-style windows (default) or whole-sign resampling",
    )
    convert.add_argument("--parity-clips", type=positive_int, default=3, help="clips for the parity check")
    convert.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="copy the checkpoint into the bundle as checkpoint.pt (what asl-edge finetune starts from)",
    )
    convert.set_defaults(handler=cmd_convert)

    tune = commands.add_parser(
        "finetune", help="train a bundle's model further on a field dataset, with replay, into a new bundle"
    )
    tune.add_argument("bundle", help="the bundle to start from (its checkpoint.pt, or --checkpoint)")
    tune.add_argument("--dataset", required=True, help="dataset directory made by 'asl-edge dataset build'")
    tune.add_argument("--out", required=True, help="the new bundle's directory (must not exist)")
    tune.add_argument(
        "--replay",
        help="what the model knew, replayed in every batch: 'synthetic' (the default for the demo "
        "model), a folder of labelled videos (asl-edge synth), a WLASL split (nslt_N.json), or 'none'",
    )
    tune.add_argument(
        "--epochs", type=positive_int, help="passes over the dataset's train split (instead of --steps)"
    )
    tune.add_argument("--steps", type=positive_int, help="training steps (150: about 5 minutes on 2 cores)")
    tune.add_argument("--seed", type=int, default=0, help="same seed and inputs, same weights (0)")
    tune.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present"
    )
    tune.add_argument(
        "--checkpoint", help="PyTorch weights to start from (default: the bundle's checkpoint.pt)"
    )
    tune.add_argument("--batch", type=positive_int, help="clips per step and process (8)")
    tune.add_argument("--learning-rate", type=positive_float, help="peak learning rate (0.002)")
    tune.add_argument("--replay-fraction", type=fraction, help="share of each batch that is replayed (0.5)")
    tune.add_argument(
        "--replay-count",
        type=positive_int,
        help="replayed examples held in memory (8 per class, at most 256)",
    )
    tune.add_argument("--train-from", help="first block that trains; those before stay frozen (Mixed_4b)")
    tune.add_argument("--no-augment", action="store_true", help="train on the clips exactly as they are")
    tune.add_argument("--work-dir", help="where the resumable state lives (default: OUT.partial)")
    tune.add_argument("--save-every", type=positive_int, default=10, help="steps between saved states (10)")
    tune.add_argument("--parent-licence", help="the licence of the starting weights, for the lineage")
    tune.add_argument("--no-progress", action="store_true", help="no progress bar")
    tune.set_defaults(handler=cmd_finetune)

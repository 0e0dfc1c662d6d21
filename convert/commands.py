"""``asl-edge convert``: a WLASL checkpoint to a verified ONNX bundle (needs PyTorch)."""

from __future__ import annotations

import argparse

from edge.core.command_line import EXIT_BAD_INPUT, EXIT_OK, positive_int, print_error


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
    convert.set_defaults(handler=cmd_convert)

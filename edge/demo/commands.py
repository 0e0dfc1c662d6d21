"""``asl-edge synth`` and ``asl-edge demo``: the synthetic signer's commands."""

from __future__ import annotations

import argparse

from edge.core.command_line import EXIT_BAD_INPUT, EXIT_OK, print_error


def _size(text: str) -> tuple[int, int]:
    from edge.demo.synth import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_synth(args: argparse.Namespace) -> int:
    from edge.demo.synth import write_dataset

    try:
        write_dataset(
            args.out,
            args.clips,
            args.seed,
            args.sentences,
            args.size,
            args.fps,
            not args.no_progress,
            args.handedness,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        print_error(str(exc))
        return EXIT_BAD_INPUT
    print(
        f"wrote {args.clips} clips and {args.sentences} sentences of a {args.handedness}-handed signer "
        f"to {args.out}"
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    if args.loop:
        from edge.demo.loop import main as loop_demo

        return loop_demo(["--seed", str(args.seed if args.seed is not None else 2027)])
    from edge.demo.live import main as live_demo

    seed = args.seed if args.seed is not None else 2026
    return live_demo(["--seed", str(seed)] + (["--fast"] if args.fast else []))


def register(commands: argparse._SubParsersAction) -> None:
    synth = commands.add_parser(
        "synth", help="render synthetic signer videos (placeholder gestures, not real ASL)"
    )
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--clips", type=int, required=True, help="one-sign clips (labels.csv)")
    synth.add_argument("--seed", type=int, required=True, help="same seed, same pixels")
    synth.add_argument("--sentences", type=int, default=0, help="multi-sign videos (sentences.json)")
    synth.add_argument("--size", type=_size, default=(640, 480), help="WIDTHxHEIGHT (default 640x480)")
    synth.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    synth.add_argument(
        "--handedness",
        choices=("right", "left"),
        default="right",
        help="the dominant hand; left is the right-handed signer's mirror image (default right)",
    )
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(handler=cmd_synth)

    demo = commands.add_parser("demo", help="the daemon on a synthetic sentence, with a local broker")
    demo.add_argument("--seed", type=int, help="which synthetic sentences (2026; 2027 with --loop)")
    demo.add_argument("--fast", action="store_true", help="read the video as fast as possible")
    demo.add_argument(
        "--loop",
        action="store_true",
        help="the learning loop end to end: a left-handed signer's feedback becomes a better model "
        "that the running kiosk adopts (about 10 minutes; make demo-loop)",
    )
    demo.set_defaults(handler=cmd_demo)

"""The ``asl-edge`` command, the top layer: each layer's ``commands`` module registers its own
subcommands here, and this is where uncaught typed errors become one-line messages and exit codes
(see ``edge.core.command_line``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from calibration import commands as calibration_commands
from convert import commands as convert_commands
from edge import __version__
from edge.core.command_line import EXIT_BAD_INPUT, print_error
from edge.core.errors import AslEdgeError
from edge.demo import commands as demo_commands
from edge.runtime import commands as runtime_commands

LAYERS = (convert_commands, calibration_commands, runtime_commands, demo_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asl-edge", description="American Sign Language word recognition on the edge."
    )
    parser.add_argument("--version", action="version", version=f"asl-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for layer in LAYERS:
        layer.register(commands)
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
        print_error(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

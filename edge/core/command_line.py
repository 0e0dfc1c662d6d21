"""What every ``asl-edge`` subcommand shares: exit codes, the one-line error format, and
argument types. Each layer's ``commands`` module registers its subcommands with these; library code
raises typed errors and never prints or exits.

Exit codes: 0 success; 2 bad input (a source, checkpoint, bundle, config or missing TensorRT that
makes the command impossible); 1 a check that ran and failed (INT8 beyond its accuracy margin, an
engine outside tolerance, a kiosk that is not healthy) or an unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
CONFIG_HELP = "config file (default: $ASL_EDGE_CONFIG, /etc/asl-edge)"


def print_error(message: str) -> None:
    """One line per error, even when a library's message spans several."""
    line = " | ".join(part.strip() for part in message.strip().splitlines() if part.strip())
    print(f"asl-edge: error: {line}", file=sys.stderr, flush=True)


def number(
    kind: type[int] | type[float], minimum: float, maximum: float | None = None, above: bool = False
) -> Callable[[str], int | float]:
    """An argparse type: ``kind`` from ``minimum`` (exclusive when ``above``) to ``maximum``."""
    low = f"above {minimum:g}" if above else f"at least {minimum:g}"
    wanted = f"{'an integer' if kind is int else 'a number'} {low}"
    if maximum is not None:
        wanted += f" and at most {maximum:g}"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        in_range = (value > minimum if above else value >= minimum) and (maximum is None or value <= maximum)
        if not in_range:  # written so that NaN is out of range too
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


positive_int = number(int, 1)
positive_float = number(float, 0.0, above=True)
fraction = number(float, 0.0, 1.0)

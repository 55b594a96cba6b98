"""Command-line interface: ``chainrule <command> [options]``.

Example:
    >>> from chainrule.cli import main
    >>> main(["demo", "--epochs", "1"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the ``chainrule`` argument parser (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="chainrule: automatic differentiation on NumPy.",
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train a small network on the bundled digits data and plot loss/accuracy",
        description="Train a small network on the bundled 8x8 digits, print the test "
        "accuracy and write a loss/accuracy plot (PNG).",
    )
    demo.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="network to train")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--out", type=Path, default=Path("."), help="directory for the plot (default: current)"
    )
    demo.add_argument("--batch-size", type=int, default=None, help="mini-batch size")
    demo.add_argument("--lr", type=float, default=None, help="learning rate")
    demo.set_defaults(handler=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    try:
        from chainrule import demo
    except ImportError as exc:
        print(
            f"chainrule demo is unavailable: cannot import chainrule.demo ({exc})", file=sys.stderr
        )
        return 1
    result = demo.run(args)
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

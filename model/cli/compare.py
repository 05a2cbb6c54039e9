"""``retrain compare``: the comparison CLI, sharing ``python -m model.comparator``'s code.

Exit codes: 0 PROMOTE, 3 REJECT, 4 INCONCLUSIVE, 2 bad input, 1 unexpected error.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from model.gate.cli import add_arguments

    parser = sub.add_parser(
        "compare",
        help="compare a candidate with the production model (exit 0 PROMOTE, 3 REJECT, "
        "4 INCONCLUSIVE)",
        description="Compare a candidate model with the production model on a holdout. "
        "Exit codes: 0 PROMOTE, 3 REJECT, 4 INCONCLUSIVE, 2 bad input, 1 unexpected error.",
    )
    add_arguments(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from model.gate.cli import run_from_args

    return run_from_args(args)

"""``retrain compare``: the comparison CLI, sharing ``python -m model.comparator``'s code.

Exit codes: 0 PROMOTE, 3 REJECT, 4 INCONCLUSIVE, 2 bad input, 1 unexpected error.

The comparison's options live in :mod:`model.gate.cli`, which loads the gate (SciPy, Numba):
the ``compare`` parser adds them the first time it parses, so ``retrain --help`` and the
other commands never load the gate.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


class GateOptionsParser(argparse.ArgumentParser):
    """An argument parser that adds the gate's options (:func:`model.gate.cli.add_arguments`)
    just before it first parses."""

    gate_options_added = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self.gate_options_added:
            from model.gate.cli import add_arguments

            add_arguments(self)
            self.gate_options_added = True
        return super().parse_known_args(args, namespace)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare",
        help="compare a candidate with the production model (exit 0 PROMOTE, 3 REJECT, "
        "4 INCONCLUSIVE)",
        description="Compare a candidate model with the production model on a holdout. "
        "Exit codes: 0 PROMOTE, 3 REJECT, 4 INCONCLUSIVE, 2 bad input, 1 unexpected error.",
    )
    parser.__class__ = GateOptionsParser  # the same parser; its options come when it parses
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from model.gate.cli import run_from_args

    return run_from_args(args)

"""The ``retrain`` console script: an entry layer (like ``flows/``) over the domain.

Each group of subcommands lives in ``model/cli/<group>.py`` and exposes
``register(subparsers)``; handlers return the process exit code. This is the only package of
``model/`` that may reach ``flows/`` (inside command functions, never at import), and nothing
else in ``model/`` imports it.
Exit codes: 0 success, 2 bad input (:class:`model.errors.RetrainError`),
1 unexpected error; ``compare`` adds 3 (REJECT) and 4 (INCONCLUSIVE).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from model.errors import RetrainError

COMMAND_MODULES = (
    "model.cli.data",
    "model.cli.train",
    "model.cli.compare",
    "model.cli.registry",
    "model.cli.drift",
    "model.cli.gate",
    "model.cli.live",
    "model.cli.serving",
    "model.cli.batches",
    "model.cli.layout",
    "model.cli.backtest",
)
MODEL_HELP = (
    "the model this command is for (default: RETRAIN_MODEL_NAME, else the first table of "
    "retraining.toml, else demo); its folders are <RETRAIN_HOME>/<kind>/<model>/"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrain",
        description="Automated, statistically gated retraining of tabular binary classifiers.",
    )
    parser.add_argument("--model", metavar="NAME", default=None, help=MODEL_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_model_option(sub)
    return parser


def _add_model_option(sub: argparse._SubParsersAction) -> None:
    """Every command also takes ``--model`` after its name (``retrain history --model X``):
    SUPPRESS keeps a value given before the command (``retrain --model X history``)."""
    for parser in sub.choices.values():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for group in nested:
            _add_model_option(group)
        if "--model" not in parser._option_string_actions:  # groups too: `gate --model X show`
            parser.add_argument(
                "--model", metavar="NAME", default=argparse.SUPPRESS, help=MODEL_HELP
            )


def _run(args: argparse.Namespace) -> int:
    """The command, inside its model's scope: every path it reads is that model's."""
    from model.cycle.models_config import select_model
    from model.settings import get_settings, model_scope

    given = getattr(args, "model", None)
    layout = not getattr(args, "layout_free", False)
    name = select_model(given, get_settings(), "--model", layout=layout)
    with model_scope(name):
        return int(args.func(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    # Telemetry off for anything this process may start (read by Prefect when imported).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `retrain history | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # the system refused a read or write: name what and why
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2

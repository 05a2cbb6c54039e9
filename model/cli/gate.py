"""``retrain gate status | reset``: the error budget of the model's family of comparisons."""

from __future__ import annotations

import argparse

from model.errors import RegistryError
from model.gate.budget import RESET_EVENT, SERIES, alpha_for, comparisons_so_far, spent
from model.registry import ModelRegistry
from model.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gate",
        help="the promotion gate's error budget across cycles (status, reset)",
        description="Every comparison of this model spends part of the error budget alpha: "
        f"comparison k tests at {SERIES}. `reset` starts a new family (recorded).",
    )
    commands = parser.add_subparsers(dest="gate_command", metavar="ACTION", required=True)
    status = commands.add_parser("status", help="comparisons so far and the next level")
    status.add_argument("--alpha", type=float, default=0.05, help="the family's budget")
    status.add_argument("--registry", help="registry folder (default: from settings)")
    status.set_defaults(func=handle_status)
    reset = commands.add_parser(
        "reset",
        help="start a new family of comparisons (e.g. a new holdout, a new model definition)",
    )
    reset.add_argument("--reason", required=True, help="why (recorded in the history)")
    reset.add_argument("--registry", help="registry folder (default: from settings)")
    reset.set_defaults(func=handle_reset)


def _registry(args: argparse.Namespace) -> ModelRegistry:
    return ModelRegistry(args.registry or get_settings().models_dir)


def handle_status(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 0.5:
        raise RegistryError(f"--alpha must be in (0, 0.5), got {args.alpha}")
    k = comparisons_so_far(_registry(args).history())
    print(f"Comparisons in this family: {k}")
    print(f"Budget spent: {spent(k, args.alpha):.4g} of alpha = {args.alpha:g} ({SERIES})")
    print(f"Next comparison: k = {k + 1}, tested at alpha_k = {alpha_for(k + 1, args.alpha):.4g}")
    return 0


def handle_reset(args: argparse.Namespace) -> int:
    reason = " ".join(args.reason.split())
    if not reason:
        raise RegistryError("--reason must not be empty")
    registry = _registry(args)
    before = comparisons_so_far(registry.history())
    registry.record(RESET_EVENT, reasons=[reason], comparisons_before=before)
    print(f"New family of comparisons started (after {before}); the next one is k = 1")
    return 0

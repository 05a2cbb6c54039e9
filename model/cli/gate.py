"""``retrain gate status``: which rows the model's decisions have used, and what the next one
may spend (evidence is accounted by rows, :mod:`model.gate.evidence`).

``retrain gate reset`` is gone: a decision on rows no earlier decision used is tested at the
full α by itself, as new batches arrive; calling it explains that and exits 2.
"""

from __future__ import annotations

import argparse
from collections import Counter

from model.errors import ParameterError, RegistryError
from model.registry import ModelRegistry
from model.settings import get_settings

RESET_GONE = (
    "`retrain gate reset` is no longer needed and does nothing: a decision is tested at the "
    "full alpha whenever its rows include a batch no earlier decision used, so the level "
    "renews itself as batches arrive; only decisions on the very same rows pay for the reuse "
    "(see `retrain gate status`). To renew it, deliver new labelled rows as a batch in incoming/."
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gate",
        help="the promotion gate's evidence: which rows decided, and the next level",
        description="A decision whose new rows (batches no earlier decision used) hold "
        "min_class_count of each class tests at the full alpha; one that reuses rows at "
        "alpha*6/(pi^2 j^2), j = 1 + the most decisions any of its batches took part in.",
    )
    commands = parser.add_subparsers(dest="gate_command", metavar="ACTION", required=True)
    status = commands.add_parser("status", help="decisions by rows, and the next decision's level")
    status.add_argument(
        "--alpha", type=float, default=None, help="alpha (default: the model's significance_level)"
    )
    status.add_argument("--registry", help="registry folder (default: from settings)")
    status.set_defaults(func=handle_status)
    reset = commands.add_parser("reset", help="(gone: the level renews itself with new rows)")
    reset.add_argument("--reason", default="", help=argparse.SUPPRESS)
    reset.add_argument("--registry", help=argparse.SUPPRESS)
    reset.set_defaults(func=handle_reset)


def _registry(args: argparse.Namespace) -> ModelRegistry:
    return ModelRegistry(args.registry or get_settings().models_dir)


def _alpha(args: argparse.Namespace) -> float:
    if args.alpha is not None:
        alpha = float(args.alpha)
    else:
        from model.cycle.models_config import effective_parameters

        settings = get_settings()
        values, _ = effective_parameters({}, settings.model_name, ["significance_level"])
        alpha = float(values["significance_level"])
    if not 0 < alpha < 0.5:
        raise RegistryError(f"--alpha must be in (0, 0.5), got {alpha}")
    return alpha


def handle_status(args: argparse.Namespace) -> int:
    from model.cycle.config import list_batches
    from model.gate.evidence import alpha_for, earlier_decisions, reuse_bound

    alpha = _alpha(args)
    events = _registry(args).history()
    decisions = earlier_decisions(events)
    legacy = sum(
        1
        for ev in events
        if ev.get("event") == "compared" and not isinstance(ev.get("evidence"), dict)
    )
    untested = sum(
        1
        for ev in events
        if ev.get("event") == "compared"
        and isinstance(ev.get("evidence"), dict)
        and not float(ev.get("alpha_spent") or 0)
    )
    used = frozenset().union(*decisions) if decisions else frozenset()
    print(f"Decisions that tested something: {len(decisions)} (alpha = {alpha:g})")
    if untested:
        print(f"Decisions that tested nothing (spent nothing): {untested}")
    if legacy:
        print(f"Older decisions recorded without their rows (not counted): {legacy}")
    per_batch = Counter(b for rows in decisions for b in rows)
    for batch, count in sorted(per_batch.items(), key=lambda kv: (-kv[1], kv[0]))[:12]:
        nxt = alpha_for(count + 1, alpha)
        print(f"  {batch}: in {count} decision(s); a decision reusing it tests at {nxt:.4g}")
    if len(per_batch) > 12:
        print(f"  … and {len(per_batch) - 12} more batch(es)")
    settings = get_settings()
    fresh = [p.name for p in list_batches(settings.incoming_dir) if p.name not in used]
    if fresh:
        shown = ", ".join(fresh[:4]) + (" …" if len(fresh) > 4 else "")
        print(
            f"Batches no decision used yet: {len(fresh)} ({shown}): a decision on rows that "
            f"include one tests at the full alpha = {alpha:g}"
        )
    else:
        print(
            "Every batch in incoming/ has decided something: a decision on them alone pays "
            "for the reuse; a new batch makes the next decision fresh (full alpha)"
        )
    print(
        "A decision is fresh (full alpha) when its new batches hold min_class_count of each "
        f"class; the reused decisions a batch takes part in spend at most {reuse_bound(alpha):.4g} "
        "together (alpha*6/(pi^2 j^2), j = 1 + the most decisions any of its batches was in)"
    )
    return 0


def handle_reset(args: argparse.Namespace) -> int:
    raise ParameterError(RESET_GONE)

"""``retrain batches list | quarantine | restore``: the model's incoming batches, the ones set
aside (``incoming/.quarantine/``) and why, and moving a batch out of the loop or back
(``model.cycle.quarantine``). Imports its domain modules inside the commands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from model.errors import DataValidationError
from model.settings import Settings, get_settings


def _config(settings: Settings) -> Any:
    """The model's retraining configuration (its retraining.toml table and the defaults)."""
    from model.cycle.models_config import resolve_run

    cfg, _ = resolve_run({"model_name": settings.model_name}, settings)
    return cfg


def _list(args: argparse.Namespace) -> int:
    from model.cycle.config import source_folders
    from model.cycle.evaluation import trained_batches
    from model.cycle.quarantine import quarantined_batches
    from model.data.batches import scan_incoming
    from model.data.read import source_rows
    from model.registry import ModelRegistry

    settings = get_settings()
    _, incoming = source_folders(settings, _config(settings))
    registry = ModelRegistry(settings.models_dir)
    prod = registry.production()
    trained = trained_batches(settings, registry.metadata(prod.version)) if prod else None
    listing = scan_incoming(incoming)
    print(f"Incoming    {incoming}  (oldest first; the last is the newest)")
    width = max([len(b.id) for b in listing.batches] + [5])
    for b in listing.batches:
        try:
            rows = str(source_rows(b.path))
        except (DataValidationError, OSError):
            rows = "?"
        if prod is None:
            status = "-"
        elif trained is None:
            status = "production's training batches unknown"
        else:
            status = f"trained on by production {prod.version}" if b.id in trained else "new"
        print(f"  {b.id:<{width}}  {rows:>9} rows  {status}")
    if not listing.batches:
        print("  (no batch)")
    held = quarantined_batches(incoming)
    if held:
        print(f"Quarantined {len(held)} (retrain batches restore NAME after fixing):")
        for q in held:
            print(f"  {q.path.name:<{width}}  {q.time or '-'}  {q.reason}")
    for warning in listing.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from model.cycle.config import source_folders
    from model.cycle.quarantine import quarantine
    from model.data.batches import scan_incoming

    settings = get_settings()
    _, incoming = source_folders(settings, _config(settings))
    batches = {b.id: b for b in scan_incoming(incoming).batches}
    if args.batch not in batches:
        known = ", ".join(batches) or "none"
        raise DataValidationError(f"{args.batch}: no batch of that name in {incoming} ({known})")
    reason = args.reason or "set aside by hand"
    entry = quarantine(settings, incoming, batches[args.batch], reason, by="hand")
    print(f"quarantined {entry.batch} -> {settings.relative(entry.path)}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from model.cycle.config import source_folders
    from model.cycle.quarantine import cycle_contract, restore

    settings = get_settings()
    cfg = _config(settings)
    base, incoming = source_folders(settings, cfg)
    contract = cycle_contract(settings, base, cfg.target_column, cfg.id_column)
    path, batch = restore(settings, incoming, args.name, contract)
    print(f"restored {batch} -> {settings.relative(path)}; the next cycle reads it")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batches",
        help="incoming batches: list them, set one aside, restore one",
        description="A cycle checks every batch production was not trained on and quarantines "
        "one it cannot use (incoming/.quarantine/<batch>/ with reason.json); the others go on.",
    )
    bsub = p.add_subparsers(dest="batches_command", metavar="ACTION", required=True)
    a = bsub.add_parser("list", help="batches in order (newest last), quarantined ones and why")
    a.set_defaults(func=_list)
    a = bsub.add_parser("quarantine", help="set a batch aside: no cycle reads it")
    a.add_argument("batch", help="the batch's name in incoming/, e.g. date=2026-01-31")
    a.add_argument("--reason", help="why (recorded in reason.json and the history)")
    a.set_defaults(func=_quarantine)
    a = bsub.add_parser(
        "restore", help="check a quarantined batch again and move it back when it is usable"
    )
    a.add_argument("name", help="the quarantined batch, as `batches list` shows it")
    a.set_defaults(func=_restore)

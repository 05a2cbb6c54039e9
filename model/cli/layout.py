"""``retrain migrate-layout``: move a single-model working root to one folder per model."""

from __future__ import annotations

import argparse

from model.settings import get_settings


def _migrate(args: argparse.Namespace) -> int:
    from model.cycle.migrate_layout import migrate_layout

    settings = get_settings()  # the model comes from --model (the command's scope)
    result = migrate_layout(settings, settings.model_name)
    new = settings.for_model(result.model_name)
    for kind in result.moved:
        print(f"moved {kind}/ -> {kind}/{result.model_name}/")
    if not result.moved:
        print("nothing left to move")
    print(f"rewrote the data path of {len(result.rewritten)} version(s) in {new.models_dir}")
    for note in stale_config_paths(result.model_name):
        print(note)
    return 0


def stale_config_paths(name: str) -> list[str]:
    """A line for each path of the model's table that still names a single-model folder
    (``data/raw/...``, ``data/incoming``): the migration moved it to ``data/<name>/``."""
    from model.cycle.models_config import PATH_KEYS, load_models_config

    config = load_models_config()
    table = config.table(name)
    notes = []
    for key in sorted(PATH_KEYS):
        value = table.get(key)
        old = isinstance(value, str) and value.startswith("data/")
        if old and not str(value).startswith(f"data/{name}/"):
            moved = f"data/{name}/{str(value).removeprefix('data/')}"
            notes.append(
                f"note: {config.describe(name)} {key} = {value!r} names the old folder; "
                f"change it to {moved!r} (or remove it: the default is the model's own)"
            )
    return notes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "migrate-layout",
        help="move a single-model RETRAIN_HOME (models/registry.json) to models/<name>/ etc.",
        description="Earlier releases kept one model per RETRAIN_HOME. This moves its models/, "
        "data/, reports/ and runs/ into <kind>/<name>/ (renames only; run it again to finish a "
        "migration that was stopped), rewrites each version's prepared-data path and records a "
        "'migrated' event. Stop the workers first: it refuses while a cycle is running.",
    )
    p.set_defaults(func=_migrate, layout_free=True)

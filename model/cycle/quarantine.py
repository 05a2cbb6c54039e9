"""A batch is checked at the door of every cycle, and a bad batch cannot block the loop.

The rule (docs/errors.md): before a cycle gathers its trigger state, every
incoming batch production was not trained on is read and checked against production's batch
contract (:class:`~model.data.contract.BatchContract`: the target with exactly its two classes,
ids of its id column's type, features of their kinds); in the first cycle, against the base
data's. A batch that cannot be read or breaks the contract is quarantined: moved to
``incoming/.quarantine/<batch>/`` with a ``reason.json``, recorded ``quarantined`` in the
history and announced (``retraining.batch.quarantined``); the cycle goes on with the other
batches. A failure no single batch explains still fails the cycle once, naming the file and the
command that sets a batch aside (:func:`set_aside_hint`).

``retrain batches list | quarantine | restore`` shows the batches and moves them by hand;
``restore`` checks the batch again first (a batch still bad stays where it is) and records
``restored``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.data import read_source
from model.data.batches import QUARANTINE_FOLDER, IncomingBatch, is_partition_name, scan_incoming
from model.data.contract import BatchContract
from model.errors import DataValidationError, RetrainError
from model.registry import ModelRegistry
from model.registry.files import fsync_dir
from model.settings import Settings

REASON_FILE = "reason.json"


@dataclass(frozen=True)
class Quarantined:
    """A batch set aside: its id, where it went, why, and when."""

    batch: str
    path: Path
    reason: str
    time: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "path": str(self.path),
            "reason": self.reason,
            "time": self.time,
        }


@dataclass
class Screening:
    """What one cycle's door check did."""

    checked: list[str] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    contract: str | None = None
    note: str | None = None


def check_batch(path: Path, contract: BatchContract) -> str | None:
    """Why a later cycle cannot use the batch at ``path`` (one line naming the file and
    column), or None."""
    try:
        source = read_source(path)
    except DataValidationError as exc:
        return str(exc)
    return contract.problem(source.table, str(path))


def cycle_contract(
    settings: Settings, base: Path | None, target: str, id_column: str | None
) -> BatchContract | None:
    """Production's contract; without a production model, the base data's (None when there
    is no base data, or it does not say: its own preparation then names the problem)."""
    from model.serving.labels import production_contract

    contract = production_contract(settings.models_dir, settings.root)
    if contract is not None:
        return contract
    if base is None or not base.exists():
        return None
    try:
        table = read_source(base).table
    except DataValidationError:
        return None
    return BatchContract.from_table(table, target, id_column, f"the base data {base}")


def screen_batches(
    settings: Settings,
    incoming: Path,
    contract: BatchContract | None,
    trained: set[str] | None,
    run_id: str | None = None,
) -> Screening:
    """Check every batch of ``incoming`` not in ``trained`` against ``contract`` and quarantine
    the bad ones (see the module). Nothing is checked without a contract."""
    screening = Screening(contract=contract.source if contract else None)
    if contract is None:
        return screening
    for batch in scan_incoming(incoming).batches:
        if trained is not None and batch.id in trained:
            continue
        screening.checked.append(batch.id)
        reason = check_batch(batch.path, contract)
        if reason is not None:
            screening.quarantined.append(
                quarantine(settings, incoming, batch, reason, run_id=run_id)
            )
    return screening


def screen_cycle(settings: Settings, config: Any, run_id: str | None = None) -> Screening:
    """One cycle's door check (the module's rule) for the retraining ``config``: its base data
    and incoming folder, production's contract and training batches."""
    from model.cycle.config import source_folders
    from model.cycle.evaluation import trained_batches

    base, incoming = source_folders(settings, config)
    try:
        contract = cycle_contract(settings, base, config.target_column, config.id_column)
    except RetrainError as exc:  # production's training data is gone: nothing to check with
        screening = Screening()
        screening.note = f"batches not checked: {exc}"
        return screening
    registry = ModelRegistry(settings.models_dir)
    prod = registry.production()
    trained = trained_batches(settings, registry.metadata(prod.version)) if prod else None
    return screen_batches(settings, incoming, contract, trained, run_id)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _free_place(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name~2``… when a batch of that name was set aside before."""
    place, k = root / name, 2
    while place.exists() or place.is_symlink():
        place, k = root / f"{name}~{k}", k + 1
    return place


def quarantine(
    settings: Settings,
    incoming: Path,
    batch: IncomingBatch,
    reason: str,
    *,
    by: str = "cycle",
    run_id: str | None = None,
) -> Quarantined:
    """Move ``batch`` to ``incoming/.quarantine/<batch>/`` with ``reason.json`` and record
    ``quarantined`` in the model's history. A folder batch is moved whole; a file batch goes
    into a folder of its name."""
    root = incoming / QUARANTINE_FOLDER
    root.mkdir(exist_ok=True)
    place = _free_place(root, batch.id)
    if batch.path.is_dir():
        os.rename(batch.path, place)
    else:
        place.mkdir()
        os.rename(batch.path, place / batch.id)
    entry = Quarantined(batch.id, place, reason, _now())
    doc = {**entry.to_dict(), "by": by, "restore": f"retrain batches restore {place.name}"}
    tmp = place / f".{REASON_FILE}.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, place / REASON_FILE)
    fsync_dir(root)
    fsync_dir(incoming)
    ModelRegistry(settings.models_dir).record(
        "quarantined", batch=batch.id, path=str(place), reason=reason, by=by, run_id=run_id
    )
    return entry


def quarantined_batches(incoming: Path) -> list[Quarantined]:
    """The batches set aside, with their reasons (oldest first)."""
    root = incoming / QUARANTINE_FOLDER
    if not root.is_dir():
        return []
    out = []
    for place in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            doc = json.loads((place / REASON_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        batch = str(doc.get("batch") or place.name.split("~")[0])
        reason = str(doc.get("reason") or "(no reason.json)")
        out.append(Quarantined(batch, place, reason, str(doc.get("time") or "")))
    return sorted(out, key=lambda q: q.time)


def restore(
    settings: Settings, incoming: Path, name: str, contract: BatchContract | None
) -> tuple[Path, str]:
    """Move the quarantined batch ``name`` (as ``batches list`` shows it) back into
    ``incoming`` after checking it again; record ``restored``. Returns (its path, its id). A
    batch that still fails the check stays, and the reason is the error."""
    found = [q for q in quarantined_batches(incoming) if name in (q.path.name, q.batch)]
    if not found:
        known = ", ".join(q.path.name for q in quarantined_batches(incoming)) or "none"
        raise DataValidationError(
            f"{name}: no quarantined batch of that name (quarantined: {known})"
        )
    entry = found[-1]
    place = entry.path
    is_file_batch = not is_partition_name(entry.batch) and (place / entry.batch).is_file()
    source = place / entry.batch if is_file_batch else place
    target = incoming / entry.batch
    if target.exists() or target.is_symlink():
        raise DataValidationError(
            f"{target}: a batch of that name is in incoming/ already; rename one of them first"
        )
    if contract is not None:
        problem = check_batch(source, contract)
        if problem is not None:
            raise DataValidationError(f"still not usable, left in quarantine: {problem}")
    os.rename(source, target)
    if is_file_batch:
        shutil.rmtree(place, ignore_errors=True)
    else:
        (target / REASON_FILE).unlink(missing_ok=True)
    fsync_dir(incoming)
    ModelRegistry(settings.models_dir).record(
        "restored", batch=entry.batch, path=str(target), reason=f"was: {entry.reason}"
    )
    return target, entry.batch


def set_aside_hint(error: RetrainError, incoming: Path, model: str) -> str:
    """``error``'s message, with the command that quarantines the batch it names when its
    text names a file of ``incoming``."""
    text = str(error)
    root = str(incoming.absolute())
    if root not in text:
        return text
    rest = text.split(root, 1)[1].lstrip("/")
    batch = rest.split("/", 1)[0].split(":", 1)[0].split(" ", 1)[0]
    if not batch:
        return text
    return (
        f"{text} (batch {batch}: set it aside with "
        f"`retrain --model {model} batches quarantine {batch}`)"
    )

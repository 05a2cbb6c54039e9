"""Trained candidates kept by the content hash of their training inputs, so a candidate that two
runs would train identically is trained once (``Settings.training_cache``; a backtest's
policies share one).

The key (:func:`training_key`) is the SHA-256 of what decides the trained weights: the train and
validation split files' SHA-256 (from the prepared folder's manifest, which re-hashes them on
read), the feature spec, every training parameter and the torch version. Two runs with the same
key train the same network from the same rows with the same seed. A hit copies the cached
``model.pt`` and writes a ``model.json`` that is the cached one re-stamped for this run:
``trained_at`` (now, :mod:`model.clock`), ``data_manifest`` (this run's prepared folder), the
caller's ``extra_metadata`` (its training reason), and ``training_cache`` (the key, reused).
The training section (epochs, seconds) stays the original's: what the training cost.

Each key is claimed under an OS file lock, so parallel runs (Dask workers) wanting the same
candidate wait for the first to train it rather than train it twice. An entry is a folder
renamed into place complete, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from model import clock
from model.data import MANIFEST_NAME, load_manifest
from model.errors import DataValidationError
from model.training.artifact import METADATA_FILE, MODEL_FILE
from model.training.params import TrainParams, TrainResult
from model.training.stream import streams

CACHE_FIELD = "training_cache"
"""The model.json field a reused candidate carries: ``{"key": ..., "reused": true}``."""


def training_key(
    prepared_dir: str | Path, params: TrainParams, memory_budget: int | None = None
) -> str | None:
    """The content hash of a training's inputs, or None for a prepared folder without a
    manifest (its rows are not hashed: never cached). A streamed training (in
    ``memory_budget``) visits the rows in another order: its key says so, and the budget."""
    folder = Path(prepared_dir)
    if not (folder / MANIFEST_NAME).is_file():
        return None
    manifest = load_manifest(folder)
    document: dict[str, Any] = {
        "train": manifest.splits["train"].sha256,
        "val": manifest.splits["val"].sha256,
        "spec": manifest.spec.to_dict(),
        "params": params.to_dict(),
        "torch": torch.__version__,
    }
    if streams(manifest, memory_budget):
        document["streamed_in"] = memory_budget
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def _claimed(folder: Path, key: str) -> Iterator[Path]:
    """Hold ``<folder>/<key>.lock`` exclusively (released by the kernel if the holder dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder / key
    finally:
        os.close(fd)


def _store(entry: Path, trained: Path) -> None:
    """Copy a trained model folder into the cache as ``entry`` (complete, or not at all)."""
    tmp = entry.with_name(f".{entry.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        for name in (MODEL_FILE, METADATA_FILE):
            shutil.copy2(trained / name, tmp / name)
        os.replace(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _restore(
    entry: Path,
    key: str,
    out_dir: Path,
    prepared_dir: Path,
    data_path: str,
    extra_metadata: dict[str, Any] | None,
) -> Path:
    """Write the cached candidate into ``out_dir``, its model.json re-stamped for this run."""
    try:
        meta = json.loads((entry / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataValidationError(f"{entry}: unreadable cached candidate: {exc}") from exc
    manifest = load_manifest(prepared_dir)
    meta.update(extra_metadata or {})
    meta["trained_at"] = clock.iso_now("seconds")
    meta["data_manifest"] = {"sha256": manifest.sha256, "path": data_path}
    meta[CACHE_FIELD] = {"key": key, "reused": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(entry / MODEL_FILE, out_dir / MODEL_FILE)
    text = json.dumps(meta, indent=2) + "\n"
    tmp = out_dir / f".{METADATA_FILE}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out_dir / METADATA_FILE)
    return out_dir


Trainer = Callable[[], tuple[Path, TrainResult]]


def train_or_reuse(
    cache: Path,
    prepared_dir: str | Path,
    out_dir: str | Path,
    params: TrainParams,
    train: Trainer,
    extra_metadata: dict[str, Any] | None = None,
    memory_budget: int | None = None,
) -> tuple[Path, TrainResult | None]:
    """The candidate for these inputs: from ``cache`` when an identical one was trained (the
    result is then None: nothing was trained here), else ``train()``'s, stored for the next."""
    key = training_key(prepared_dir, params, memory_budget)
    if key is None:
        return train()
    from model.settings import get_settings

    data_path = get_settings().relative(Path(prepared_dir).resolve())
    with _claimed(Path(cache), key) as entry:
        if (entry / METADATA_FILE).is_file():
            out = _restore(entry, key, Path(out_dir), Path(prepared_dir), data_path, extra_metadata)
            return out, None
        folder, result = train()
        _store(entry, folder)
        return folder, result


def reused(meta: dict[str, Any]) -> bool:
    """Whether a model.json is a cached candidate re-stamped for its run."""
    return bool((meta.get(CACHE_FIELD) or {}).get("reused"))

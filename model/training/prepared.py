"""Training on a prepared-data folder and saving the model: ``train_prepared``.

Reads the splits through ``model.data`` (checksums verified), trains with
:func:`model.training.loop.train` and writes the artifact with
:func:`model.training.artifact.save_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from model.data import FeatureSpec, load_manifest, load_split
from model.errors import DataValidationError
from model.threads import thread_scope
from model.training.artifact import save_model
from model.training.loop import as_params, thread_choice, train
from model.training.params import EpochCallback, TrainParams, TrainResult
from model.training.stream import streams, train_streamed


@dataclass
class PreparedData:
    train: pd.DataFrame
    val: pd.DataFrame
    spec: FeatureSpec | None
    folder: Path
    manifest_sha256: str | None


def load_prepared(folder: str | Path) -> PreparedData:
    """The train/val splits (and spec, manifest hash) of a prepared-data folder.

    A folder with manifest.json is read through :func:`model.data.load_manifest`; a bare
    folder of ``train.parquet``/``val.parquet`` works too (the spec is then inferred).
    """
    folder = Path(folder).resolve()
    if not folder.exists():
        raise DataValidationError(f"prepared data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataValidationError(
            f"{folder} is not a folder: pass a prepared data folder (see `retrain prepare`)"
        )
    if (folder / "manifest.json").exists():
        manifest = load_manifest(folder)
        return PreparedData(  # verify: the model records this manifest's hash as its data
            train=load_split(manifest, "train", verify=True),
            val=load_split(manifest, "val", verify=True),
            spec=manifest.spec,
            folder=folder,
            manifest_sha256=manifest.sha256,
        )
    splits = {}
    for name in ("train", "val"):
        path = folder / f"{name}.parquet"
        if not path.exists():
            raise DataValidationError(f"prepared data folder {folder} has no {name}.parquet")
        try:
            splits[name] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            raise DataValidationError(f"{path}: unreadable split file: {exc}") from exc
    return PreparedData(splits["train"], splits["val"], None, folder, None)


def train_prepared(
    prepared_dir: str | Path,
    out_dir: str | Path,
    params: TrainParams | dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    extra_metadata: dict[str, Any] | None = None,
    data_path: str | None = None,
    memory_budget: int | None = None,
) -> tuple[Path, TrainResult]:
    """Train on a prepared-data folder and save the model to ``out_dir``.

    ``data_path`` is how the prepared folder is recorded in model.json (default: the folder
    relative to the settings' working root when inside it). ``memory_budget`` (bytes): when
    the training split would not fit in it, training streams its row groups
    (:mod:`model.training.stream`; model.json's ``training.data_reading`` says so).
    """
    params = as_params(params)
    folder = Path(prepared_dir).resolve()
    manifest = load_manifest(folder) if (folder / "manifest.json").is_file() else None
    if manifest is not None and memory_budget is not None and streams(manifest, memory_budget):
        result = train_streamed(manifest, params, memory_budget, on_epoch)
        manifest_sha256: str | None = manifest.sha256
    else:
        with thread_scope(thread_choice(params).threads):  # Arrow's reads share its choice
            data = load_prepared(prepared_dir)
        result = train(data.train, data.val, params, on_epoch=on_epoch, spec=data.spec)
        folder, manifest_sha256 = data.folder, data.manifest_sha256
    if data_path is None:
        from model.settings import get_settings

        data_path = get_settings().relative(folder)
    meta: dict[str, Any] = {"data_manifest": {"sha256": manifest_sha256, "path": data_path}}
    meta.update(extra_metadata or {})
    return save_model(result, out_dir, extra_metadata=meta), result

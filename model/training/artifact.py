"""The model artifact: one folder with ``model.pt`` (a state_dict) and ``model.json``.

Saving writes both files atomically (temporary name, fsync, ``os.replace``; model.json last,
so a folder whose model.json exists is complete). Loading never unpickles objects: model.pt is
read once, its SHA-256 checked against model.json, then parsed with
``torch.load(weights_only=True)`` from those same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from model import clock
from model.data import FeatureSpec
from model.errors import DataValidationError, ModelLoadError, OutputError
from model.files import read_bytes, read_text, write_files
from model.training.network import Preprocessor, TabularModel, TabularNet
from model.training.params import TrainResult

FORMAT_VERSION = 1
MODEL_FILE = "model.pt"
METADATA_FILE = "model.json"
VERSION_NAME = re.compile(r"^v\d{4,}$")
RESERVED_KEYS = frozenset(
    {
        "format_version",
        "sha256",
        "model_file",
        "architecture",
        "feature_spec",
        "preprocessing",
        "decision_threshold",
        "trained_at",
        "library_versions",
    }
)
"""model.json keys that ``extra_metadata`` may not override."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def _jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (NaN, inf) become None."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def build_metadata(result_or_model: Any, sha256: str) -> dict[str, Any]:
    """model.json content for a TrainResult (or a bare TabularModel)."""
    if isinstance(result_or_model, TrainResult):
        result = result_or_model
        model = result.model
        metrics = {"train": result.train_metrics, "validation": result.val_metrics}
        params: dict[str, Any] | None = result.params.to_dict()
        training: dict[str, Any] | None = {
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 3),
            "device": result.device,
            "threads": result.threads,
            "history": [h.to_dict() for h in result.history],
            **(
                {"data_reading": result.extra["data_reading"]}
                if "data_reading" in result.extra
                else {}
            ),
        }
    elif isinstance(result_or_model, TabularModel):
        model, metrics, params, training = result_or_model, {}, None, None
    else:
        raise TypeError(
            f"save_model needs a TrainResult or TabularModel, got {type(result_or_model)}"
        )
    return _jsonable(
        {
            "format_version": FORMAT_VERSION,
            "model_file": MODEL_FILE,
            "sha256": sha256,
            "trained_at": clock.iso_now("seconds"),
            "architecture": model.architecture,
            "feature_spec": model.spec.to_dict(),
            "preprocessing": model.preprocessor.to_dict(),
            "decision_threshold": float(model.decision_threshold),
            "training_params": params,
            "metrics": metrics,
            "training": training,
            "data_manifest": None,
            "training_reason": None,
            "library_versions": _library_versions(),
        }
    )


def save_model(
    result_or_model: Any, folder: str | Path, *, extra_metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model.pt`` and ``model.json`` into ``folder`` (created if needed); returns it.

    ``extra_metadata`` is merged into model.json at the top level; documented keys:
    ``data_manifest`` ({"sha256", "path"}: the prepared data, path relative to RETRAIN_HOME),
    ``training_reason``. Keys in :data:`RESERVED_KEYS` cannot be overridden.
    """
    folder = Path(folder)
    model = getattr(result_or_model, "model", result_or_model)
    if not isinstance(model, TabularModel):
        raise TypeError(f"save_model needs a TrainResult or TabularModel, got {type(model)}")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.net.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = sha256_bytes(payload)
    meta = build_metadata(result_or_model, digest)
    extra = dict(extra_metadata or {})
    clash = sorted(RESERVED_KEYS & set(extra))
    if clash:
        raise ValueError(f"extra_metadata may not override {clash}")
    meta.update(_jsonable(extra))
    # serialise before writing anything: a value JSON cannot hold leaves no half-written folder
    text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=False) + "\n"
    files = {MODEL_FILE: payload, METADATA_FILE: text.encode("utf-8")}
    return write_files(folder, files, "the model", OutputError)


@dataclass
class LoadedModel:
    """A model read back from its folder; scores raw DataFrames."""

    model: TabularModel
    metadata: dict[str, Any]
    path: Path
    sha256: str

    @property
    def decision_threshold(self) -> float:
        return self.model.decision_threshold

    @property
    def spec(self) -> FeatureSpec:
        return self.model.spec

    @property
    def version(self) -> str | None:
        """The folder name when it looks like a registry version (vNNNN), else None."""
        return self.path.name if VERSION_NAME.match(self.path.name) else None

    def predict_proba(self, df: pd.DataFrame, *, strict: bool = False) -> np.ndarray:
        """Probability of class 1 per row. Missing feature columns raise DataValidationError;
        unexpected columns do too when ``strict``."""
        return self.model.predict_proba(df, strict=strict, source=f"data for model {self.path}")

    def predict(self, df: pd.DataFrame, *, strict: bool = False) -> np.ndarray:
        return (self.predict_proba(df, strict=strict) >= self.decision_threshold).astype(np.int8)


def _model_folder(path: str | Path) -> Path:
    """Resolve symlinks once; a file path means its folder."""
    p = Path(path)
    try:
        resolved = p.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError) as exc:
        raise ModelLoadError(
            f"model path {p} does not exist or cannot be resolved: {exc}"
        ) from None
    return resolved if resolved.is_dir() else resolved.parent


def _read_metadata(folder: Path) -> dict[str, Any]:
    meta_path = folder / METADATA_FILE
    try:
        text = read_text(meta_path, "model metadata", ModelLoadError)
    except FileNotFoundError:
        raise ModelLoadError(f"{meta_path} is missing: not a model folder") from None
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise ModelLoadError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{meta_path} must hold a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            f"{meta_path}: unsupported format_version {version!r} "
            f"(this code reads {FORMAT_VERSION})"
        )
    for key in ("sha256", "architecture", "feature_spec", "preprocessing"):
        if key not in meta:
            raise ModelLoadError(f"{meta_path}: required key {key!r} is missing")
    return meta


def _read_state(folder: Path, expected_sha256: str) -> tuple[dict[str, torch.Tensor], str]:
    pt_path = folder / MODEL_FILE
    try:
        payload = read_bytes(pt_path, "model weights", ModelLoadError, limit=2**40)
    except FileNotFoundError:
        raise ModelLoadError(f"{pt_path} is missing") from None
    digest = sha256_bytes(payload)
    if digest != expected_sha256:
        raise ModelLoadError(
            f"{pt_path}: checksum mismatch (sha256 {digest}, model.json says {expected_sha256}); "
            "the file was modified or corrupted"
        )
    try:
        state = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ... all mean "refuse"
        raise ModelLoadError(
            f"{pt_path}: refused to load ({type(exc).__name__}); it is truncated, corrupt, or "
            f"holds objects other than tensors: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelLoadError(f"{pt_path}: expected a state_dict of tensors")
    return state, digest


def _check_layout(meta_path: Path, pre: Preprocessor, net: TabularNet) -> None:
    """The network's input layout must match the preprocessing it will be fed."""
    if int(net.architecture["numeric"]) != len(pre.numeric):
        raise ModelLoadError(
            f"{meta_path}: architecture has {net.architecture['numeric']} numeric inputs but "
            f"the preprocessing lists {len(pre.numeric)} numeric features"
        )
    layout = [(c.get("name"), int(c["levels"])) for c in net.architecture.get("categorical", [])]
    expected = [(c, len(pre.levels[c])) for c in pre.categorical]
    if layout != expected:
        raise ModelLoadError(
            f"{meta_path}: categorical inputs of the architecture {layout} do not match the "
            f"preprocessing levels {expected}"
        )


def _threshold(meta_path: Path, meta: dict[str, Any]) -> float:
    value = meta.get("decision_threshold", 0.5)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ModelLoadError(
            f"{meta_path}: decision_threshold must be a number in [0, 1], got {value!r}"
        )
    return float(value)


def load_model(path: str | Path) -> LoadedModel:
    """Load a model folder (or its model.pt). Raises ModelLoadError when anything is off."""
    folder = _model_folder(path)
    meta = _read_metadata(folder)
    state, digest = _read_state(folder, str(meta["sha256"]))
    meta_path = folder / METADATA_FILE
    try:
        spec = FeatureSpec.from_dict(meta["feature_spec"])
        pre = Preprocessor.from_dict(meta["preprocessing"])
        net = TabularNet(meta["architecture"])
        net.load_state_dict(state, strict=True)
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        RuntimeError,
        DataValidationError,
    ) as exc:
        raise ModelLoadError(
            f"{meta_path}: architecture/spec do not match {MODEL_FILE}: {exc}"
        ) from None
    if pre.numeric != spec.numeric or pre.categorical != spec.categorical:
        raise ModelLoadError(f"{meta_path}: preprocessing does not match feature_spec")
    _check_layout(meta_path, pre, net)
    net.eval()
    model = TabularModel(spec, pre, net, _threshold(meta_path, meta))
    return LoadedModel(model=model, metadata=meta, path=folder, sha256=digest)


__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "MODEL_FILE",
    "RESERVED_KEYS",
    "VERSION_NAME",
    "LoadedModel",
    "build_metadata",
    "load_model",
    "save_model",
    "sha256_bytes",
]

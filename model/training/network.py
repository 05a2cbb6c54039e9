"""The tabular binary classifier: preprocessing fitted on training data plus a PyTorch MLP.

Two layers, kept apart on purpose:

- :class:`Preprocessor` turns a raw DataFrame into two arrays (raw numeric values with NaN,
  categorical codes with 0 = "unknown"); it holds only JSON-friendly statistics.
- :class:`TabularNet` (an ``nn.Module``) holds every tensor: imputation medians, standardisation
  statistics (buffers), embeddings and the MLP. Its ``state_dict`` is the whole model.pt.

:class:`TabularModel` joins them with the feature spec and the decision threshold, so a model
scores a raw DataFrame by itself (:meth:`TabularModel.predict_proba`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.data import MISSING_LEVEL, FeatureSpec
from model.errors import DataValidationError

ONEHOT_MAX_LEVELS = 4
"""Categorical columns with at most this many training levels are one-hot encoded."""
MAX_EMBEDDING_DIM = 16
PREDICT_BATCH_ROWS = 65_536

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
}


def embedding_dim(levels: int) -> int:
    """Embedding width for a column with ``levels`` training levels (fastai's rule, capped)."""
    return int(min(MAX_EMBEDDING_DIM, max(2, round(1.6 * levels**0.56))))


def category_strings(series: pd.Series) -> pd.Series:
    """Values of a categorical column as strings (missing values stay missing).

    Integral floats are written as integers, so 1 and 1.0 are the same level. Empty strings
    are missing, as in :func:`model.data.prepare`.
    """
    s = series
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.dropna()
        if len(values) and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0)):
            s = s.astype("Int64")
    out = s.astype("string")
    empty = out.eq("").fillna(False).to_numpy(dtype=bool)
    return out.mask(empty) if empty.any() else out


@dataclass
class Preprocessor:
    """Training-split statistics: numeric medians/means/stds and categorical levels."""

    numeric: list[str]
    categorical: list[str]
    median: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    levels: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, df: pd.DataFrame, spec: FeatureSpec, source: str = "training data"
    ) -> Preprocessor:
        x = numeric_matrix(df, spec.numeric, source).astype(np.float64)
        median, mean, std = [], [], []
        for j in range(x.shape[1]):
            col = x[:, j]
            col = col[np.isfinite(col)]
            med = float(np.median(col)) if col.size else 0.0
            filled = np.where(np.isfinite(x[:, j]), x[:, j], med)  # stats ignore NaN and inf
            sd = float(np.std(filled))
            median.append(med)
            mean.append(float(np.mean(filled)))
            std.append(sd if np.isfinite(sd) and sd > 1e-12 else 1.0)
        levels = {}
        for col_name in spec.categorical:
            values = category_strings(df[col_name]).dropna().unique()
            levels[col_name] = sorted(str(v) for v in values)
        return cls(list(spec.numeric), list(spec.categorical), median, mean, std, levels)

    def transform(self, df: pd.DataFrame, source: str = "data") -> tuple[np.ndarray, np.ndarray]:
        """(raw numeric float32 with NaN, categorical int64 codes; 0 = unknown/missing)."""
        x_num = numeric_matrix(df, self.numeric, source)
        x_cat = np.zeros((len(df), len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            strings = category_strings(df[col])
            if MISSING_LEVEL in self.levels[col]:  # missing in raw data = the imputed level
                strings = strings.fillna(MISSING_LEVEL)
            values = np.asarray(strings.astype(object))
            index = pd.Index(self.levels[col], dtype=object)
            codes = index.get_indexer(pd.Index(values, dtype=object))
            x_cat[:, j] = codes.astype(np.int64) + 1  # -1 (unseen or missing) -> 0
        return x_num, x_cat

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": {
                c: {"median": self.median[i], "mean": self.mean[i], "std": self.std[i]}
                for i, c in enumerate(self.numeric)
            },
            "categorical": {
                c: {"levels": self.levels[c], "unknown_code": 0} for c in self.categorical
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        num = data.get("numeric", {})
        cat = data.get("categorical", {})
        names = list(num)
        return cls(
            numeric=names,
            categorical=list(cat),
            median=[float(num[c]["median"]) for c in names],
            mean=[float(num[c]["mean"]) for c in names],
            std=[float(num[c]["std"]) for c in names],
            levels={c: [str(v) for v in cat[c]["levels"]] for c in cat},
        )


def numeric_matrix(df: pd.DataFrame, columns: Sequence[str], source: str) -> np.ndarray:
    """``df[columns]`` as float32 (missing values as NaN); non-numeric data is an error, and so
    are infinite values (or values beyond float32's range), which no model can score."""
    out = np.empty((len(df), len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(
            s.dtype
        ):
            raise DataValidationError(
                f"{source}: numeric feature column {col!r} holds dates or times (dtype "
                f"{s.dtype}); the model was trained on numbers"
            )
        if not (pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)):
            try:
                s = pd.to_numeric(s, errors="raise")
            except (ValueError, TypeError) as exc:
                raise DataValidationError(
                    f"{source}: numeric feature column {col!r} holds non-numeric values "
                    f"(dtype {s.dtype}): {exc}"
                ) from None
        with np.errstate(over="ignore"):
            values = s.to_numpy(dtype=np.float32, na_value=np.nan)
        inf = np.isinf(values)
        if inf.any():
            raise DataValidationError(
                f"{source}: numeric feature column {col!r} has {int(inf.sum())} infinite value(s) "
                f"(or beyond float32's range), first at row {int(np.argmax(inf))}"
            )
        out[:, j] = values
    return out


def architecture_for(
    pre: Preprocessor, hidden_sizes: Sequence[int], dropout: float, activation: str
) -> dict[str, Any]:
    """The JSON description from which :class:`TabularNet` is rebuilt."""
    cats = []
    for col in pre.categorical:
        n = len(pre.levels[col])
        if n <= ONEHOT_MAX_LEVELS:
            cats.append({"name": col, "levels": n, "encoding": "onehot", "dim": n})
        else:
            cats.append(
                {"name": col, "levels": n, "encoding": "embedding", "dim": embedding_dim(n)}
            )
    return {
        "type": "mlp",
        "numeric": len(pre.numeric),
        "categorical": cats,
        "hidden_sizes": [int(h) for h in hidden_sizes],
        "dropout": float(dropout),
        "activation": activation,
    }


class TabularNet(nn.Module):
    """Imputation + standardisation (buffers), categorical encodings and an MLP -> one logit."""

    num_median: Tensor
    num_mean: Tensor
    num_std: Tensor

    def __init__(self, architecture: dict[str, Any]) -> None:
        super().__init__()
        self.architecture = architecture
        n_num = int(architecture["numeric"])
        act = architecture.get("activation", "relu")
        if act not in ACTIVATIONS:
            raise DataValidationError(
                f"unknown activation {act!r}; choose from {sorted(ACTIVATIONS)}"
            )
        self.act = ACTIVATIONS[act]
        self.dropout = float(architecture.get("dropout", 0.0))
        self.register_buffer("num_median", torch.zeros(n_num))
        self.register_buffer("num_mean", torch.zeros(n_num))
        self.register_buffer("num_std", torch.ones(n_num))
        self.embeddings = nn.ModuleDict()
        # (column index, "onehot"|"embedding", levels) in input order
        self.cat_layout: list[tuple[int, str, int]] = []
        width = n_num
        for j, cat in enumerate(architecture.get("categorical", [])):
            levels = int(cat["levels"])
            if cat["encoding"] == "embedding":
                emb = nn.Embedding(levels + 1, int(cat["dim"]))
                with torch.no_grad():
                    emb.weight[0].zero_()  # the "unknown" level starts (and stays) neutral
                self.embeddings[str(j)] = emb
            self.cat_layout.append((j, str(cat["encoding"]), levels))
            width += int(cat["dim"])
        self.input_width = width
        sizes = [width, *[int(h) for h in architecture["hidden_sizes"]], 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def set_statistics(self, pre: Preprocessor) -> None:
        with torch.no_grad():
            self.num_median.copy_(torch.tensor(pre.median, dtype=torch.float32))
            self.num_mean.copy_(torch.tensor(pre.mean, dtype=torch.float32))
            self.num_std.copy_(torch.tensor(pre.std, dtype=torch.float32))

    def standardize(self, x_num: Tensor) -> Tensor:
        """Median-impute NaN, then standardise with the training statistics."""
        x = torch.where(torch.isnan(x_num), self.num_median, x_num)
        return (x - self.num_mean) / self.num_std

    def inputs(self, z_num: Tensor, x_cat: Tensor) -> Tensor:
        """Standardised numerics joined with the categorical encodings."""
        if not self.cat_layout:
            return z_num
        parts = [z_num]
        for j, encoding, levels in self.cat_layout:
            codes = x_cat[:, j]
            if encoding == "embedding":
                parts.append(self.embeddings[str(j)](codes))
            else:  # one-hot without the unknown column: unknown is all zeros
                parts.append(F.one_hot(codes, levels + 1)[:, 1:].to(z_num.dtype))
        return torch.cat(parts, dim=1)

    def head(self, h: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        """MLP over the joined inputs. ``masks``: pre-scaled dropout masks, one per hidden layer
        (the training loop draws them in bulk); without them, ordinary dropout in train mode."""
        layers = cast(list[nn.Linear], self.layers)
        for i in range(len(layers) - 1):
            layer = layers[i]
            h = self.act(F.linear(h, layer.weight, layer.bias))
            if masks is not None:
                h = h * masks[i]
            elif self.training and self.dropout > 0:
                h = F.dropout(h, self.dropout, True)
        last = layers[-1]
        return F.linear(h, last.weight, last.bias).view(-1)

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        return self.head(self.inputs(self.standardize(x_num), x_cat))


@dataclass
class TabularModel:
    """A fitted model: spec + preprocessing + network + decision threshold."""

    spec: FeatureSpec
    preprocessor: Preprocessor
    net: TabularNet
    decision_threshold: float = 0.5

    @property
    def architecture(self) -> dict[str, Any]:
        return self.net.architecture

    def check_columns(
        self, df: pd.DataFrame, *, strict: bool = False, source: str = "data"
    ) -> None:
        """Missing feature columns are an error; unexpected columns only when ``strict``.

        Target, id, timestamp and excluded columns are never unexpected.
        """
        features = self.spec.features
        missing = [c for c in features if c not in df.columns]
        known = {*features, self.spec.target, self.spec.id_column, self.spec.timestamp_column}
        known.update(self.spec.excluded)
        unexpected = [str(c) for c in df.columns if c not in known]
        if missing or (strict and unexpected):
            raise DataValidationError(
                f"{source}: columns do not match the model's feature spec: "
                f"missing {missing}, unexpected {unexpected} (expected features {features})"
            )

    def encode(self, df: pd.DataFrame, source: str = "data") -> tuple[Tensor, Tensor]:
        x_num, x_cat = self.preprocessor.transform(df, source)
        return torch.from_numpy(x_num), torch.from_numpy(x_cat)

    def predict_proba(
        self,
        df: pd.DataFrame,
        *,
        strict: bool = False,
        batch_rows: int = PREDICT_BATCH_ROWS,
        source: str = "data",
    ) -> np.ndarray:
        """Probability of class 1 for each row of a raw DataFrame (float64 array)."""
        self.check_columns(df, strict=strict, source=source)
        x_num, x_cat = self.encode(df, source)
        self.net.eval()
        device = next(self.net.parameters()).device
        out = np.empty(len(df), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(df), batch_rows):
                stop = start + batch_rows
                logits = self.net(x_num[start:stop].to(device), x_cat[start:stop].to(device))
                out[start:stop] = torch.sigmoid(logits).double().cpu().numpy()
        return out

    def predict(self, df: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        """Class labels (0/1) at the stored decision threshold."""
        return (self.predict_proba(df, **kwargs) >= self.decision_threshold).astype(np.int8)


def build_model(
    spec: FeatureSpec,
    pre: Preprocessor,
    hidden_sizes: Sequence[int],
    dropout: float,
    activation: str,
    decision_threshold: float = 0.5,
) -> TabularModel:
    """A fresh (randomly initialised) model with the preprocessing statistics in place."""
    net = TabularNet(architecture_for(pre, hidden_sizes, dropout, activation))
    net.set_statistics(pre)
    return TabularModel(spec, pre, net, decision_threshold)

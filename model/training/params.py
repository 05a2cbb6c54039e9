"""Training parameters and results: ``TrainParams`` (with the lab's and the recommended
presets), ``EpochStats``, ``TrainResult`` and the training errors.

Plain data, shared by the training loop, the artifact writer and the CLI; imports only the
network (for its activations and the model type) and ``model.errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from model.errors import RetrainError
from model.training.network import ACTIVATIONS, TabularModel


class TrainingParamsError(RetrainError, ValueError):
    """A training parameter is out of range or of the wrong kind."""


class TrainingDivergedError(RetrainError):
    """The training loss became NaN or infinite (learning rate too high, bad data)."""


@dataclass(frozen=True)
class TrainParams:
    """Training parameters. Defaults are the original lab's (50 epochs, batch 32, lr 1e-3)."""

    num_epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 10
    """Epochs without validation-loss improvement before stopping; None = train every epoch
    and keep the last weights (the lab's behaviour). With a patience, the best epoch's
    weights are restored."""
    min_delta: float = 0.0
    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.2
    activation: str = "relu"
    class_weight: bool = False
    """Weight positives by n_negative / n_positive in the loss."""
    seed: int = 42
    device: str = "auto"
    threshold_strategy: str = "fixed"
    """"fixed" (0.5) or "f1" (maximise F1 on the validation split)."""
    target_column: str = "target"
    num_threads: int | None = None
    """CPU threads while training (torch, numba and Arrow together); None chooses
    (``model.threads.choose_threads``): ``RETRAIN_THREADS`` or ``OMP_NUM_THREADS`` if set, else
    1 for small steps or on 2 CPUs or fewer, else the CPUs free right now (up to 4). The
    choice and its reason are recorded in model.json (``training.threads``)."""
    cuda_batch_size: int | None = None
    """Opt-in: on a CUDA device, train with this batch size instead of ``batch_size`` (a GPU
    is launch-bound at small batches). None keeps ``batch_size`` everywhere; the batch size
    actually used is the one recorded in the result's parameters."""
    cuda_graphs: bool = True
    """On CUDA, replay each training step as a captured CUDA graph (see
    ``model.training.cuda``); False runs the eager loop there too."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        self.validate()

    def validate(self) -> None:
        problems = []
        if self.num_epochs < 1:
            problems.append(f"num_epochs must be >= 1, got {self.num_epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience must be >= 1 or None, got {self.patience}")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            problems.append(f"hidden_sizes must be positive, got {list(self.hidden_sizes)}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            problems.append(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            problems.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.threshold_strategy not in ("fixed", "f1"):
            problems.append(
                f"threshold_strategy must be fixed or f1, got {self.threshold_strategy!r}"
            )
        if self.cuda_batch_size is not None and self.cuda_batch_size < 1:
            problems.append(f"cuda_batch_size must be >= 1 or None, got {self.cuda_batch_size}")
        if self.num_threads is not None and self.num_threads < 1:
            problems.append(f"num_threads must be >= 1 or None, got {self.num_threads}")
        if problems:
            raise TrainingParamsError("invalid training parameters: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainParams:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingParamsError(
                f"unknown training parameters: {unknown}; known: {sorted(known)}"
            )
        if "hidden_sizes" in data:
            data["hidden_sizes"] = tuple(data["hidden_sizes"])
        try:
            return cls(**data)
        except TypeError as exc:
            raise TrainingParamsError(f"invalid training parameters: {exc}") from None

    def with_overrides(self, **overrides: Any) -> TrainParams:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


DEFAULT_TARGET = TrainParams.target_column
"""The default ``target_column``; a feature spec's own target overrides it."""

LAB = TrainParams(patience=None)
"""The original lab's configuration exactly: 50 epochs at batch 32, no early stopping."""

RECOMMENDED = TrainParams(num_epochs=100, batch_size=512, learning_rate=1e-2, patience=10)
"""The faster configuration (see docs/training.md: same AUC within noise, ~10-20x less time)."""


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    seconds: float
    improved: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: TabularModel
    history: list[EpochStats]
    best_epoch: int
    val_metrics: dict[str, float]
    train_metrics: dict[str, float]
    threshold: float
    seconds: float
    params: TrainParams
    device: str
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    threads: dict[str, Any] | None = None
    """The CPU threads chosen and why (``model.threads.ThreadChoice.to_dict``)."""


EpochCallback = Callable[[EpochStats], None]

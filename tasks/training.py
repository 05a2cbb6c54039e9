"""Prefect task over training: train on a prepared folder, save the model folder.

No retries: training is not IO, a retry would only repeat the failure.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import TaskRunContext

from model.settings import get_settings
from model.training import EpochStats, TrainParams, TrainResult, train_prepared
from model.training.cache import train_or_reuse
from tasks._io import keyed
from tasks.faults import kill_point

PROGRESS_EVERY_S = 1.0
"""Update the progress artifact at most this often (an epoch can take milliseconds)."""


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}"


@task(name="train_model")
def train_model(
    prepared_dir: str,
    out_dir: str,
    params: dict[str, Any],
    extra_metadata: dict[str, Any] | None = None,
    model_name: str = "demo",
) -> str:
    """Train a candidate on ``prepared_dir``, write it to ``out_dir``; return the model folder.

    Logs one line per epoch and keeps a progress artifact (0-100 %) up to date. With a
    training cache (``Settings.training_cache``: a backtest's) an identical candidate trained
    before is reused instead (:mod:`model.training.cache`).
    """
    logger = get_run_logger()
    train_params = TrainParams.from_dict(params)
    in_run = TaskRunContext.get() is not None  # artifacts need a run (not under task.fn())
    progress_id: UUID | None = None
    last_update = [time.monotonic()]
    if in_run:
        progress_id = cast(
            UUID,
            create_progress_artifact(
                0.0,
                key=keyed(f"training-progress-{model_name}"),
                description="Candidate training: epochs done",
            ),
        )

    def on_epoch(stats: EpochStats) -> None:
        logger.info(
            "epoch %d/%d train_loss %s val_loss %s val_auc %s (%.2fs)%s",
            stats.epoch,
            train_params.num_epochs,
            _fmt(stats.train_loss),
            _fmt(stats.val_loss),
            _fmt(stats.val_auc),
            stats.seconds,
            " *" if stats.improved else "",
        )
        kill_point("training")
        now = time.monotonic()
        if progress_id is not None and now - last_update[0] >= PROGRESS_EVERY_S:
            last_update[0] = now
            done = 100.0 * stats.epoch / train_params.num_epochs
            update_progress_artifact(
                progress_id, done, description=f"epoch {stats.epoch}, val_auc {_fmt(stats.val_auc)}"
            )

    def run() -> tuple[Path, TrainResult]:
        return train_prepared(
            prepared_dir,
            out_dir,
            train_params,
            on_epoch,
            extra_metadata=extra_metadata,
            memory_budget=get_settings().memory_budget,
        )

    cache = get_settings().training_cache
    if cache is None:
        folder, result = run()
    else:  # a backtest: a candidate trained identically before is reused, not trained again
        folder, reused = train_or_reuse(
            cache,
            prepared_dir,
            out_dir,
            train_params,
            run,
            extra_metadata,
            memory_budget=get_settings().memory_budget,
        )
        if reused is None:
            logger.info("reused the identical candidate in the training cache %s", cache)
            if progress_id is not None:
                update_progress_artifact(
                    progress_id, 100.0, description="reused an identical, cached candidate"
                )
            return str(folder)
        result = reused
    vm = result.val_metrics
    best = next((h for h in result.history if h.epoch == result.best_epoch), result.history[-1])
    if progress_id is not None:
        update_progress_artifact(
            progress_id,
            100.0,
            description=f"finished: best epoch {result.best_epoch} of {len(result.history)}, "
            f"validation AUC {_fmt(best.val_auc)} ({result.seconds:.1f} s on {result.device})",
        )
        create_table_artifact(
            [
                {
                    "epoch": h.epoch,
                    "train_loss": round(h.train_loss, 4),
                    "val_loss": round(h.val_loss, 4),
                    "val_auc": None if math.isnan(h.val_auc) else round(h.val_auc, 4),
                    "best": "yes" if h.epoch == result.best_epoch else "",
                }
                for h in result.history
            ],
            key=keyed(f"training-curve-{model_name}"),
            description="Loss and validation AUC per epoch (the best epoch's weights are kept)",
        )
    logger.info(
        "trained in %.1fs on %s: best epoch %d of %d, validation auc %s, threshold %.3f",
        result.seconds,
        result.device,
        result.best_epoch,
        len(result.history),
        _fmt(vm["auc"]),
        result.threshold,
    )
    return str(folder)

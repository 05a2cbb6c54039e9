"""The scoring service (``retrain serve``, ``make serve``): an entry layer like ``flows/``.

``app`` builds the FastAPI app over :mod:`model.serving` (validation, the model set and its
swap, the prediction log); ``metrics`` is its Prometheus text; :func:`run` serves it with
uvicorn (uvloop and httptools when installed). This package is the only one of the service
that imports prefect (for the promotion event subscription, inside a function).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from deployments.scoring.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "run"]


def startup_line(config: ServeConfig, models: Any) -> str:
    """What ``retrain serve`` says once its models are loaded: where, which model, which
    version(s), where the log goes."""
    prod = models.production.version if models.production else "none yet"
    extra = ""
    if models.challenger is not None:
        extra += f", challenger {models.challenger.version} at {models.traffic:g}%"
    if models.shadow is not None:
        extra += f", shadow {models.shadow.version}"
    log = f"prediction log {config.predictions_dir}" if config.log_enabled else "no prediction log"
    return (
        f"retrain serve: model {config.model_name}, production {prod}{extra}; "
        f"http://{config.host}:{config.port} (POST /predict, GET /health /version /metrics); "
        f"{log}"
    )


def run(config: ServeConfig) -> None:
    """Serve until SIGINT/SIGTERM; on shutdown the prediction log is flushed."""
    import torch
    import uvicorn

    torch.set_num_threads(int(os.environ.get("RETRAIN_SERVE_TORCH_THREADS", "1")))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(config)
    print(startup_line(config, app.state.service._models()), flush=True)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )

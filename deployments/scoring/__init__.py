"""The scoring service (``retrain serve``, ``make serve``): an entry layer like ``flows/``.

``app`` builds the FastAPI app over :mod:`model.serving` (validation, the model set and its
swap, the prediction log); ``metrics`` is its Prometheus text; :func:`run` serves it with
uvicorn (uvloop and httptools when installed). This package is the only one of the service
that imports prefect (for the promotion event subscription, inside a function).
"""

from __future__ import annotations

import logging
import os

from deployments.scoring.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "run"]


def run(config: ServeConfig) -> None:
    """Serve until SIGINT/SIGTERM; on shutdown the prediction log is flushed."""
    import torch
    import uvicorn

    torch.set_num_threads(int(os.environ.get("RETRAIN_SERVE_TORCH_THREADS", "1")))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(config)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )

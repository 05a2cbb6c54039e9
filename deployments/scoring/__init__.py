"""The scoring service (``retrain serve``, ``make serve``): an entry layer like ``flows/``.

``app`` builds the FastAPI app over :mod:`model.serving` (validation, the model set and its
swap, the prediction log); ``metrics`` is its Prometheus text; :func:`run` serves it with
uvicorn (uvloop and httptools when installed). This package is the only one of the service
that imports prefect (for the promotion event subscription, inside a function).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from deployments.scoring.app import ServeConfig, ServeConfigError, create_app

__all__ = ["ServeConfig", "create_app", "listen_socket", "run"]


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, or a one-line ServeConfigError (a port in use, a
    privileged port, an address this machine does not have): bound before any model loads,
    so a bad address fails at once instead of after the load (or never saying)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, OverflowError, UnicodeError) as exc:
        raise ServeConfigError(f"--host {host} --port {port}: cannot be resolved ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeConfigError(
            f"--host {host} --port {port}: cannot listen ({exc.strerror or exc})"
        ) from None
    return sock


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

    config.check()
    sock = listen_socket(config.host, config.port)
    torch.set_num_threads(int(os.environ.get("RETRAIN_SERVE_TORCH_THREADS", "1")))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        app = create_app(config)
        print(startup_line(config, app.state.service._models()), flush=True)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=config.host,
                port=config.port,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=10,
            )
        )
        server.run(sockets=[sock])
    finally:
        sock.close()

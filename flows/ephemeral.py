"""The Prefect server of a command-line run: a running one when there is, else a temporary
one tied to the process that starts it.

:func:`connect_cli_run` decides, before a command-line run's first flow
(``python -m flows.retraining``, ``flows.drift_monitor``, ``flows.demo``, the live flows,
``retrain drift --then-retrain``):

1. ``PREFECT_API_URL`` set: that server;
2. else, with ``RETRAIN_PREFECT_SERVER=auto`` (the default), the server ``make stack-up``
   started for this working root (it records its API address in ``<RETRAIN_HOME>/stack/``)
   when its process is alive and ``/health`` answers: runs, logs and events go there, and the
   20-25 s start of a temporary server is saved;
3. else (or with ``RETRAIN_PREFECT_SERVER=temporary``) a temporary server, tied to this
   process as below.

Without ``PREFECT_API_URL``, Prefect starts a temporary server as a child process (``uvicorn``)
and stops it at exit; a process killed with SIGKILL never runs that exit, and the server
lived on as an orphan. ``python -m flows.retraining``, ``flows.drift_monitor`` and
``flows.demo`` start it themselves first, from the main thread, with ``PR_SET_PDEATHSIG``
(Linux): the kernel sends it SIGTERM when this process dies, however it dies. Prefect then
reuses that server. Elsewhere (not Linux, a configured API, not the main thread) nothing
changes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Literal

PR_SET_PDEATHSIG = 1
SERVER_ENV = "RETRAIN_PREFECT_SERVER"
SERVER_CHOICES = ("auto", "temporary")
STACK_API_FILE = "api_url"
"""``<RETRAIN_HOME>/stack/api_url``: the API address ``deployments/stack-up.sh`` serves on."""
Connection = Literal["configured", "stack", "temporary"]


def stack_api_url(stack_dir: Path, timeout: float = 2.0) -> str | None:
    """The API address of the server ``make stack-up`` started (``stack_dir``:
    ``<RETRAIN_HOME>/stack``), when its recorded process is alive and ``/health`` answers."""
    try:
        url = (stack_dir / STACK_API_FILE).read_text(encoding="utf-8").strip()
        pid = int((stack_dir / "server.pid").read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    if not url.startswith("http://127.0.0.1:"):  # only the loopback server stack-up starts
        return None
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as reply:
            return url if reply.status == 200 else None
    except (OSError, ValueError):
        return None


def connect_cli_run(stack_dir: Path | None = None) -> Connection:
    """Point this process's Prefect at the server its flows should use (see the module's
    docstring); call it early in ``main()``, before any flow runs. Returns which it chose."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL

    from model.errors import ParameterError
    from model.settings import get_settings

    if PREFECT_API_URL.value():
        return "configured"
    choice = os.environ.get(SERVER_ENV, "auto").strip().lower() or "auto"
    if choice not in SERVER_CHOICES:
        raise ParameterError(
            f"{SERVER_ENV}={choice!r} is not accepted; use auto (a running `make stack-up` "
            "server, else a temporary one) or temporary"
        )
    if choice == "auto":
        url = stack_api_url(stack_dir or get_settings().root / "stack")
        if url:
            os.environ["PREFECT_API_URL"] = url  # seen by every thread and child process
            refresh_global_settings_context()
            return "stack"
    start_tied_ephemeral_server()
    return "temporary"


def _die_with(parent: int) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:  # runs in the child, between fork and exec
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def start_tied_ephemeral_server() -> bool:
    """Start Prefect's ephemeral server now, to die with this process; True when started.

    Call it early in ``main()``, before any flow runs.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return False
    if not sys.platform.startswith("linux"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False  # PDEATHSIG follows the thread that started the child
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's clients use (one per process)
    if server.running:
        return False
    real_popen = subprocess.Popen
    preexec = _die_with(os.getpid())

    class TiedPopen(real_popen):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("preexec_fn", preexec)
            super().__init__(*args, **kwargs)

    subprocess.Popen = TiedPopen  # type: ignore[misc]
    try:
        server.start()
    finally:
        subprocess.Popen = real_popen  # type: ignore[misc]
    return True

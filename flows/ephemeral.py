"""The ephemeral Prefect server of a command-line run, tied to the process that starts it.

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
from typing import Any

PR_SET_PDEATHSIG = 1


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

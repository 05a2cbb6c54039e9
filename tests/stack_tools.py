"""Helpers for tests that start real processes (a Prefect stack, the scoring service): a free
loopback port, stopping a recorded process group, and running a snippet in a fresh
interpreter. Importable from every test folder, like ``fakes``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fakes import REPO_ROOT


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(pid_file: Path) -> None:
    """Stop the process group whose leader's PID ``pid_file`` holds: SIGTERM, then SIGKILL,
    each followed by up to 10 s of waiting (nothing stopped by name)."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def run_snippet(env: dict[str, str], code: str, timeout: float = 120) -> Any:
    """Run ``code`` in a fresh interpreter with ``env`` (e.g. against a stack's API) from the
    project root; return the JSON its last output line holds."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])

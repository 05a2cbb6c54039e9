"""The instrumented reader of the sweep test: every prepared split a process resolves
(``Manifest.split_path``, which every ``load_split`` goes through) is appended to the file
named by ``RETRAIN_READ_AUDIT`` with the process id, the time and whether the promotion gate
(``tasks/compare.py``) or the post-gate leaderboard is on the stack, and whether the call
only sized the split (training's streaming decision reads the file's schema, not its rows).

Loaded at start-up by every Python process whose PYTHONPATH holds this folder (the Dask
workers of a sweep inherit it); the test process calls :func:`install` itself.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

ENV = "RETRAIN_READ_AUDIT"


def install() -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    from model.data.manifest import Manifest

    original = Manifest.split_path
    if getattr(original, "audited", False):
        return

    def split_path(self: Any, name: str) -> Any:
        frames = []
        frame = sys._getframe(1)
        while frame is not None:
            frames.append(frame.f_code.co_filename.replace(os.sep, "/"))
            frame = frame.f_back
        record = {
            "pid": os.getpid(),
            "split": name,
            "t": time.time_ns(),
            "gate": any(f.endswith("tasks/compare.py") for f in frames),
            "leaderboard": any(f.endswith("model/cycle/leaderboard.py") for f in frames),
            # training's choice between reading whole and streaming reads the schema only
            "sizing": sys._getframe(1).f_code.co_name == "split_size",
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return original(self, name)

    split_path.audited = True  # type: ignore[attr-defined]
    Manifest.split_path = split_path  # type: ignore[method-assign]


install()

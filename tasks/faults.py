"""Fault injection for tests: ``RETRAIN_TEST_KILL_AT=<stage>`` makes a cycle SIGKILL itself.

The stages are the points of a cycle a crash can interrupt: ``preparing`` (prepared data
written), ``training`` (after the first epoch), ``registering`` (candidate registered, no
decision yet), ``comparing`` (comparison computed, not recorded; promotion lock held) and
``promoting`` (PROMOTE recorded, production not switched; promotion lock held). Used by
``tests/flows/test_kill_cycle.py``; never set it outside tests.

``RETRAIN_TEST_PAUSE_AT=<stage>:<seconds>`` makes a cycle sleep there instead (the PostgreSQL
end-to-end test holds each model's promotion lock a while, to show two models promote at once).
"""

from __future__ import annotations

import os
import signal
import time

KILL_AT_ENV = "RETRAIN_TEST_KILL_AT"
PAUSE_AT_ENV = "RETRAIN_TEST_PAUSE_AT"
STAGES = ("preparing", "training", "registering", "comparing", "promoting")


def kill_point(stage: str) -> None:
    """SIGKILL this process when ``RETRAIN_TEST_KILL_AT`` names ``stage`` (a test hook)."""
    if os.environ.get(KILL_AT_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    where, _, seconds = os.environ.get(PAUSE_AT_ENV, "").partition(":")
    if where == stage:
        time.sleep(float(seconds or 0))

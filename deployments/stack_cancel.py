"""Cancel the runs in flight on the stack's work pool, before ``stack-down.sh`` stops its workers.

``python -m deployments.stack_cancel [--pool retraining-pool] [--timeout 30]``, with
``PREFECT_API_URL`` pointing at the stack's server:

1. every Running or Pending flow run of the pool is set to Cancelling through the API, while
   the workers still run: the worker that started it stops its process and marks it
   Cancelled;
2. it waits until each is Cancelled (or otherwise final), up to ``--timeout`` seconds;
3. a run still not final then is stopped by its ``infrastructure_pid`` (the flow-run
   process, leader of its own process group on this machine: SIGTERM, then SIGKILL after
   10 s) and marked Cancelled.

Prints one line per run; exit 0, or 1 when a run could not be stopped. Scheduled (future)
runs are left as they are: the server runs them when the stack is up again.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from typing import Any
from uuid import UUID

POOL = "retraining-pool"
TIMEOUT_S = 30.0
IN_FLIGHT = ("RUNNING", "PENDING", "CANCELLING")


def process_of(infrastructure_pid: str | None) -> int | None:
    """The local PID in a run's ``infrastructure_pid`` (``1234`` or ``host:1234``); None for
    another machine's or none."""
    if not infrastructure_pid:
        return None
    host, _, pid = infrastructure_pid.rpartition(":")
    if host and host not in (socket.gethostname(), "localhost", "127.0.0.1"):
        return None
    try:
        return int(pid)
    except ValueError:
        return None


def stop_process_group(pid: int, grace_s: float = 10.0) -> bool:
    """SIGTERM the process group ``pid`` leads (else the process), SIGKILL after
    ``grace_s``; True once it is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                os.kill(pid, sig)  # not a group leader: the process itself
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
    return False


def _in_flight(client: Any, pool: str) -> list[Any]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType

    return list(
        client.read_flow_runs(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType(s) for s in IN_FLIGHT])
                )
            ),
        )
    )


def cancel_pool_runs(pool: str = POOL, timeout: float = TIMEOUT_S) -> int:
    """Cancel the pool's runs in flight (see the module's docstring); return how many could
    not be stopped."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Cancelling

    with get_client(sync_client=True) as client:
        runs = _in_flight(client, pool)
        if not runs:
            print(f"runs in flight on {pool}: none")
            return 0
        for run in runs:
            if run.state and run.state.type.value != "CANCELLING":
                client.set_flow_run_state(run.id, Cancelling(message="make stack-down"))
            print(f"cancelling {run.name} ({run.id})")
        waiting: dict[UUID, Any] = {run.id: run for run in runs}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            time.sleep(1.0)
            for run_id in list(waiting):
                run = client.read_flow_run(run_id)
                waiting[run_id] = run
                if run.state is None or run.state.is_final():
                    print(f"{run.name}: {run.state.name if run.state else 'no state'}")
                    del waiting[run_id]
        failed = 0
        for run in waiting.values():  # the worker did not stop it in time
            pid = process_of(run.infrastructure_pid)
            stopped = pid is not None and stop_process_group(pid)
            if stopped or pid is None:
                client.set_flow_run_state(
                    run.id, Cancelled(message="make stack-down: stopped by its PID"), force=True
                )
            how = f"stopped by its PID {pid}" if stopped else "no local process to stop"
            if pid is not None and not stopped:
                how, failed = f"PID {pid} would not stop", failed + 1
            print(f"{run.name}: not cancelled within {timeout:.0f} s; {how}")
        return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=POOL)
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds to wait")
    args = parser.parse_args(argv)
    try:
        return 1 if cancel_pool_runs(args.pool, args.timeout) else 0
    except Exception as exc:  # the server may be half down: say so, let stack-down go on
        print(f"stack-down: could not cancel the runs in flight: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""How many threads the CPU-bound stages use: chosen from the CPUs that are actually free.

torch, numba and Arrow each start a pool as wide as the machine. On a busy machine those pools
fight the other processes (and each other) for the same cores: on a 2-core machine with a
second process spinning, two torch threads trained at 32k-176k samples/s where one thread ran
at 585k-1.03M. So a stage asks ``choose_threads`` once and runs in ``thread_scope``, which
sets torch's, numba's and Arrow's pools to that one number and puts them back afterwards.

The rule (``choose_threads``):

1. a number the user set wins: the ``requested`` argument (``num_threads``), else
   ``RETRAIN_THREADS``, else ``OMP_NUM_THREADS``;
2. small work (a batch of a small network) runs on 1 thread: synchronising threads costs
   more than it saves;
3. on 2 CPUs or fewer, 1 thread: a second thread only helps on an idle machine, and loses
   several times over on a busy one;
4. otherwise the CPUs left idle over a short sample of ``/proc/stat`` (rounded down, at
   least 1), capped at ``cap`` and at the CPUs this process may use (its affinity mask and
   its cgroup's CPU quota).

Plain Python: torch, numba and pyarrow are touched only if the process already imported them.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SMALL_WORK = 262_144
"""Below this many values per step (batch size x widest layer), one thread is fastest."""
DEFAULT_CAP = 4
"""Tabular networks gain little beyond four threads; the rest is left to other work."""
ENV_VARS = ("RETRAIN_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class ThreadChoice:
    """The number of threads a stage runs with, and why (recorded in ``model.json``)."""

    threads: int
    cpus: int
    """CPUs this process may use (affinity mask, cgroup quota)."""
    free: float | None
    """CPUs idle over the sample; None when the rule did not need to look."""
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.free is not None:
            out["free"] = round(self.free, 2)
        return out


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_quota() -> float | None:
    """CPUs the cgroup v2 ``cpu.max`` allows ("max" or unreadable: no limit)."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        return int(text[0]) / int(text[1])
    except (ValueError, ZeroDivisionError):
        return None


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [float(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])  # guest time is already counted in user


def free_cpus(sample_s: float = 0.1) -> float | None:
    """CPUs idle over ``sample_s`` seconds (machine-wide), or None where it cannot be read."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(sample_s)
    second = _cpu_times()
    if second is None:
        return None
    total = second[1] - first[1]
    if total <= 0:
        return None
    online = os.cpu_count() or 1
    return max(0.0, (second[0] - first[0]) / total * online)


def requested_threads(requested: int | None) -> tuple[int, str] | None:
    """The number the user set (argument, then environment), with where it came from."""
    if requested is not None:
        return int(requested), "set: num_threads"
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                n = int(value)
            except ValueError:
                continue
            if n >= 1:
                return n, f"set: {name}"
    return None


def choose_threads(
    requested: int | None = None,
    *,
    work: int | None = None,
    cap: int = DEFAULT_CAP,
    sample_s: float = 0.1,
) -> ThreadChoice:
    """The threads for one stage (see the module's docstring for the rule).

    ``work`` is the values one step touches (a batch times the widest layer); None means large.
    """
    cpus = usable_cpus()
    chosen = requested_threads(requested)
    if chosen is not None:
        return ThreadChoice(chosen[0], cpus, None, chosen[1])
    if work is not None and work < SMALL_WORK:
        return ThreadChoice(1, cpus, None, f"small work ({work:,} values a step)")
    if cpus <= 2:
        return ThreadChoice(1, cpus, None, f"{cpus} CPU(s): one thread")
    free = free_cpus(sample_s)
    if free is None:
        n = min(cap, cpus)
        return ThreadChoice(n, cpus, None, "CPU load unreadable: up to the cap")
    n = max(1, min(cap, cpus, math.floor(free + 0.25)))
    return ThreadChoice(n, cpus, free, f"{free:.1f} of {cpus} CPUs free")


def _numba_threads(n: int) -> int | None:
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    try:
        before = int(numba.get_num_threads())
        numba.set_num_threads(max(1, min(n, int(numba.config.NUMBA_NUM_THREADS))))
    except (AttributeError, ValueError, RuntimeError):  # pragma: no cover - layer unavailable
        return None
    return before


@contextmanager
def thread_scope(n: int) -> Iterator[None]:
    """torch's, numba's and Arrow's pools at ``n`` threads inside; as they were afterwards."""
    torch = sys.modules.get("torch")
    pa = sys.modules.get("pyarrow")
    torch_before = torch.get_num_threads() if torch is not None else None
    arrow_before = pa.cpu_count() if pa is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    if pa is not None:
        pa.set_cpu_count(n)
    numba_before = _numba_threads(n)
    try:
        yield
    finally:
        if torch is not None and torch_before is not None:
            torch.set_num_threads(torch_before)
        if pa is not None and arrow_before is not None:
            pa.set_cpu_count(arrow_before)
        if numba_before is not None:
            sys.modules["numba"].set_num_threads(numba_before)

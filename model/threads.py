"""How many threads the CPU-bound stages use: chosen from the CPUs that are actually free.

torch, numba and Arrow each start a pool as wide as the machine. On a busy machine those pools
fight the other processes (and each other) for the same cores: on a 2-core machine with a
second process spinning, two torch threads trained at 32k-176k samples/s where one thread ran
at 585k-1.03M. So each stage asks ``choose_threads`` once:

- training runs inside ``thread_scope`` (torch's pool and Arrow's at that number, put back
  afterwards);
- the gate's bootstrap runs its numba kernels (GIL released) in that many threads;
- drift compares its columns in that many threads.

The rule (``choose_threads``):

1. a number the user set wins: the ``requested`` argument (``num_threads``), else
   ``RETRAIN_THREADS``, else ``OMP_NUM_THREADS`` (Dask sets it to 1 in its workers: one thread
   per worker process, as Dask intends);
2. for a pool whose threads synchronise at every step (torch): small work (a batch of a small
   network) runs on 1 thread, and so does any work on 2 CPUs or fewer: a second thread only
   helps on an idle machine, and loses several times over on a busy one;
3. otherwise the CPUs the other processes left idle lately (``free_cpus``: a sample of
   ``/proc/stat`` over the CPUs this process may run on), rounded to the nearest whole CPU, at
   least 1, capped at ``cap`` and at those CPUs (the affinity mask, lowered by the cgroup's
   CPU quota). Pools of independent chunks (the bootstrap, drift's columns) skip rule 2: a
   thread there that finds no free CPU only time-shares, it does not spin.

Plain Python: torch and pyarrow are touched only if the process already imported them.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model.errors import SettingsError

SMALL_WORK = 262_144
"""Below this many values per step (batch size x widest layer), one thread is fastest."""
DEFAULT_CAP = 4
"""Tabular networks gain little beyond four threads; the rest is left to other work."""
ENV_VARS = ("RETRAIN_THREADS", "OMP_NUM_THREADS")
SAMPLE_S = 0.1
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class ThreadChoice:
    """The number of threads a stage runs with, and why (recorded in ``model.json``)."""

    threads: int
    cpus: int
    """CPUs this process may use (affinity mask, cgroup quota)."""
    free: float | None
    """Of those, the CPUs idle over the sample; None when the rule did not need to look."""
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.free is not None:
            out["free"] = round(self.free, 2)
        return out


# --------------------------------------------------------------------------- what may run


def affinity() -> set[int]:
    """The CPUs this process may run on (all online CPUs where there is no affinity call)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return set(range(os.cpu_count() or 1))


def cgroup_quota(
    root: Path = CGROUP_ROOT, self_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """CPUs the process's cgroup v2 ``cpu.max`` allows (None: no limit, or none readable).

    The process's own group comes from ``/proc/self/cgroup`` (``0::<path>``); without a cgroup
    namespace that path is below ``root``. The group's file is read, else the root's."""
    candidates = []
    try:
        for line in self_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                candidates.append(root / line[3:].strip().lstrip("/") / "cpu.max")
    except OSError:
        pass
    candidates.append(root / "cpu.max")
    for path in candidates:
        try:
            fields = path.read_text().split()
        except OSError:
            continue
        return parse_cpu_max(fields)
    return None


def parse_cpu_max(fields: list[str]) -> float | None:
    """``cpu.max``'s "quota period" as CPUs; "max", or anything unreadable: None."""
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup CPU quota (a
    quota of 2.5 CPUs is 2: a third thread would be throttled)."""
    cpus = len(affinity())
    quota = cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


# --------------------------------------------------------------------------- what is free


def parse_proc_stat(text: str, cpus: set[int]) -> tuple[float, float, int] | None:
    """(idle, total, CPUs counted) jiffies summed over the ``cpuN`` lines of ``cpus``."""
    idle = total = 0.0
    counted = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu":
            continue
        try:
            number = int(fields[0][3:])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            continue
        if number not in cpus or len(values) < 4:
            continue
        idle += values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
        total += sum(values[:8])  # user .. steal; guest time is already counted in user
        counted += 1
    return (idle, total, counted) if counted else None


@dataclass(frozen=True)
class CpuReading:
    """One reading of the CPUs this process may run on, and of this process's own CPU time."""

    at: float
    """``time.monotonic()`` when read."""
    idle: float
    total: float
    cpus: int
    own_s: float
    """This process's CPU time so far (all its threads), seconds."""


def read_cpus(cpus: set[int] | None = None) -> CpuReading | None:
    """A reading now (None where ``/proc/stat`` cannot be read)."""
    try:
        text = PROC_STAT.read_text(encoding="ascii")
    except OSError:
        return None
    parsed = parse_proc_stat(text, affinity() if cpus is None else cpus)
    if parsed is None:
        return None
    return CpuReading(time.monotonic(), parsed[0], parsed[1], parsed[2], time.process_time())


def free_between(first: CpuReading | None, second: CpuReading | None) -> float | None:
    """CPUs that other processes left idle between two readings: the idle time, plus the time
    this process itself ran (it is the one asking), over the time that passed."""
    if first is None or second is None or first.cpus != second.cpus:
        return None
    total = second.total - first.total
    if total <= 0:
        return None
    own = (second.own_s - first.own_s) * CLOCK_TICKS
    return max(0.0, min(1.0, (second.idle - first.idle + own) / total)) * second.cpus


CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
"""/proc/stat's unit: jiffies a second."""
FRESH_S = (0.05, 5.0)
"""The previous reading is the start of the sample when it is this old (seconds): no wait."""
_previous: CpuReading | None = None
_last: tuple[float, float | None] | None = None
_lock = threading.Lock()


def free_cpus(sample_s: float = SAMPLE_S) -> float | None:
    """Of the CPUs this process may run on, how many the other processes left idle lately.

    The sample runs from the previous reading when that is 0.05-5 s old (no waiting: stages
    that ask often pay one read of ``/proc/stat``), else over ``sample_s`` seconds from now.
    None where ``/proc/stat`` cannot be read."""
    global _previous, _last
    with _lock:
        now = time.monotonic()
        if _last is not None and now - _last[0] < FRESH_S[0]:
            return _last[1]
        start = _previous
    if start is None or not FRESH_S[0] <= now - start.at <= FRESH_S[1]:
        start = read_cpus()
        if start is None:
            return None
        time.sleep(sample_s)
    end = read_cpus()
    free = free_between(start, end)
    with _lock:
        _previous, _last = end, (time.monotonic(), free)
    return free


# --------------------------------------------------------------------------- the choice


def requested_threads(requested: int | None) -> tuple[int, str] | None:
    """The number the user set (argument, then environment), with where it came from.

    A ``RETRAIN_THREADS`` that is not a whole number of at least 1 is an error (exit 2);
    ``OMP_NUM_THREADS`` is read as OpenMP does (its first level, "4,2" is 4) and ignored when
    it is not a positive number."""
    if requested is not None:
        return int(requested), "set: num_threads"
    value = os.environ.get("RETRAIN_THREADS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise SettingsError(
                f"RETRAIN_THREADS={value!r}: must be a whole number of threads, at least 1"
            )
        return n, "set: RETRAIN_THREADS"
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) >= 1:
        return int(first), "set: OMP_NUM_THREADS"
    return None


def choose_threads(
    requested: int | None = None,
    *,
    work: int | None = None,
    cap: int = DEFAULT_CAP,
    synchronised: bool = True,
    sample_s: float = SAMPLE_S,
) -> ThreadChoice:
    """The threads for one stage (see the module's docstring for the rule).

    ``work`` is the values one step touches (a batch times the widest layer); None means large.
    ``synchronised`` is False for pools of independent chunks, which skip rule 2.
    """
    cpus = usable_cpus()
    chosen = requested_threads(requested)
    if chosen is not None:
        return ThreadChoice(chosen[0], cpus, None, chosen[1])
    if synchronised and work is not None and work < SMALL_WORK:
        return ThreadChoice(1, cpus, None, f"small work ({work:,} values a step)")
    if synchronised and cpus <= 2:
        return ThreadChoice(1, cpus, None, f"{cpus} CPU(s): one thread")
    top = min(cap, cpus)
    free = free_cpus(sample_s)
    if free is None:
        return ThreadChoice(top, cpus, None, "CPU load unreadable: up to the cap")
    n = max(1, min(top, round(free)))
    return ThreadChoice(n, cpus, free, f"{free:.1f} of {cpus} CPUs free")


@contextmanager
def thread_scope(n: int) -> Iterator[None]:
    """torch's and Arrow's pools at ``n`` threads inside; as they were afterwards (also when
    setting one of them fails). numba's kernels here are not ``parallel``: their threads are
    the bootstrap's pool, sized by ``choose_threads``."""
    with ExitStack() as stack:
        torch = sys.modules.get("torch")
        if torch is not None:
            before = torch.get_num_threads()
            stack.callback(torch.set_num_threads, before)
            torch.set_num_threads(n)
        pa = sys.modules.get("pyarrow")
        if pa is not None:
            arrow_before = pa.cpu_count()
            stack.callback(pa.set_cpu_count, arrow_before)
            pa.set_cpu_count(n)
        yield

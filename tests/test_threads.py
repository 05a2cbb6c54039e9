"""The thread choice (model.threads): the user's number wins, then one thread for small steps
or on 2 CPUs or fewer, else the CPUs the other processes left free; torch and Arrow set
together and put back; the choice recorded in model.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from model import threads
from model.artifact import save_model
from model.errors import SettingsError
from model.threads import (
    CpuReading,
    ThreadChoice,
    choose_threads,
    free_between,
    parse_proc_stat,
    thread_scope,
    usable_cpus,
)
from model.training import TrainParams, train

BIG = 4096 * 64  # a step of batch 4,096 through a 64-wide layer: not small work


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in threads.ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def machine(monkeypatch: pytest.MonkeyPatch, cpus: int, free: float | None) -> None:
    monkeypatch.setattr(threads, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(threads, "free_cpus", lambda sample_s=0.1: free)


def test_a_number_the_user_set_wins_argument_then_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine(monkeypatch, cpus=16, free=0.0)
    assert choose_threads(3, work=BIG) == ThreadChoice(3, 16, None, "set: num_threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert choose_threads(None, work=10) == ThreadChoice(5, 16, None, "set: OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # OpenMP's nested levels: the first one
    assert choose_threads(None, work=10).threads == 4
    monkeypatch.setenv("RETRAIN_THREADS", "6")
    assert choose_threads(None, work=10) == ThreadChoice(6, 16, None, "set: RETRAIN_THREADS")


@pytest.mark.parametrize("value", ["0", "-1", "many", "2.5"])
def test_a_retrain_threads_that_is_not_a_count_is_an_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RETRAIN_THREADS", value)
    with pytest.raises(SettingsError, match=f"RETRAIN_THREADS='{value}'"):
        choose_threads(None, work=BIG)


@pytest.mark.parametrize("value", ["0", "-2", "auto", ""])
def test_an_omp_num_threads_that_is_not_a_count_is_ignored(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    machine(monkeypatch, cpus=8, free=2.9)
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert choose_threads(None, work=BIG) == ThreadChoice(3, 8, 2.9, "2.9 of 8 CPUs free")


@pytest.mark.parametrize(
    ("cpus", "free", "work", "expected"),
    [
        (16, 15.9, 512 * 64, 1),  # small work: one thread even on an idle machine
        (2, 2.0, BIG, 1),  # 2 CPUs: one thread even when both look idle
        (1, 1.0, BIG, 1),
        (8, 7.8, BIG, 4),  # idle: up to the cap
        (8, 2.9, BIG, 3),  # the nearest whole CPU
        (8, 2.4, BIG, 2),
        (8, 0.3, BIG, 1),  # all busy: at least one
        (3, 3.0, BIG, 3),  # never more than the process may use
        (8, None, BIG, 4),  # /proc/stat unreadable: the cap
    ],
)
def test_the_rule_for_torch(
    monkeypatch: pytest.MonkeyPatch, cpus: int, free: float | None, work: int, expected: int
) -> None:
    machine(monkeypatch, cpus, free)
    choice = choose_threads(None, work=work)
    assert choice.threads == expected
    assert choice.cpus == cpus
    assert choice.to_dict()["threads"] == expected and choice.reason


@pytest.mark.parametrize(("cpus", "free", "expected"), [(2, 2.0, 2), (2, 0.9, 1), (2, 1.6, 2)])
def test_pools_of_independent_chunks_use_what_is_free_even_on_two_cpus(
    monkeypatch: pytest.MonkeyPatch, cpus: int, free: float, expected: int
) -> None:
    machine(monkeypatch, cpus, free)
    assert choose_threads(synchronised=False).threads == expected


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("150000 100000", 1), ("250000 100000", 2), ("max 100000", None), ("x y", None), ("", None)],
)
def test_a_cgroup_quota_lowers_the_usable_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, cpus: int | None
) -> None:
    (tmp_path / "group").mkdir()
    (tmp_path / "group" / "cpu.max").write_text(text + "\n")
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("0::/group\n")
    quota = threads.cgroup_quota(tmp_path, self_cgroup)
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(threads, "cgroup_quota", lambda: quota)
    assert usable_cpus() == (affinity if cpus is None else min(affinity, cpus))


def test_proc_stat_counts_only_the_cpus_the_process_may_use() -> None:
    text = (
        "cpu  900 0 300 5000 100 0 0 0 0 0\n"
        "cpu0 100 0 50 1000 0 0 0 0 0 0\n"
        "cpu1 400 0 100 500 50 0 0 0 0 0\n"
        "cpu2 400 0 150 3500 50 0 0 0 0 0\n"
        "intr 12345\n"
    )
    assert parse_proc_stat(text, {0, 2}) == (
        1000 + 3500 + 50,
        100 + 50 + 1000 + 400 + 150 + 3550,
        2,
    )
    assert parse_proc_stat(text, {7}) is None


def test_free_cpus_are_the_idle_share_plus_this_process_own_time() -> None:
    tick = threads.CLOCK_TICKS
    first = CpuReading(at=0.0, idle=1000.0, total=4000.0, cpus=4, own_s=1.0)
    # 400 jiffies passed on 4 CPUs: 100 idle, and this process ran 50 of them
    second = CpuReading(at=1.0, idle=1100.0, total=4400.0, cpus=4, own_s=1.0 + 50 / tick)
    assert free_between(first, second) == pytest.approx((100 + 50) / 400 * 4)
    assert free_between(first, None) is None
    assert free_between(first, first) is None  # no time passed


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc/stat (Linux)")
def test_free_cpus_sees_a_process_spinning_beside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the kernel's own count: while another process spins on a CPU this process may
    use, at most the others are free. Pinned to one CPU (when it may pin), the spinner leaves
    none."""
    cpus = sorted(os.sched_getaffinity(0))
    monkeypatch.setattr(threads, "_previous", None)
    monkeypatch.setattr(threads, "_last", None)
    code = f"import os; os.sched_setaffinity(0, {{{cpus[0]}}})\nwhile True: pass"
    spinner = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)
        readings = []
        for _ in range(3):
            monkeypatch.setattr(threads, "_previous", None)
            monkeypatch.setattr(threads, "_last", None)
            readings.append(threads.free_cpus(0.3))
    finally:
        spinner.kill()
        spinner.wait()
    assert all(r is not None and 0.0 <= r <= len(cpus) for r in readings)
    assert min(r for r in readings if r is not None) <= len(cpus) - 0.8


def test_the_scope_sets_torch_and_arrow_together_and_puts_them_back() -> None:
    outside = (torch.get_num_threads(), pa.cpu_count())
    torch.set_num_threads(2)
    pa.set_cpu_count(2)
    try:
        with thread_scope(1):
            assert (torch.get_num_threads(), pa.cpu_count()) == (1, 1)
        assert (torch.get_num_threads(), pa.cpu_count()) == (2, 2)
        with pytest.raises(RuntimeError), thread_scope(1):
            raise RuntimeError("a failing stage")
        assert (torch.get_num_threads(), pa.cpu_count()) == (2, 2)
    finally:
        torch.set_num_threads(outside[0])
        pa.set_cpu_count(outside[1])


def test_training_records_its_choice_in_model_json(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(target=(x[:, 0] > 0).astype(int))
    params = TrainParams(num_epochs=1, batch_size=32, hidden_sizes=(8,), device="cpu")
    result = train(df[:300], df[300:], params)
    save_model(result, tmp_path / "m")
    recorded = json.loads((tmp_path / "m" / "model.json").read_text())["training"]["threads"]
    assert recorded == {
        "threads": 1,
        "cpus": usable_cpus(),
        "free": None,
        "reason": "small work (256 values a step)",
    }
    monkeypatch.setenv("RETRAIN_THREADS", "2")
    again = train(df[:300], df[300:], params)
    assert again.threads == {
        "threads": 2,
        "cpus": usable_cpus(),
        "free": None,
        "reason": "set: RETRAIN_THREADS",
    }

"""The thread choice (model.threads): the user's number wins, then one thread for small steps
or on 2 CPUs or fewer, else the CPUs free right now; torch, numba and Arrow set together and
put back; the choice recorded in model.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from model import threads
from model.artifact import save_model
from model.threads import ThreadChoice, choose_threads, thread_scope, usable_cpus
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
    assert choose_threads(None, work=10).threads == 5
    monkeypatch.setenv("RETRAIN_THREADS", "6")
    assert choose_threads(None, work=10) == ThreadChoice(6, 16, None, "set: RETRAIN_THREADS")
    monkeypatch.setenv("RETRAIN_THREADS", "many")  # not a number: the next one is read
    assert choose_threads(None, work=10).reason == "set: OMP_NUM_THREADS"


@pytest.mark.parametrize(
    ("cpus", "free", "work", "expected"),
    [
        (16, 15.9, 512 * 64, 1),  # small work: one thread even on an idle machine
        (2, 2.0, BIG, 1),  # 2 CPUs: one thread even when both look idle
        (1, 1.0, BIG, 1),
        (8, 7.8, BIG, 4),  # idle: up to the cap
        (8, 2.9, BIG, 3),  # three free CPUs (rounded as 2.9 -> 3)
        (8, 2.6, BIG, 2),  # rounded down below .75
        (8, 0.3, BIG, 1),  # all busy: at least one
        (3, 3.0, BIG, 3),  # never more than the process may use
        (8, None, BIG, 4),  # /proc/stat unreadable: the cap
    ],
)
def test_the_rule(
    monkeypatch: pytest.MonkeyPatch, cpus: int, free: float | None, work: int, expected: int
) -> None:
    machine(monkeypatch, cpus, free)
    choice = choose_threads(None, work=work)
    assert choice.threads == expected
    assert choice.cpus == cpus
    assert choice.to_dict()["threads"] == expected and choice.reason


def test_a_cgroup_quota_lowers_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 1.5)
    assert usable_cpus() == min(affinity, 2)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    assert usable_cpus() == affinity


def test_free_cpus_sees_a_spinning_process() -> None:
    """Machine-wide idle CPUs, checked against the kernel's own count: the reading never
    exceeds the online CPUs, and a process spinning on one core shows as busy time."""
    online = os.cpu_count() or 1
    idle = threads.free_cpus(0.3)
    assert idle is not None and 0.0 <= idle <= online + 1e-9
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = [threads.free_cpus(0.3) for _ in range(3)]
    finally:
        spinner.kill()
        spinner.wait()
    # a whole core is spinning: at most online - 1 CPUs are idle (a little slack for rounding)
    assert min(b for b in busy if b is not None) <= online - 0.8


def test_the_scope_sets_torch_numba_and_arrow_together_and_puts_them_back() -> None:
    before = (torch.get_num_threads(), numba.get_num_threads(), pa.cpu_count())
    with thread_scope(1):
        assert (torch.get_num_threads(), numba.get_num_threads(), pa.cpu_count()) == (1, 1, 1)
    assert (torch.get_num_threads(), numba.get_num_threads(), pa.cpu_count()) == before


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
        "reason": recorded["reason"],
    }
    assert recorded["reason"].startswith("small work")
    monkeypatch.setenv("RETRAIN_THREADS", "2")
    again = train(df[:300], df[300:], params)
    assert again.threads == {
        "threads": 2,
        "cpus": usable_cpus(),
        "free": None,
        "reason": "set: RETRAIN_THREADS",
    }

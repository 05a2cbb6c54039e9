"""The gate's statistics on a torch device (:mod:`model.gate.device`) against the CPU kernels.

The torch code is the same on CUDA and on the CPU, so it is checked here on torch's CPU device
against the compiled kernels (an independent implementation): the weights bit for bit, the
integer-valued statistics (confusion counts, AUC) bit for bit, the others to 1e-12, and the
comparator's decisions equal. The CUDA tests run the same comparisons on a GPU and skip,
saying why, where there is none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from model.cycle.models_config import BUILTIN_DEFAULTS
from model.cycle.params import check_parameters
from model.errors import ComparisonInputError
from model.gate import device as gate_device
from model.gate import kernels
from model.gate.bootstrap import POISSON_TABLE, paired_bootstrap
from model.gate.comparator import ModelComparator
from model.gate.metrics import METRICS
from model.gate.resample import ArrayRows, poisson_deltas, resample_keys
from model.gate.result import ModelInfo
from model.gate.spilled_compare import compare_spilled
from model.gate.stats import _placements, delong_test
from tests.gate.test_comparator import fake_artifact, holdout, run_cli  # noqa: F401
from tests.gate.test_spill import close, scored, spill, spilled_case

CPU = torch.device("cpu")
ON = [CPU, *([torch.device("cuda")] if torch.cuda.is_available() else [])]
"""The devices the torch path is checked on: torch's CPU device, and CUDA where there is one."""
EXACT = ("accuracy", "precision", "recall", "f1", "auc")
"""Statistics whose sums are of integer-valued terms: equal bit for bit in any order."""
NO_CUDA = "no CUDA device here: the torch path is checked on torch's CPU device instead"


def deltas_agree(cpu: np.ndarray, other: np.ndarray) -> None:
    for j, name in enumerate(METRICS):
        if name in EXACT:
            assert np.array_equal(cpu[:, j], other[:, j]), name
        else:  # the metrics are in [0, 1] or near: an absolute bound
            np.testing.assert_allclose(other[:, j], cpu[:, j], rtol=0, atol=1e-12, err_msg=name)


class CountedDevice:
    """``resolve`` that sends every statistic to torch's CPU device and counts the calls of
    the device path, so a test knows the torch code ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.deltas = 0
        self.delong = 0
        deltas, parts = gate_device.device_deltas, gate_device.delong_parts

        def counted_deltas(*args: Any) -> np.ndarray:
            self.deltas += 1
            return deltas(*args)

        def counted_parts(*args: Any) -> Any:
            self.delong += 1
            return parts(*args)

        monkeypatch.setattr(gate_device, "resolve", lambda name: CPU)
        monkeypatch.setattr(gate_device, "device_deltas", counted_deltas)
        monkeypatch.setattr(gate_device, "delong_parts", counted_parts)


@pytest.mark.parametrize("device", ON, ids=str)
def test_the_tensor_weights_equal_the_counter_weights_bit_for_bit(device: torch.device) -> None:
    edges = np.array([0, 2**63, 2**64 - 1], dtype=np.uint64)
    keys = np.concatenate((resample_keys(11, 30), edges))
    rows = np.concatenate((np.arange(4099), [2**31 - 1, 2**40 + 3, 2**62 + 1])).astype(np.int64)
    want = kernels.reference_weights(keys, rows, POISSON_TABLE)
    on = gate_device._On(device, keys, POISSON_TABLE)
    got = on.weights(torch.from_numpy(rows).to(device)).cpu().numpy()
    assert got.dtype == np.float64 and np.array_equal(got, want.T)  # (rows, resamples)
    assert 0.99 < got.mean() < 1.01 and got.min() == 0  # Poisson(1): mean 1, zeros happen


@pytest.mark.parametrize("device", ON, ids=str)
@pytest.mark.parametrize("elements", [1 << 24, 5_000, 777])
def test_the_device_bootstrap_equals_the_cpu_kernels(
    elements: int, device: torch.device, monkeypatch: Any
) -> None:
    """Small chunks cut tie groups everywhere: the open group is carried to the next chunk."""
    monkeypatch.setattr(gate_device, "ELEMENTS", elements)
    y, sb, sc = scored(12_000, seed=2)  # ties within and across classes
    keys = resample_keys(5, 64)
    want = poisson_deltas(ArrayRows(y, sb, sc), keys, POISSON_TABLE, 0.5, 0.4)
    got = gate_device.device_deltas(
        ArrayRows(y, sb, sc, chunk=3001), keys, POISSON_TABLE, 0.5, 0.4, device
    )
    deltas_agree(want, got)


@pytest.mark.parametrize("device", ON, ids=str)
def test_the_device_bootstrap_reads_spilled_rows_as_the_cpu_kernels_do(
    tmp_path: Path, device: torch.device, monkeypatch: Any
) -> None:
    monkeypatch.setattr(gate_device, "ELEMENTS", 40 * 900)
    y, sb, sc = scored(9_000, seed=8)
    rows = spill(tmp_path, y, sb, sc, 1 << 17)  # sorted on disk, read in chunks
    keys = resample_keys(9, 40)
    want = poisson_deltas(ArrayRows(y, sb, sc), keys, POISSON_TABLE, 0.5, 0.5)
    deltas_agree(want, gate_device.device_deltas(rows, keys, POISSON_TABLE, 0.5, 0.5, device))


@pytest.mark.parametrize("device", ON, ids=str)
def test_a_single_tie_group_over_every_chunk(device: torch.device, monkeypatch: Any) -> None:
    """One tie group of 2,000 rows over chunks of 37: carried through 54 chunks."""
    monkeypatch.setattr(gate_device, "ELEMENTS", 16 * 37)
    y = np.tile(np.array([0, 1, 1, 0, 0], dtype=np.int8), 400)
    sb = np.full(y.size, 0.5)  # one score: the AUC is ½ in every resample
    sc = np.where(y == 1, 0.7, 0.2)
    keys = resample_keys(1, 16)
    want = poisson_deltas(ArrayRows(y, sb, sc), keys, POISSON_TABLE, 0.5, 0.5)
    got = gate_device.device_deltas(
        ArrayRows(y, sb, sc, chunk=37), keys, POISSON_TABLE, 0.5, 0.5, device
    )
    deltas_agree(want, got)
    assert np.allclose(got[:, METRICS.index("auc")], 0.5)  # the candidate separates perfectly


def test_the_device_placements_equal_delongs_on_the_cpu() -> None:
    y, sb, sc = scored(20_000, seed=4)
    is_pos = y == 1
    for s in (sb, sc):
        auc, v_pos, v_neg = _placements(s, is_pos)
        d_auc, d_pos, d_neg = gate_device.placements(s, is_pos, CPU)
        assert np.array_equal(v_pos, d_pos.numpy()) and np.array_equal(v_neg, d_neg.numpy())
        assert d_auc == pytest.approx(auc, rel=1e-14)
    want = delong_test(y, sb, sc)
    a_b, a_c, s = gate_device.delong_parts(y, sb, sc, CPU)
    assert (a_b, a_c) == pytest.approx((want.auc_baseline, want.auc_candidate), rel=1e-14)
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    assert np.sqrt(var) == pytest.approx(want.se, rel=1e-12)


def test_the_in_memory_bootstrap_takes_the_device_path(monkeypatch: Any) -> None:
    y, sb, sc = scored(8_000, seed=6)
    cpu = paired_bootstrap(y, sb, sc, n_bootstrap=50, random_state=4, scheme="poisson")
    counted = CountedDevice(monkeypatch)
    dev = paired_bootstrap(y, sb, sc, n_bootstrap=50, random_state=4, scheme="poisson", device=CPU)
    assert counted.deltas == 1  # the torch path ran, not the kernels again
    deltas_agree(
        np.column_stack([cpu.deltas[m] for m in METRICS]),
        np.column_stack([dev.deltas[m] for m in METRICS]),
    )


@pytest.mark.parametrize("shift", [0.0, 0.03, 0.25])
def test_the_comparator_decides_the_same_on_the_device(shift: float, monkeypatch: Any) -> None:
    """A tie, a small gain and a large one: the same decision, reasons and statistics."""
    y, sb, _ = scored(40_000, seed=3, ties=False)
    rng = np.random.default_rng(9)
    sc = 1 / (
        1 + np.exp(-(np.log(sb / (1 - sb)) + shift * (2 * y - 1) + rng.normal(0, 0.3, y.size)))
    )
    recent = np.arange(y.size) >= 25_000
    cpu = ModelComparator(n_bootstrap=300, random_state=2, guardrails={"f1": 0.02})
    want = cpu.compare_scores(y, sb, sc, recent=recent)
    counted = CountedDevice(monkeypatch)
    gate = ModelComparator(n_bootstrap=300, random_state=2, guardrails={"f1": 0.02}, device="auto")
    got = gate.compare_scores(y, sb, sc, recent=recent)
    assert counted.deltas == 2 and counted.delong == 2  # both populations, on the device
    assert (got.decision, got.reasons) == (want.decision, want.reasons)
    a, b = got.to_dict(), want.to_dict()
    for d in (a, b):
        d.pop("created_at")
    close(a, b)
    assert shift != 0.25 or want.decision == "PROMOTE"


def test_a_spilled_comparison_decides_the_same_on_the_device(
    tmp_path: Path, monkeypatch: Any
) -> None:
    y, sb, sc, recent, batches, holdout = spilled_case(tmp_path)
    want = ModelComparator(n_bootstrap=200, random_state=3).compare_scores(
        y, sb, sc, recent=recent, batches=batches, earlier=[frozenset({"b1"})]
    )
    counted = CountedDevice(monkeypatch)
    got = compare_spilled(
        ModelComparator(n_bootstrap=200, random_state=3, device="cuda"),
        holdout,
        baseline_info=ModelInfo(decision_threshold=0.5),
        candidate_info=ModelInfo(decision_threshold=0.5),
        earlier=[frozenset({"b1"})],
    )
    assert counted.deltas == 2  # the spilled DeLong stays in its streaming passes
    assert (got.decision, got.reasons) == (want.decision, want.reasons)
    a, b = got.to_dict(), want.to_dict()
    for d in (a, b):
        d.pop("created_at")
    close(a, b)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_a_gpu_is_a_one_line_error_when_comparing() -> None:
    """The parameters are checked anywhere (a CPU host may inspect a model configured for
    CUDA); the comparison itself says CUDA is missing, in one line, before any statistic."""
    base = {"model_name": "demo", **BUILTIN_DEFAULTS}
    assert check_parameters(base).comparator_params()["device"] == "auto"
    assert check_parameters({**base, "device": "cuda"}).comparator_params()["device"] == "cuda"
    y, sb, sc = scored(3_000, seed=1)
    with pytest.raises(ComparisonInputError, match="CUDA is not available"):
        ModelComparator(device="cuda").compare_scores(y, sb, sc)
    result = ModelComparator(device="auto").compare_scores(y, sb, sc)  # auto: the CPU kernels
    assert result.device == "cpu" and result.population.bootstrap["device"] == "cpu"


@pytest.mark.usefixtures("fake_artifact")
def test_retrain_compare_takes_the_device(tmp_path: Path, monkeypatch: Any) -> None:
    args = ("--baseline", "m/score_b", "--new", "m/score_c", "--seed", "3")
    df = holdout(24, 3000, 1.0, 1.3)
    for name in ("cpu", "dev", "bad"):
        (tmp_path / name).mkdir()
    cpu_code, cpu_out = run_cli(tmp_path / "cpu", df, *args, "--device", "cpu")
    counted = CountedDevice(monkeypatch)
    dev_code, dev_out = run_cli(tmp_path / "dev", df, *args, "--device", "auto")
    assert counted.deltas == 1 and dev_code == cpu_code
    got, want = (json.loads(p.read_text()) for p in (dev_out, cpu_out))
    for d in (got, want):
        d.pop("created_at")
    close(got, want)
    with pytest.raises(SystemExit):  # argparse: a device it does not know
        run_cli(tmp_path / "bad", df, *args, "--device", "tpu")


def test_a_device_the_gate_does_not_know_is_refused() -> None:
    with pytest.raises(ComparisonInputError, match="device"):
        ModelComparator(device="tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cuda_statistics_equal_the_cpu_kernels() -> None:  # pragma: no cover - needs a GPU
    cuda = torch.device("cuda")
    y, sb, sc = scored(200_000, seed=12)
    keys = resample_keys(3, 256)
    want = poisson_deltas(ArrayRows(y, sb, sc), keys, POISSON_TABLE, 0.5, 0.5)
    deltas_agree(
        want, gate_device.device_deltas(ArrayRows(y, sb, sc), keys, POISSON_TABLE, 0.5, 0.5, cuda)
    )
    ref = delong_test(y, sb, sc)
    a_b, a_c, s = gate_device.delong_parts(y, sb, sc, cuda)
    assert (a_b, a_c) == pytest.approx((ref.auc_baseline, ref.auc_candidate), rel=1e-13)
    assert np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1]) == pytest.approx(ref.se, rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_the_comparator_on_cuda_decides_as_on_the_cpu() -> None:  # pragma: no cover - GPU
    y, sb, sc = scored(100_000, seed=13, ties=False)
    want = ModelComparator(n_bootstrap=500, random_state=1).compare_scores(y, sb, sc)
    got = ModelComparator(n_bootstrap=500, random_state=1, device="cuda").compare_scores(y, sb, sc)
    assert got.device == "cuda" and want.device == "cpu"
    assert (got.decision, got.reasons) == (want.decision, want.reasons)
    a, b = got.to_dict(), want.to_dict()
    for d in (a, b):
        d.pop("created_at")
        d.pop("device")
        for pop in d["populations"].values():
            pop["bootstrap"].pop("device")
    close(a, b)

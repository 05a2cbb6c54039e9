"""The ``sweep`` setting in retraining.toml and as a flow parameter: one-line errors that name
the key inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.cycle.models_config import BUILTIN_DEFAULTS, load_models_config
from model.cycle.params import check_parameters
from model.errors import ModelConfigError, ParameterError


def test_sweep_table_in_the_configuration(tmp_path: Path) -> None:
    file = tmp_path / "retraining.toml"
    file.write_text(
        "[models.demo.sweep]\nhidden_sizes = [[64, 32], [128, 64]]\n"
        'learning_rate = [0.01, 0.003]\nsearch = "grid"\n'
    )
    spec = load_models_config(file).table("demo")["sweep"]
    assert spec.grid_size() == 4 and spec.max_candidates == 4

    file.write_text("[models.demo.sweep]\nlearning_rate = [0.01, -1.0]\n")
    with pytest.raises(ModelConfigError) as bad:
        load_models_config(file)
    assert str(bad.value) == (
        f"{file}: [models.demo] sweep.learning_rate.1: Input should be greater than 0 (got -1.0)"
    )
    file.write_text("[models.demo.sweep]\nlearning_rate = [0.1, 0.2]\nmax_candidates = 1\n")
    with pytest.raises(ModelConfigError, match=r"sweep: the grid has 2 combinations"):
        load_models_config(file)


def test_sweep_parameter_errors() -> None:
    base = {"model_name": "demo", **BUILTIN_DEFAULTS}
    assert check_parameters(base).sweep is None
    with pytest.raises(ParameterError) as bad:
        check_parameters({**base, "sweep": {"dropout": [1.5]}})
    assert str(bad.value) == ("parameter sweep.dropout.0: Input should be less than 1 (got 1.5)")
    with pytest.raises(ParameterError, match=r"^parameter sweep.search: Input should be"):
        check_parameters({**base, "sweep": {"dropout": [0.1], "search": "bayes"}})

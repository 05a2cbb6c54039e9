"""The per-model configuration (issue 13): loader errors, precedence, the model-name rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import REPO_ROOT

from model.cycle.config import RetrainingConfig
from model.cycle.models_config import (
    BUILTIN_DEFAULTS,
    CONFIG_ENV,
    SOURCE_BUILTIN,
    SOURCE_PARAMETER,
    configurable_keys,
    effective_parameters,
    load_models_config,
    resolve_run,
)
from model.errors import ModelConfigError, ModelNameError, ParameterError, RetrainError
from model.settings import Settings, check_model_name


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "retraining.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[models.demo]\nnum_epoch = 3\n", r"\[models\.demo\] num_epoch: unknown key; known: "),
        (
            "[models.demo]\nnum_epochs = 'ten'\n",
            r"\[models\.demo\] num_epochs: 'ten' is not accepted; accepted: an integer from 1",
        ),
        (
            "[models.demo]\nnum_epochs = true\n",
            r"\[models\.demo\] num_epochs: True is not accepted",
        ),
        (
            "[models.demo]\nhidden_sizes = [64, 0]\n",
            r"\[models\.demo\] hidden_sizes: \[64, 0\] is not accepted; accepted: a list",
        ),
        (
            "[models.demo]\ndevice = 'tpu'\n",
            r"\[models\.demo\] device: 'tpu' is not accepted; accepted: one of 'auto'",
        ),
        (
            "[models.demo]\nforce_retrain = true\n",
            r"\[models\.demo\] force_retrain: is set per run, not in the configuration",
        ),
        (
            "[models.demo]\ndata_engine = 'spark'\n",
            r"\[models\.demo\] data_engine: 'spark' is not accepted; accepted: one of 'local'",
        ),
        ("[models.Churn_1]\n", r"table \[models\.Churn_1\]: model name 'Churn_1' is not accepted"),
        ("[models]\ndemo = 3\n", r"\[models\.demo\] must be a table"),
        ("[model.demo]\n", r"unknown top-level key 'model'"),
        ("[models.demo\n", r"not valid TOML"),
    ],
)
def test_each_loader_error_names_file_table_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ModelConfigError, match=expected) as info:
        load_models_config(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_unknown_model_lists_the_known_ones(tmp_path: Path) -> None:
    config = load_models_config(_write(tmp_path, "[models.demo]\n[models.churn]\n"))
    with pytest.raises(
        ModelConfigError, match=r"no table \[models\.fraud\]; known models: churn, demo"
    ):
        effective_parameters({"num_epochs": None}, "fraud", config=config)


def test_env_names_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(ModelConfigError, match=rf"^{CONFIG_ENV}=.*nope.toml: no such file$"):
        load_models_config()


def test_allowed_keys_are_the_config_fields() -> None:
    """Derived from RetrainingConfig: a field added there is configurable with no other edit."""
    fields = set(RetrainingConfig.model_fields)
    assert set(configurable_keys()) == fields - {"model_name", "force_retrain", "drift_report_path"}
    # every built-in default is a valid value of its field
    values = {k: BUILTIN_DEFAULTS.get(k) for k in fields if k != "model_name"}
    RetrainingConfig(model_name="demo", **values)


def test_precedence_parameter_then_configuration_then_default(tmp_path: Path) -> None:
    config = load_models_config(
        _write(tmp_path, "[models.demo]\nnum_epochs = 7\nbatch_size = 64\ndata_path = 'd.csv'\n")
    )
    explicit = {"num_epochs": 3, "batch_size": None, "dropout": None, "data_path": None}
    values, sources = effective_parameters(explicit, "demo", config=config, root=tmp_path)
    assert values == {
        "num_epochs": 3,  # the parameter wins
        "batch_size": 64,  # from the table
        "dropout": 0.2,  # built-in
        "data_path": str(tmp_path / "d.csv"),  # a relative path from the table: under the root
    }
    assert sources["num_epochs"] == SOURCE_PARAMETER
    assert sources["batch_size"] == f"{config.path} [models.demo]"
    assert sources["dropout"] == SOURCE_BUILTIN


def test_resolve_run_reads_the_model_table(tmp_path: Path, settings: Settings) -> None:
    config = load_models_config(
        _write(tmp_path, "[models.demo]\nid_column = 'key'\nmin_auc = 0.7\nrule = 'lab'\n")
    )
    cfg, sources = resolve_run({"rule": "threshold"}, settings, config=config)
    assert (cfg.model_name, cfg.id_column, cfg.min_auc, cfg.rule) == (
        "demo",
        "key",
        0.7,
        "threshold",
    )
    assert cfg.hidden_sizes == [64, 32] and cfg.target_column == "target"
    assert sources["model_name"] == "RETRAIN_MODEL_NAME"
    with pytest.raises(ParameterError, match=r"^unknown parameter 'bogus'"):
        resolve_run({"bogus": 1}, settings, config=config)
    with pytest.raises(ParameterError, match=r"^parameter num_epochs: 0 is not accepted"):
        resolve_run({"num_epochs": 0}, settings, config=config)


def test_a_run_for_another_model_takes_its_table_and_its_source_is_named(
    tmp_path: Path, settings: Settings
) -> None:
    """One working root holds every configured model: a run for another model takes that
    model's table, and says where its name came from."""
    text = "[models.demo]\nnum_epochs = 7\n[models.churn]\nnum_epochs = 9\n"
    config = load_models_config(_write(tmp_path, text))
    cfg, sources = resolve_run({"model_name": "churn"}, settings, config=config)
    assert (cfg.model_name, cfg.num_epochs, sources["model_name"]) == ("churn", 9, "parameter")
    cfg, sources = resolve_run({}, settings, config=config)  # RETRAIN_MODEL_NAME=demo
    assert (cfg.model_name, cfg.num_epochs, sources["model_name"]) == (
        "demo",
        7,
        "RETRAIN_MODEL_NAME",
    )


@pytest.mark.parametrize("name", ["demo", "churn-2", "a", "x" * 63, "0"])
def test_model_name_rule_accepts(name: str) -> None:
    assert check_model_name(name, "test") == name


@pytest.mark.parametrize("name", ["", "Demo", "churn_2", "a.b", "x" * 64, "é", "a b", None, 3])
def test_model_name_rule_refuses(name: object) -> None:
    with pytest.raises(ModelNameError, match=r"^flow parameter model_name: model name .* is not"):
        check_model_name(name, "flow parameter model_name")


def test_model_name_rule_in_settings_and_flow_parameter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.settings import get_settings

    monkeypatch.setenv("RETRAIN_MODEL_NAME", "Churn.v2")
    with pytest.raises(RetrainError, match=r"^RETRAIN_MODEL_NAME: .*a-z, 0-9 and '-'"):
        get_settings()
    with pytest.raises(ModelNameError, match="flow parameter model_name: model name 'Churn'"):
        resolve_run({"model_name": "Churn"}, settings)


def test_the_shipped_file_is_valid_and_has_the_demo() -> None:
    config = load_models_config(REPO_ROOT / "retraining.toml")
    demo = config.table("demo")
    assert "data_path" not in demo and "incoming_path" not in demo  # the model's own folders
    assert (demo["target_column"], demo["id_column"]) == ("target", "id")


def test_the_demo_declares_its_coded_columns_categorical() -> None:
    """Once `categorical_columns` is a RetrainingConfig field (issue 13's data part), the demo
    entry must declare region, category_preference and is_premium categorical: uncomment the
    line in retraining.toml."""
    if "categorical_columns" not in RetrainingConfig.model_fields:
        pytest.skip("categorical_columns is not a flow parameter on this branch yet")
    demo = load_models_config(REPO_ROOT / "retraining.toml").table("demo")
    assert sorted(demo.get("categorical_columns", [])) == [
        "category_preference",
        "is_premium",
        "region",
    ]

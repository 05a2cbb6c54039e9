"""The policies a backtest compares: baselines, --set variants and their checks."""

from __future__ import annotations

import pytest

from model.backtest.policies import (
    ALWAYS_PARAMETERS,
    Policy,
    build_policies,
    check_policies,
    parse_variant,
)
from model.errors import ParameterError
from model.settings import Settings


def test_baselines_then_variants_in_order() -> None:
    policies = build_policies(
        ["configured", "never", "always"],
        ["improvement_threshold=0.01", "min_drifted_features=2 hidden_sizes=[32,16]"],
    )
    assert [p.name for p in policies] == [
        "configured",
        "never retrain",
        "retrain always",
        "improvement_threshold=0.01",
        "min_drifted_features=2 hidden_sizes=[32,16]",
    ]
    assert [p.slug for p in policies] == ["configured", "never", "always", "set-1", "set-2"]
    configured, never, always, first, second = policies
    assert configured.retrains and configured.live and not configured.always_promote
    assert not never.retrains and not never.live
    assert always.retrains and always.always_promote and not always.live
    assert always.cycle_parameters() == ALWAYS_PARAMETERS
    assert first.cycle_parameters() == {"improvement_threshold": 0.01} and first.live
    assert second.overrides == {"min_drifted_features": 2, "hidden_sizes": [32, 16]}
    assert Policy.from_dict(second.to_dict()) == second


def test_a_value_that_is_not_json_stays_text() -> None:
    assert parse_variant("guardrail_mode=harm rule=lab") == {
        "guardrail_mode": "harm",
        "rule": "lab",
    }


@pytest.mark.parametrize(
    ("baselines", "variants", "message"),
    [
        (["sometimes"], [], "policy 'sometimes': the baselines are configured, never, always"),
        ([], ["improvement_threshold"], "expected KEY=VALUE"),
        ([], ["data_path=x.parquet"], "--set data_path: set by the backtest itself"),
        ([], ["force_retrain=true"], "--set force_retrain: set by the backtest itself"),
        ([], ["seed=1 seed=2"], "seed is given twice"),
        ([], ["seed=1", "seed=1"], "the same variant as --set 'seed=1'"),
        ([], [], "no policy to replay"),
    ],
)
def test_bad_policies_are_one_line(baselines: list[str], variants: list[str], message: str) -> None:
    with pytest.raises(ParameterError) as info:
        build_policies(baselines, variants)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_variant_values_are_checked_as_the_flow_checks_them(settings: Settings) -> None:
    data = {"data_path": "-", "incoming_path": "-"}
    good = build_policies(["configured", "never", "always"], ["improvement_threshold=0.02"])
    check_policies(good, "demo", settings, data)  # nothing raised
    for text, what in (
        ("improvement_threshold=2", "improvement_threshold"),
        ("num_epochs=0", "num_epochs"),
        ("no_such_parameter=1", "no_such_parameter"),
    ):
        with pytest.raises(ParameterError) as info:
            check_policies(build_policies([], [text]), "demo", settings, data)
        message = str(info.value)
        assert message.startswith(f"--set {text.split('=')[0]}=") and what in message, message

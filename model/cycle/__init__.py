"""One retraining cycle, without Prefect: configuration, data sources, trigger state and decision.

Owns ``config`` (``RetrainingConfig``, the flat flow parameters validated in one object;
``select_sources``), ``state`` (``gather_trigger_state``, which reads the registry, the batches
and drift),
``params`` (``check_parameters``: every flow parameter checked before any work),
``models_config`` (``retraining.toml``, one table per model: loading and checking it, the model
name's checks, and each parameter's effective value: explicit > configuration > built-in),
``triggers`` (``evaluate_triggers``: which trigger fires, with every check listed),
``monitor`` (drift of the production model's data: the registry gives the reference and the
model; ``monitor_drift``, ``drift_for_trigger``; ``streaming``: past the memory budget, that
data streamed), ``estimate`` (production's label-free
performance estimate on new data, CBPE calibrated on its validation split), ``naming`` (run
names that say how a run ended), ``locks`` (the promotion lock and the cycle lock,
OS locks the kernel frees when their holder dies) and ``recovery`` (what a dead cycle left: its
candidate's ``failed`` outcome, its scratch folder). This is the layer where the capability
packages meet: it may import data, training, gate, registry, drift, serving and live; only the flows
(through ``tasks/``) and the CLI import it.
"""

from model.cycle.config import (
    DataSources,
    RetrainingConfig,
    RetrainingResult,
    auc_or_none,
    list_batches,
    parse_time,
    select_sources,
    utcnow,
)
from model.cycle.state import gather_trigger_state, parquet_rows

__all__ = [
    "DataSources",
    "RetrainingConfig",
    "RetrainingResult",
    "auc_or_none",
    "gather_trigger_state",
    "list_batches",
    "parquet_rows",
    "parse_time",
    "select_sources",
    "utcnow",
]

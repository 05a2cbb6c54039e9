"""Data drift between a reference (the production model's training data) and new batches.

Owns the per-column drift tests, the dataset decision and the drift reports:

- :mod:`~model.drift.numeric`: per numeric column, the two-sample Kolmogorov–Smirnov test,
  PSI over quantile bins of the reference and the Wasserstein-1 distance divided by the
  reference's standard deviation.
- :mod:`~model.drift.categorical`: per categorical column, the chi-square test over the
  levels, PSI and the Jensen–Shannon distance (base 2, in [0, 1]); levels unseen in the
  reference are counted.
- :mod:`~model.drift.results`: :class:`DriftSettings`, :class:`FeatureDrift`,
  :class:`DriftReport`.
- :mod:`~model.drift.detect`: :func:`detect_drift` (input checks, spec inference, the
  corrected p-values and the dataset decision).
- :mod:`~model.drift.render` (Markdown, HTML, table rows) and :mod:`~model.drift.files`
  (incoming batches, report files written and read back, the trigger summary).
- :mod:`~model.drift.cbpe`: the label-free performance estimate (CBPE: calibration on
  production's validation split, expected confusion counts and AUC on a batch, its interval)
  and :mod:`~model.drift.cbpe_render` (its report section).
- :mod:`model.external` (a numeric column sorted on disk by an external merge sort),
  :mod:`~model.drift.sources` (Parquet sources checked, profiled and read in batches) and
  :mod:`~model.drift.stream` (the drift report of such sources, in bounded memory, with the
  in-memory path's numbers).

Drift rule (configurable in :class:`DriftSettings`): a feature drifts when its p-value,
Holm-corrected over the features of the report, is below ``alpha`` AND its effect size is
material (``psi >= psi_threshold`` or ``distance >= distance_threshold``). The test controls
false alarms on small batches; the effect-size floor stops huge samples from flagging
trivial shifts. The data set drifts when the share of drifted features reaches
``dataset_drift_threshold``, or when at least ``min_drifted_features`` features drifted
(None: off; Holm keeps ``min_drifted_features=1`` at or below ``alpha`` false alarms); the
report's ``drift_share`` is the measured share. A feature missing from the current data, or
holding only missing values there, is a schema change: drifted, without a test.

May import: ``model.errors``, ``model.settings``, ``model.data``. Drift of the production
model's data (reading the registry, loading the model) is :mod:`model.cycle.monitor`.
"""

from model.drift.categorical import categorical_drift
from model.drift.detect import Scorer, detect_drift, spec_for_reference
from model.drift.files import (
    drift_from_report_file,
    newest_batches,
    read_drift_report,
    read_frame,
    report_folder,
    summary_of,
    write_reports,
)
from model.drift.numeric import PSI_EPS, numeric_drift
from model.drift.render import table_rows, to_html, to_markdown
from model.drift.results import FORMAT_VERSION, DriftReport, DriftSettings, FeatureDrift

__all__ = [
    "FORMAT_VERSION",
    "PSI_EPS",
    "DriftReport",
    "DriftSettings",
    "FeatureDrift",
    "Scorer",
    "categorical_drift",
    "detect_drift",
    "drift_from_report_file",
    "newest_batches",
    "numeric_drift",
    "read_drift_report",
    "read_frame",
    "report_folder",
    "spec_for_reference",
    "summary_of",
    "table_rows",
    "to_html",
    "to_markdown",
    "write_reports",
]

"""The policies a backtest compares, side by side on the same batches.

- ``configured``: the model's own policy (its table in ``retraining.toml``, else the built-in
  defaults): triggers, the gate, and where labels exist the live challenger and the watch.
- ``never``: the first production model serves every batch; no cycle ever runs.
- ``always``: every batch retrains (``force_retrain``) and the candidate is promoted whatever
  the gate said (a forced promotion); no live evaluation.
- a variant per ``--set``: the configured policy with some parameters changed
  (``improvement_threshold=0.01 min_drifted_features=2``), each checked as the flow checks it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model.data.messages import quote
from model.errors import ParameterError

CONFIGURED, NEVER, ALWAYS, VARIANT = "configured", "never", "always", "variant"
BASELINES = (CONFIGURED, NEVER, ALWAYS)
LABELS = {CONFIGURED: "configured", NEVER: "never retrain", ALWAYS: "retrain always"}
NOT_SETTABLE = frozenset(
    {"model_name", "force_retrain", "drift_report_path", "data_path", "incoming_path"}
)
"""Flow parameters a variant may not set: the backtest sets the data and each run's trigger."""
ALWAYS_PARAMETERS: dict[str, Any] = {"force_retrain": True, "inconclusive_challenger": False}


@dataclass(frozen=True)
class Policy:
    """One policy: what each batch's cycle is called with, and what runs around it."""

    name: str  # shown in the report: "configured", "never retrain", "improvement_threshold=0.01"
    kind: str  # CONFIGURED, NEVER, ALWAYS or VARIANT
    slug: str  # folder and sandbox name: configured, never, always, set-1, ...
    overrides: dict[str, Any] = field(default_factory=dict)  # flow parameters it changes

    @property
    def retrains(self) -> bool:
        """Whether batches run a retraining cycle at all."""
        return self.kind != NEVER

    @property
    def always_promote(self) -> bool:
        """Whether a candidate the gate did not promote is promoted anyway (forced)."""
        return self.kind == ALWAYS

    @property
    def live(self) -> bool:
        """Whether the live challenger evaluation and the post-promotion watch run."""
        return self.kind in (CONFIGURED, VARIANT)

    def cycle_parameters(self) -> dict[str, Any]:
        """The retraining flow's parameters beyond the data: the policy's changes."""
        if self.kind == ALWAYS:
            return {**ALWAYS_PARAMETERS, **self.overrides}
        return dict(self.overrides)

    def describe(self) -> str:
        if self.kind == CONFIGURED:
            return "the model's configured triggers and gate, live challenger and watch"
        if self.kind == NEVER:
            return "the first production model serves every batch"
        if self.kind == ALWAYS:
            return "every batch retrains; every candidate is promoted (the gate is overruled)"
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.overrides.items())
        return f"the configured policy with {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "slug": self.slug,
            "overrides": dict(self.overrides),
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        return cls(data["name"], data["kind"], data["slug"], dict(data.get("overrides") or {}))


def parse_variant(text: str) -> dict[str, Any]:
    """``"key=value key2=value2"`` (a value is read as JSON when it can be) as parameters."""
    items = text.split()
    if not items:
        raise ParameterError("--set: give KEY=VALUE, e.g. --set improvement_threshold=0.01")
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise ParameterError(
                f"--set {quote(item)}: expected KEY=VALUE, e.g. --set improvement_threshold=0.01"
            )
        if key in NOT_SETTABLE:
            raise ParameterError(
                f"--set {key}: set by the backtest itself (its data, and each batch's run); "
                "not a policy parameter"
            )
        if key in out:
            raise ParameterError(f"--set {quote(text)}: {key} is given twice")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def build_policies(baselines: Iterable[str], variants: Sequence[str]) -> list[Policy]:
    """The policies in report order: the chosen baselines, then one variant per ``--set``."""
    chosen = list(dict.fromkeys(baselines))
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise ParameterError(
            f"policy {quote(unknown[0])}: the baselines are {', '.join(BASELINES)} (variants: "
            "--set KEY=VALUE)"
        )
    policies = [Policy(LABELS[b], b, b) for b in BASELINES if b in chosen]
    seen: dict[str, str] = {}
    for number, text in enumerate(variants, start=1):
        overrides = parse_variant(text)
        name = " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in overrides.items())
        if name in seen:
            raise ParameterError(f"--set {quote(text)}: the same variant as --set {seen[name]}")
        seen[name] = quote(text)
        policies.append(Policy(name, VARIANT, f"set-{number}", overrides))
    if not policies:
        raise ParameterError("no policy to replay: choose a baseline or give a --set variant")
    return policies


def check_policies(
    policies: Sequence[Policy], model_name: str, settings: Any, data: Mapping[str, str]
) -> None:
    """Check every policy's cycle parameters as the retraining flow will (the model's table
    and the built-in defaults under them) before any work: a ParameterError naming the
    policy and the parameter."""
    from model.cycle.models_config import resolve_run
    from model.errors import RetrainError

    for policy in policies:
        if not policy.retrains:
            continue
        explicit = {"model_name": model_name, **data, **policy.cycle_parameters()}
        try:
            resolve_run(explicit, settings)
        except RetrainError as exc:
            if policy.kind != VARIANT:
                raise
            raise ParameterError(f"--set {policy.name}: {exc}") from None

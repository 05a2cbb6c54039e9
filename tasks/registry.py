"""Prefect tasks over the model registry: register, promote, record. Retries on IO only.

Registering and promoting give the registry a verifier that loads the model with torch
``weights_only=True`` (:func:`model.serving.loading.verify_loads`): a folder that does not
load never becomes a version or production. Registry warnings (a switch that committed
but whose record could not be written) go to the run's log as warnings.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from model.errors import RegistryWarning
from model.live.challenger import INCONCLUSIVE_SOURCE, clear_stale
from model.registry import AlreadyProductionError, ModelRegistry
from model.serving.loading import verify_loads
from model.settings import get_settings
from tasks._io import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_bad_input

#: Decision names as the comparator spells them -> history event names.
_EVENT_ALIASES = {"reject": "rejected", "inconclusive": "inconclusive", "compare": "compared"}


def _registry(registry: str | None, verify: bool = False) -> ModelRegistry:
    root = Path(registry) if registry else get_settings().models_dir
    return ModelRegistry(root, verify=verify_loads if verify else None)


@contextlib.contextmanager
def _warnings_logged() -> Iterator[None]:
    """Log each registry warning raised inside as a warning of the run."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RegistryWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, RegistryWarning):
                    get_run_logger().warning("%s", w.message)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


@task(
    name="register_model",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def register_model(
    model_dir: str,
    reason: Any = None,
    run_id: str | None = None,
    extra: dict[str, Any] | None = None,
    registry: str | None = None,
) -> str:
    """Copy a trained model folder into the registry as a new version; return the version.
    The folder must load (torch ``weights_only=True``) as well as match its checksum."""
    reg = _registry(registry, verify=True)
    with _warnings_logged():
        version = reg.register(model_dir, reason=reason, run_id=run_id, extra=extra)
    get_run_logger().info("Registered %s from %s in %s", version, model_dir, reg.root)
    return version


@task(
    name="promote_model",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def promote_model(
    version: str,
    reason: str,
    comparison: dict[str, Any] | None = None,
    run_id: str | None = None,
    force: bool = False,
    registry: str | None = None,
) -> dict[str, Any]:
    """Swap production to ``version`` atomically; return the new production info.

    A retry after an attempt that did commit (same run id) is not an error.
    """
    logger = get_run_logger()
    reg = _registry(registry, verify=True)
    before = reg.production()
    try:
        with _warnings_logged():
            reg.promote(version, reason, force=force, run_id=run_id, comparison=comparison)
    except AlreadyProductionError:
        last = reg.last_event(("promoted", "forced"), version=version)
        if run_id is None or last is None or last.get("run_id") != run_id:
            raise
        logger.info("%s was already promoted by this run (retry)", version)
    prod = reg.production()
    assert prod is not None
    logger.info(
        "Production is now %s (was %s): %s",
        prod.version,
        before.version if before else "none",
        reason,
    )
    return {
        "version": prod.version,
        "sha256": prod.sha256,
        "promoted_at": prod.promoted_at,
        "previous": before.version if before else None,
        "path": str(prod.path),
    }


@task(
    name="record_event",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def record_event(event: str, registry: str | None = None, **fields: Any) -> dict[str, Any]:
    """Append a compared/rejected/inconclusive/skipped/failed event to the registry history.

    Comparator decisions are accepted as they are spelled (``REJECT`` -> ``rejected``).
    """
    name = event.lower()
    name = _EVENT_ALIASES.get(name, name)
    ev = _registry(registry).record(name, **fields)
    get_run_logger().info("Recorded %s %s", name, fields.get("version") or "")
    return ev


@task(
    name="set_shadow_challenger",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def set_shadow_challenger(
    version: str, reason: str, run_id: str | None = None, registry: str | None = None
) -> dict[str, Any]:
    """Make ``version`` the shadow challenger (0 % traffic: scored beside production on every
    row, judged on live labels by ``challenger-evaluation``). It replaces an older challenger
    the flow set (the history's ``challenger`` event names it), never one a person set or one
    that serves traffic: that one is kept, and the result says why."""
    reg = _registry(registry, verify=True)
    before = reg.challenger()
    if before is not None and before.version != version:
        by_flow = reg.challenger_source() == INCONCLUSIVE_SOURCE
        if before.traffic > 0 or not by_flow:
            why = (
                f"kept the challenger {before.version} "
                + ("that serves traffic" if before.traffic > 0 else "set by hand")
                + f": {version} is not evaluated live"
            )
            get_run_logger().info("%s", why)
            return {"version": None, "kept": before.version, "reason": why}
    info = reg.set_challenger(
        version, 0.0, reason=reason, run_id=run_id, source=INCONCLUSIVE_SOURCE
    )
    replaced = before.version if before is not None and before.version != version else None
    get_run_logger().info(
        "%s is now the shadow challenger%s: it will be decided on live labels",
        version,
        f" (replacing {replaced})" if replaced else "",
    )
    return {"version": info.version, "traffic": info.traffic, "replaces": replaced}


@task(
    name="clear_stale_challenger",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def clear_stale_challenger(reason: str, run_id: str | None = None) -> str | None:
    """After production changed: clear a challenger the flow set (it was INCONCLUSIVE against
    the production that is gone); a challenger a person set stays. Returns the one cleared."""
    cleared = clear_stale(_registry(None), reason, run_id)
    if cleared:
        get_run_logger().info("Cleared the challenger %s: %s", cleared, reason)
    return cleared

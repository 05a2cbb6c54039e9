"""Which challenger an INCONCLUSIVE candidate replaces (issue 23's review): an older one the
flow set, never one a person set or one that serves traffic; and one the flow set goes when
production changes. The task bodies, without a server (``task.fn`` with the run logger off)."""

from __future__ import annotations

from pathlib import Path

from prefect.logging import disable_run_logger
from serving_models import build_registry

from model.registry import ModelRegistry
from model.settings import Settings
from tasks.registry import clear_stale_challenger, set_shadow_challenger


def _registry(settings: Settings, tmp_path: Path, n: int = 4) -> ModelRegistry:
    """Real (tiny) models: the task verifies that a challenger loads."""
    reg = build_registry(settings.root, versions=n)
    assert reg.root == settings.models_dir
    return reg


def test_a_newer_inconclusive_candidate_replaces_only_what_the_flow_set(
    settings: Settings, tmp_path: Path
) -> None:
    reg = _registry(settings, tmp_path)
    with disable_run_logger():
        first = set_shadow_challenger.fn("v0002", "INCONCLUSIVE")
        assert first == {"version": "v0002", "traffic": 0.0, "replaces": None}
        second = set_shadow_challenger.fn("v0003", "INCONCLUSIVE")
        assert second["version"] == "v0003" and second["replaces"] == "v0002"
        set_events = [e for e in reg.history() if e["event"] == "challenger"]
        assert [(e["version"], e.get("replaces"), e["source"]) for e in set_events] == [
            ("v0002", None, "inconclusive"),
            ("v0003", "v0002", "inconclusive"),
        ]
        reg.set_challenger("v0002", 10, reason="A/B test by hand")  # a person's, with traffic
        kept = set_shadow_challenger.fn("v0004", "INCONCLUSIVE")
        assert kept["version"] is None and kept["kept"] == "v0002"
        assert "serves traffic" in kept["reason"]
        chal = reg.challenger()
        assert chal is not None and chal.version == "v0002" and chal.traffic == 10
        reg.set_challenger("v0002", 0, reason="shadow, by hand")
        assert set_shadow_challenger.fn("v0004", "INCONCLUSIVE")["kept"] == "v0002"
        # a person's challenger survives a production change; the flow's does not
        assert clear_stale_challenger.fn("production changed") is None
        reg.clear_challenger(reason="t")
        set_shadow_challenger.fn("v0004", "INCONCLUSIVE")
        reg.promote("v0003", "offline", force=True)
        assert clear_stale_challenger.fn("production changed to v0003") == "v0004"
        assert reg.challenger() is None

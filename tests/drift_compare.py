"""Comparing two drift reports made by different readers of the same data."""

from __future__ import annotations

import pytest


def assert_same_report(
    a: dict, b: dict, path: str = "", rel: float = 1e-12, tol: float = 1e-15
) -> None:
    """Equal reports: every number to ``rel`` relative or ``tol`` absolute (W1 and the
    moments are sums; the per-column tests hold the rest to the bit), everything else
    exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            if key != "created_at":
                assert_same_report(a[key], b[key], f"{path}.{key}", rel, tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_report(x, y, f"{path}[{i}]", rel, tol)
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=rel, abs=tol, nan_ok=True), path
    else:
        assert a == b, path

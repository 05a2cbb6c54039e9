"""Prometheus text-format metrics of the scoring service (counters and one histogram, kept
by hand: a dictionary increment on the hot path, the text built only when scraped)."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Upper bounds (seconds) of the request latency histogram."""


@dataclass
class Metrics:
    """What ``GET /metrics`` reports; the log and reload figures are read at scrape time."""

    requests: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    errors: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def observe(self, status: int, seconds: float, rows: int) -> None:
        self.requests[str(status)] += 1
        self.rows += rows
        if status >= 400:
            self.errors += 1
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def render(self, gauges: Mapping[str, tuple[str, str, float]]) -> str:
        """The exposition text; ``gauges``: name -> (type, help, value) read at scrape time."""
        lines = [
            "# HELP retrain_serve_requests_total Requests to /predict by HTTP status.",
            "# TYPE retrain_serve_requests_total counter",
        ]
        for status, count in sorted(self.requests.items()):
            lines.append(f'retrain_serve_requests_total{{status="{status}"}} {count}')
        lines += [
            "# HELP retrain_serve_rows_total Rows scored.",
            "# TYPE retrain_serve_rows_total counter",
            f"retrain_serve_rows_total {self.rows}",
            "# HELP retrain_serve_errors_total Requests refused or failed (status >= 400).",
            "# TYPE retrain_serve_errors_total counter",
            f"retrain_serve_errors_total {self.errors}",
            "# HELP retrain_serve_request_seconds Latency of /predict.",
            "# TYPE retrain_serve_request_seconds histogram",
        ]
        total = 0
        for bound, count in zip(LATENCY_BUCKETS, self.latency_counts, strict=False):
            total += count
            lines.append(f'retrain_serve_request_seconds_bucket{{le="{bound}"}} {total}')
        total += self.latency_counts[-1]
        lines.append(f'retrain_serve_request_seconds_bucket{{le="+Inf"}} {total}')
        lines.append(f"retrain_serve_request_seconds_sum {self.latency_sum:.6f}")
        lines.append(f"retrain_serve_request_seconds_count {total}")
        for name, (kind, text, value) in gauges.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"

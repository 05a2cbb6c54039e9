"""The lab's comparison CLI: ``python -m model.comparator`` (also ``retrain compare``).

Exit codes: 0 PROMOTE, 3 REJECT, 4 INCONCLUSIVE, 2 bad input, 1 unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from model.errors import ComparisonInputError, RetrainError
from model.gate import report
from model.gate.comparator import (
    DEFAULT_CALIBRATION_MARGIN,
    DEFAULT_MIN_CLASS_COUNT,
    DEFAULT_THRESHOLD,
    DEVICES,
    RULES,
    ModelComparator,
)
from model.gate.inputs import read_test_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The comparison options (shared by ``python -m model.comparator`` and ``retrain compare``)."""
    parser.add_argument("--baseline", help="production model folder or model.pt (omit: none yet)")
    parser.add_argument("--new", "--candidate", dest="new", required=True, help="candidate model")
    parser.add_argument("--test-data", required=True, help="holdout: CSV, Parquet file or folder")
    parser.add_argument("--output", help="write the JSON report here")
    parser.add_argument("--html", help="write the HTML report here")
    parser.add_argument("--markdown", help="write the Markdown summary here")
    parser.add_argument("--metric", default="auc", help="primary metric (default: auc)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="the minimum gain to guarantee: PROMOTE needs the lower confidence bound above it "
        f"(default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument("--threshold-type", choices=("absolute", "relative"), default="absolute")
    parser.add_argument(
        "--alpha",
        "--significance-level",
        dest="alpha",
        type=float,
        default=0.05,
        help="the level of a decision on rows no earlier decision used, and of every guardrail "
        "(default 0.05); the j-th decision on the same rows (--holdout-uses) tests at "
        "alpha*6/(pi^2 j^2)",
    )
    parser.add_argument(
        "--holdout-uses",
        type=int,
        default=1,
        metavar="J",
        help="this decision's number j among decisions on these same test rows (default 1: "
        "fresh rows, the full alpha)",
    )
    parser.add_argument(
        "--min-class-count",
        type=int,
        default=DEFAULT_MIN_CLASS_COUNT,
        help="fewer positives or negatives in the holdout: INCONCLUSIVE "
        f"(default {DEFAULT_MIN_CLASS_COUNT})",
    )
    parser.add_argument(
        "--rule",
        choices=RULES,
        default="threshold",
        help="threshold (default): lower bound > threshold; lab: improvement >= threshold and "
        "p(improvement > 0) < the level (lenient: promotes ~50%% of candidates whose gain is "
        "exactly the threshold)",
    )
    parser.add_argument(
        "--calibration-margin",
        type=float,
        default=DEFAULT_CALIBRATION_MARGIN,
        help="log loss may be worse by at most this, shown at alpha (default 0.01; negative: off)",
    )
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="accepted for compatibility: the threshold rule is the default now",
    )
    parser.add_argument("--test", choices=("auto", "delong", "bootstrap"), default="auto")
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="where the bootstrap and DeLong's test run: cpu, cuda (the same numbers), or "
        "auto (cuda when torch sees a GPU)",
    )
    parser.add_argument(
        "--guardrail",
        action="append",
        default=[],
        metavar="METRIC=MARGIN",
        help="largest allowed worsening, e.g. recall=0.01 (repeatable)",
    )
    parser.add_argument(
        "--guardrail-mode",
        choices=("non_inferiority", "harm"),
        default="non_inferiority",
        help="non_inferiority (default): each guardrail must be shown not worse by more than "
        "its margin; harm: only a shown breach blocks",
    )
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="METRIC=MARGIN",
        help="every listed metric must improve by its margin, e.g. f1=0 (repeatable)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run a comparison from parsed options; print the text report; return the exit code."""
    try:
        comparator = ModelComparator(
            primary_metric=args.metric,
            improvement_threshold=args.threshold,
            threshold_type=args.threshold_type,
            significance_level=args.alpha,
            n_bootstrap=args.n_bootstrap,
            random_state=args.seed,
            guardrails=_parse_pairs(args.guardrail, "--guardrail"),
            policy=_parse_pairs(args.policy, "--policy"),
            holdout_uses=args.holdout_uses,
            min_class_count=args.min_class_count,
            rule=args.rule,
            calibration_margin=None if args.calibration_margin < 0 else args.calibration_margin,
            test=args.test,
            guardrail_mode=args.guardrail_mode,
            device=args.device,
        )
        from model.training.artifact import load_model

        baseline = load_model(args.baseline) if args.baseline else None
        candidate = load_model(args.new)
        test_data = read_test_data(args.test_data)
        result = comparator.compare(baseline, candidate, test_data)
        print(report.to_text(result))
        if args.output:
            report.write_json(result, args.output)
        if args.html:
            report.write_html(result, args.html)
        if args.markdown:
            report.write_text(args.markdown, report.to_markdown(result))
        return result.exit_code
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parse_pairs(items: Sequence[str], option: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ComparisonInputError(f"{option} expects METRIC=NUMBER, got {item!r}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.comparator",
        description="Compare a candidate model with the production model on a holdout. "
        "Exit codes: 0 PROMOTE, 3 REJECT, 4 INCONCLUSIVE, 2 bad input, 1 unexpected error.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))

"""Build, validate and commit feature tables for an as-of date or a range of dates.

spark-submit jobs/build_features.py --date 2026-01-09 [--table profile_daily ...]
spark-submit jobs/build_features.py --start 2026-01-05 --end 2026-01-09   (backfill)
A range is one pass per table (every date computed, validated and committed together).
Exit code 1 when any date failed validation (its rows went to quarantine) or was skipped.
"""

from __future__ import annotations

import argparse
import sys

from feature_store import lake as lk
from feature_store import runtime
from feature_store.features.build import FeatureBuildError, build_feature_range


def add_date_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=runtime.iso_date, help="as-of date, YYYY-MM-DD")
    parser.add_argument("--start", type=runtime.iso_date, help="first as-of date of a range")
    parser.add_argument("--end", type=runtime.iso_date, help="last as-of date of a range")
    parser.add_argument("--table", action="append", help="only this feature table (repeatable)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="marquee features build", description=__doc__.splitlines()[0]
    )
    runtime.add_common_args(parser)
    add_date_args(parser)
    args = parser.parse_args(argv)
    args.dates = runtime.date_range(parser, args)
    return args


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spark = runtime.session(config, args)
    try:
        report = build_feature_range(spark, config, args.dates, args.table)
    except (FeatureBuildError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return runtime.EXIT_FAILED
    print(report.format_table())
    if report.ok:
        return runtime.EXIT_OK
    failed = ", ".join(d.isoformat() for d in report.failed_dates)
    results = lk.Lake(config.lake).validation_results
    print(f"\nnot committed: {failed}; validation results under {results}/<table>/<date>/")
    return runtime.EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

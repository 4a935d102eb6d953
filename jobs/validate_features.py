"""Verify stored feature partitions by their build records, or run every expectation again.

spark-submit jobs/validate_features.py --date 2026-01-09 [--table profile_daily ...]
    For each table and date: the latest build committed the partition, its validation
    result says success, and no commit since changed the partition (verified at version
    N); a partition changed since its build has its expectations run again.
spark-submit jobs/validate_features.py --date 2026-01-09 --recheck
    Run every expectation again on the committed partition (or the quarantined one when
    the build failed).
Exit code 1 when any check fails or a partition or its record is missing.
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from feature_store import runtime
from feature_store.config import Config
from feature_store.features.build import revalidate
from feature_store.features.verification import verify_recorded
from jobs.build_features import add_date_args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="marquee features validate", description=__doc__.splitlines()[0]
    )
    runtime.add_common_args(parser)
    add_date_args(parser)
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run every expectation again instead of verifying the build records",
    )
    args = parser.parse_args(argv)
    args.dates = runtime.date_range(parser, args)
    return args


def _verify(spark: SparkSession, config: Config, args: argparse.Namespace) -> bool:
    ok = True
    for verdict in verify_recorded(spark, config, args.dates, args.table):
        print(verdict.line())
        if verdict.outcome is not None and not verdict.outcome.success:
            print(verdict.outcome.summary())
        ok = ok and verdict.ok
    return ok


def _recheck(spark: SparkSession, config: Config, args: argparse.Namespace) -> bool:
    ok = True
    for as_of in args.dates:
        for result in revalidate(spark, config, as_of, args.table):
            if result.outcome is None:
                print(f"{result.table} {as_of}: no partition in the table or the quarantine")
                ok = False
                continue
            verdict = "passed" if result.outcome.success else "FAILED"
            print(
                f"{result.table} {as_of} ({result.location}): {verdict}, "
                f"{result.outcome.evaluated} checks; results {result.outcome.result_path}"
            )
            if not result.outcome.success:
                print(result.outcome.summary())
                ok = False
    return ok


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spark = runtime.session(config, args)
    try:
        ok = (_recheck if args.recheck else _verify)(spark, config, args)
    except KeyError as exc:  # an unknown --table
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return runtime.EXIT_USAGE
    return runtime.EXIT_OK if ok else runtime.EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

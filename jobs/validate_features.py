"""Run the feature tables' expectations again on stored partitions.

spark-submit jobs/validate_features.py --date 2026-01-09 [--table profile_daily ...]
Checks the committed partition, or the quarantined one when the build failed.
Exit code 1 when any check fails or a partition is missing.
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime
from feature_store.features.build import revalidate
from jobs.build_features import add_date_args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="marquee features validate", description=__doc__.splitlines()[0]
    )
    runtime.add_common_args(parser)
    add_date_args(parser)
    args = parser.parse_args(argv)
    args.dates = runtime.date_range(parser, args)
    return args


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spark = runtime.session(config, args)
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
    return runtime.EXIT_OK if ok else runtime.EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

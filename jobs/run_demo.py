"""The platform's main job on embedded defaults: generate demo data for a few days,
ingest each day into bronze, build and validate the feature tables for each day, train,
evaluate and register the recommender, and print a summary. This is what `make run` runs."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from feature_store import lake as lk
from feature_store import reports, runtime
from feature_store.features.build import build_features
from feature_store.generator import generate
from feature_store.ingest import IngestError, ingest_date
from feature_store.recs.platform import format_summary, train_register_and_score
from feature_store.tracking import tracking_uri
from jobs.generate_data import spec_from

RECS_LABEL_DAYS = 2
RECS_RANKER_DAYS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee demo", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    for flag in ("--accounts", "--titles", "--days", "--seed"):
        parser.add_argument(flag, type=int)
    return parser.parse_args(argv)


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spec = spec_from(
        argparse.Namespace(
            **{
                **vars(args),
                "start_date": None,
                "dirty_share": None,
                "late_share": None,
                "sessions_per_day": None,
                "landing_compression": None,
            }
        ),
        config.generator,
    )
    spark = runtime.session(config, args)
    started = time.perf_counter()
    result = generate(spark, config.lake, spec)
    print(
        f"generated {result.lines:,} landing lines for {spec.accounts:,} accounts, "
        f"{spec.days} days, in {time.perf_counter() - started:.0f}s"
    )
    failed = []
    for date in spec.dates:
        try:
            report = ingest_date(spark, config, date)
        except IngestError as exc:
            failed.append(date)
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(report.format_table(), end="\n\n")
    print(reports.bronze_summary(spark, config.lake))

    # Features for every ingested day, oldest first: each day's row-count check
    # compares with the day before.
    builds = []
    for date in spec.dates:
        if date in failed:
            continue
        report = build_features(spark, config, date)
        builds.append(report)
        if not report.ok:
            failed.append(date)
            print(report.format_table(), end="\n\n", file=sys.stderr)
    print()
    print(reports.feature_summary(builds))
    print(f"validation results and data docs: {lk.Lake(config.lake).validation_results}")

    # The recommender learns up to RECS_LABEL_DAYS before the last day and is judged on
    # the views of those last days.
    if not failed and spec.days > RECS_LABEL_DAYS + RECS_RANKER_DAYS + 2:
        as_of = spec.end_date - dt.timedelta(days=RECS_LABEL_DAYS)
        run = train_register_and_score(
            spark, config, as_of, label_days=RECS_LABEL_DAYS, ranker_days=RECS_RANKER_DAYS
        )
        print()
        print(format_summary(run, config, 10))
        print(f"MLflow: {tracking_uri(config)}")
    print(f"\nlake: {config.lake}   total time {time.perf_counter() - started:.0f}s")
    return runtime.EXIT_FAILED if failed else runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

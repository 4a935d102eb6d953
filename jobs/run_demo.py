"""The platform's main job on embedded defaults: generate demo data (weeks of history
straight into bronze, the last days as landing files), ingest each landing day into
bronze, build and validate the feature tables, train, evaluate and register the
recommender and the churn model, and print a summary. This is what `make run` runs."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from feature_store import lake as lk
from feature_store import reports, runtime
from feature_store.churn import platform as churn
from feature_store.churn.dataset import HORIZON_DAYS, SNAPSHOT_TABLES, ChurnDataError
from feature_store.features.build import build_features
from feature_store.forecast.platform import train_forecast
from feature_store.forecast.series import ForecastDataError
from feature_store.generator import generate
from feature_store.ingest import IngestError, ingest_date
from feature_store.recs.platform import format_summary, train_register_and_score
from feature_store.tracking import tracking_uri
from jobs.generate_data import spec_from

RECS_LABEL_DAYS = 2
RECS_RANKER_DAYS = 2
# Churn snapshots 3 days apart: the demo's ten weeks leave room for several training
# snapshots between the first full 30-day window and the last one labelled 30 days on.
CHURN_EVERY_DAYS = 3


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
                "landing_days": None,
            }
        ),
        config.generator,
    )
    spark = runtime.session(config, args)
    started = time.perf_counter()
    result = generate(
        spark, config.lake, spec, pseudonymization_key=config.privacy.pseudonymization_key
    )
    print(
        f"generated {spec.accounts:,} accounts over {spec.days} days: {spec.history_days} days "
        f"of history straight into bronze, then {result.lines:,} landing lines for "
        f"{len(spec.landing_dates)} days, in {time.perf_counter() - started:.0f}s"
    )
    failed = []
    for date in spec.landing_dates:
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
    for date in spec.landing_dates:
        if date in failed:
            continue
        report = build_features(spark, config, date)
        builds.append(report)
        if not report.ok:
            failed.append(date)
            print(report.format_table(), end="\n\n", file=sys.stderr)
    print()
    print(reports.feature_summary(builds))
    failed += _build_history(spark, config, spec)
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
    if not failed:
        print()
        try:
            run = churn.train_register_and_score(
                spark, config, spec.end_date, every_days=CHURN_EVERY_DAYS
            )
            print(run.format_table())
        except ChurnDataError as exc:
            print(f"churn: not trained: {exc}")
        print()
        try:
            print(train_forecast(spark, config, spec.end_date).format_table())
        except ForecastDataError as exc:
            print(f"forecast: not trained: {exc}")
    print(f"MLflow: {tracking_uri(config)}")
    print(f"\nlake: {config.lake}   total time {time.perf_counter() - started:.0f}s")
    return runtime.EXIT_FAILED if failed else runtime.EXIT_OK


def _build_history(spark, config, spec) -> list[dt.date]:
    """Feature partitions the models need among the history days (the landing days have
    every table): the daily region x title series for every day (forecasts), and the
    account and profile features of the churn model's snapshot dates. Returns the dates
    whose build failed."""
    try:
        train, test = churn.choose_snapshots(
            spec.dates,
            as_of=spec.end_date,
            horizon_days=HORIZON_DAYS,
            history_start=spec.start_date,
            labels_through=spec.end_date,
            every_days=CHURN_EVERY_DAYS,
        )
        snapshots = {*train, test}
    except ChurnDataError:
        snapshots = set()  # too short for churn; the churn step says why
    failed, built = [], 0
    for date in spec.dates[: spec.history_days]:
        tables = ["region_title_daily", *(SNAPSHOT_TABLES if date in snapshots else ())]
        report = build_features(spark, config, date, tables)
        built += len(report.builds)
        if not report.ok:
            failed.append(date)
            print(report.format_table(), end="\n\n", file=sys.stderr)
    print(
        f"history: {built} feature partitions over {spec.history_days} days (region_title_daily "
        f"every day; account_daily and profile_daily on the churn snapshots "
        f"{', '.join(d.isoformat() for d in sorted(snapshots)) or 'none'})"
    )
    return failed


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

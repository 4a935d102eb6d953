"""Benchmark: build every feature table for one as-of date, Spark beside DuckDB.

1. Data: clean bronze tables straight from the generator (`generate_bronze`), the
   last day of the window being the as-of date, so every 28-day window is full.
   `--reuse-data` keeps a lake from an earlier run with the same sizes.
2. Spark: `build_features` for the as-of date (read, compute, validate with Great
   Expectations, commit to Delta), time per table and per step; twice: *cold* (the
   views table empty, so every day's views are made from bronze) and *daily* (the steady
   state: only the as-of day's views and the day before's are made again).
3. DuckDB: the same aggregates in SQL (`duckdb_features.py`) over the same Parquet
   files (the active files of each bronze Delta table), time per table: all from raw
   events, the views included.
4. Incremental cost (`--history-days N`, when the lake holds more days than N): a
   second lake holding only the last N days of events, the same as-of date built
   there, alternating with the full lake, best of `--repeats`.

Writes bench/results/features-<accounts>x<days>d-<UTC time>.json. The issue's scale:
`--accounts 2000000 --titles 20000 --days 30 --sessions-per-day 0.4`; the incremental
figure: `--days 60 --history-days 30`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

import duckdb
import duckdb_features
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from run_bench import bronze_files, bronze_lake, machine, save_result, with_lake

from feature_store import lake as lk
from feature_store import runtime
from feature_store.features import transforms as tf
from feature_store.features.build import build_features
from feature_store.features.tables import REGISTRY
from feature_store.synthetic import GenerationSpec

EVENT_SOURCES = ("viewing", "impressions", "ratings", "searches", "subscriptions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--titles", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions-per-day", type=float, default=0.4)
    parser.add_argument("--lake", help="lake folder (default: <state_dir>/bench-features)")
    parser.add_argument("--reuse-data", action="store_true", help="keep the lake's bronze")
    parser.add_argument("--history-days", type=int, help="also build with only N days of events")
    parser.add_argument("--repeats", type=int, default=2, help="incremental builds per lake")
    parser.add_argument("--only-incremental", action="store_true", help="skip the DuckDB part")
    parser.add_argument("--duckdb-memory", default="12GB")
    args = parser.parse_args(argv)
    config = runtime.load(args)
    lake_root = str(Path(args.lake or Path(config.paths.state_dir) / "bench-features").absolute())
    config = with_lake(config, lake_root)
    spark = runtime.session(config, args)
    spec = GenerationSpec(
        seed=config.generator.seed,
        accounts=args.accounts,
        titles=args.titles,
        days=args.days,
        start_date=config.generator.start_date,
        dirty_share=0.0,
        late_share=0.0,
        sessions_per_day=args.sessions_per_day,
    )
    as_of = spec.end_date
    result: dict = {
        "benchmark": "features",
        "machine": machine(),
        "spark": spark.version,
        "duckdb": duckdb.__version__,
        "driver_memory": config.spark.driver_memory,
        "shuffle_partitions": config.spark.shuffle_partitions,
        "spec": {**dataclasses.asdict(spec), "start_date": str(spec.start_date)},
        "as_of": str(as_of),
    }
    result["data"] = bronze_lake(spark, lake_root, spec, config, reuse=args.reuse_data)
    save_result(result, f"features-{spec.accounts}x{spec.days}d")

    if not args.only_incremental:
        # cold: the views of every day from bronze; daily: the steady state, where the
        # views of earlier days were made by earlier builds
        result["spark_build_cold"] = _spark_build(spark, config, as_of, views="cold")
        save_result(result, f"features-{spec.accounts}x{spec.days}d")
        result["spark_build"] = _spark_build(spark, config, as_of, views="daily")
        save_result(result, f"features-{spec.accounts}x{spec.days}d")
        print(json.dumps(result["spark_build"]["tables"], indent=2), flush=True)

        result["duckdb_build"] = duckdb_features.build_all(
            bronze_files(spark, lake_root),
            as_of,
            threads=machine()["cores"],
            memory=args.duckdb_memory,
        )
        result["ratios"] = duckdb_features.ratios(result["spark_build"], result["duckdb_build"])
        result["ratios_cold"] = duckdb_features.ratios(
            result["spark_build_cold"], result["duckdb_build"]
        )
        save_result(result, f"features-{spec.accounts}x{spec.days}d")
        print(json.dumps({"daily": result["ratios"], "cold": result["ratios_cold"]}, indent=2))

    if args.history_days and args.history_days < spec.days:
        result["incremental"] = _incremental(
            spark, config, as_of, history_days=args.history_days, repeats=args.repeats
        )
        print(json.dumps(result["incremental"], indent=2), flush=True)
    path = save_result(result, f"features-{spec.accounts}x{spec.days}d")
    print(f"results: {path}")
    return 0


def _clear_features(spark: SparkSession, lake_root: str, as_of: dt.date, views: str) -> None:
    """Remove every feature table and build log. ``views="cold"``: the views table too,
    so the build makes the views of every day in its window from bronze. ``"daily"``:
    only the views of the as-of day and the day before are made again -- what a daily
    build finds when the as-of day's bronze has just landed (it completes the views of
    the day before that crossed midnight)."""
    root = Path(lake_root)
    for folder in ("features", "quarantine/features", "ops/feature_builds", "ops/validation"):
        shutil.rmtree(root / folder, ignore_errors=True)
    lake = lk.Lake(lake_root)
    if views == "cold" or not lk.table_exists(spark, lake.view_days):
        shutil.rmtree(root / "silver", ignore_errors=True)
        shutil.rmtree(root / "ops/view_days", ignore_errors=True)
        return
    newest = as_of - dt.timedelta(days=1)
    DeltaTable.forPath(spark, lake.view_days).delete(F.col("view_date") >= F.lit(newest))


def _spark_build(
    spark: SparkSession,
    config,
    as_of: dt.date,
    tables: list[str] | None = None,
    *,
    views: str = "daily",
) -> dict:
    _clear_features(spark, config.lake, as_of, views)
    started = time.perf_counter()
    report = build_features(spark, config, as_of, tables)
    seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit("feature build failed validation:\n" + report.format_table())
    return {
        "views": views,
        "seconds": round(seconds, 1),
        "tables": {
            b.table: {"rows": b.rows, "seconds": b.seconds, "steps": b.seconds_by_step}
            for b in report.builds
        },
    }


def _incremental(
    spark: SparkSession, config, as_of: dt.date, *, history_days: int, repeats: int
) -> dict:
    """Build `as_of` with the lake's whole history and with only the last N days of events.

    Only the tables whose windows (plus the views' extra day) fit in N days are built:
    a longer window would simply hold less data in the shorter lake.
    """
    tables = [t.name for t in REGISTRY if t.lookback_days + tf.VIEW_MARGIN_DAYS <= history_days]
    full_root = config.lake
    short_root = f"{full_root}-last{history_days}d"
    shutil.rmtree(short_root, ignore_errors=True)
    first_kept = as_of - dt.timedelta(days=history_days - 1)
    full, short = lk.Lake(full_root), lk.Lake(short_root)
    # A copy of the bronze tables whose event sources then forget the older days: a
    # delete of whole partitions only drops files from the Delta log, so the days both
    # lakes hold are the very same files (rewriting them would change the file layout
    # and with it the read cost). Dimension sources (accounts, profiles, titles) are
    # kept whole: their latest record per key may be older than any window.
    shutil.copytree(Path(full.root) / "bronze", Path(short.root) / "bronze")
    for source in EVENT_SOURCES:
        DeltaTable.forPath(spark, short.bronze(source)).delete(
            F.col("event_date") < F.lit(first_kept)
        )
    lakes = {"full": config, f"last_{history_days}_days": with_lake(config, short_root)}
    seconds: dict[str, list[float]] = {name: [] for name in lakes}
    for lake_config in lakes.values():  # the views of the earlier days, as in production
        _spark_build(spark, lake_config, as_of, tables, views="cold")
    for _ in range(repeats):
        for name, lake_config in lakes.items():
            seconds[name].append(_spark_build(spark, lake_config, as_of, tables)["seconds"])
    best = {name: min(times) for name, times in seconds.items()}
    longer, shorter = best["full"], best[f"last_{history_days}_days"]
    return {
        "history_days": {
            "full": (as_of - config.generator.start_date).days + 1,
            "short": history_days,
        },
        "tables": tables,
        "seconds": seconds,
        "best_seconds": best,
        "difference": round(abs(longer - shorter) / shorter, 3),
    }


if __name__ == "__main__":
    sys.exit(main())

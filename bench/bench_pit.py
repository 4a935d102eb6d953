"""Benchmark of point-in-time training sets: Spark `point_in_time_join` beside DuckDB's ASOF JOIN.

Builds a synthetic spine and daily feature table with Spark (entity keys over a run of
as-of days with gaps, some rows written late), writes both as Parquet, then times

1. Spark: `point_in_time_join` over the Parquet files, every column computed and
   written to the `noop` sink;
2. DuckDB: `ASOF JOIN` over the same Parquet files with the same semantics (latest
   as-of date strictly before the spine date, within the TTL, written_at cut-off),
   materialized into a DuckDB table.

Writes bench/results/pit-<spine rows>x<feature rows>-<UTC time>.json with the machine,
both times and their ratio. The issue's scale is the default: 8,000,000 spine rows
against 60,000,000 feature rows (`--set spark.driver_memory=12g`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from run_bench import machine, save_result

from feature_store import runtime
from feature_store.config import REPO_ROOT
from feature_store.features.definitions import (
    AS_OF,
    WRITTEN_AT,
    Entity,
    FeatureColumn,
    FeatureTable,
)
from feature_store.features.training import point_in_time_join

DEFAULT_FOLDER = REPO_ROOT / ".marquee" / "bench-pit"
START = dt.date(2026, 1, 1)
KEY = "profile_id"


def bench_table(features: int, ttl_days: int) -> FeatureTable:
    return FeatureTable(
        name="bench_daily",
        entity=Entity("profile", (KEY,), "a synthetic profile"),
        keys=(KEY,),
        description="synthetic daily features for the point-in-time benchmark",
        owner="bench",
        ttl_days=ttl_days,
        lookback_days=28,
        sources=(),
        columns=(
            FeatureColumn(KEY, "string", "synthetic profile id"),
            *[FeatureColumn(f"f{i}", "double", f"synthetic feature {i}") for i in range(features)],
        ),
        freshness_column=KEY,
        max_staleness_hours=48,
    )


def _key_string(n) -> F.Column:
    # 32 hex characters, like the project's pseudonymized ids (random prefixes matter:
    # sorting and hashing strings that share long prefixes is much slower).
    return F.md5(n.cast("string"))


def _unit(seed: int, *cols) -> F.Column:
    """A deterministic uniform number in [0, 1) from a hash of the columns."""
    return (F.abs(F.xxhash64(F.lit(seed), *cols)) % 1_000_003) / F.lit(1_000_003.0)


def generate(
    spark: SparkSession,
    folder: Path,
    *,
    spine_rows: int,
    feature_rows: int,
    features: int,
    days: int,
    density: float,
    late_share: float,
) -> dict:
    """Write `spine/` and `features/` Parquet folders; return what was written."""
    keys = max(1, round(feature_rows / (days * density)))
    slots = keys * days
    # Feature rows: each (key, day) slot is present with probability `density` (gaps).
    grid = spark.range(0, slots).select(
        (F.col("id") % keys).alias("k"), (F.col("id") / keys).cast("int").alias("day")
    )
    feats = grid.where(_unit(1, "k", "day") < density).select(
        _key_string(F.col("k")).alias(KEY),
        *[F.rand(100 + i).alias(f"f{i}") for i in range(features)],
        F.date_add(F.lit(START), F.col("day")).alias(AS_OF),
        # Usually committed a few hours after the as-of day ends; some rows late (backfills).
        F.timestamp_seconds(
            F.unix_timestamp(F.date_add(F.lit(START), F.col("day") + 1).cast("timestamp"))
            + F.when(_unit(2, "k", "day") < late_share, 86_400 * (2 + (_unit(3, "k") * 6)))
            .otherwise(3_600 * (1 + _unit(4, "k", "day") * 6))
            .cast("long")
        ).alias(WRITTEN_AT),
    )
    feats.write.mode("overwrite").parquet(str(folder / "features"))

    # Spine rows: keys drawn from a slightly larger population (some have no features),
    # times spread over the as-of days and a few days after; a share of exact
    # duplicates and of rows sharing (key, day) with another row.
    spine = spark.range(0, spine_rows).select(
        _key_string((_unit(5, "id") * keys * 1.02).cast("long")).alias(KEY),
        F.timestamp_seconds(
            F.unix_timestamp(F.lit(START).cast("timestamp"))
            + (_unit(6, "id") * 86_400 * (days + 3)).cast("long")
        ).alias("ts"),
        (_unit(7, "id") < 0.1).cast("int").alias("label"),
    )
    spine.write.mode("overwrite").parquet(str(folder / "spine"))
    return {
        "keys": keys,
        "days": days,
        "density": density,
        "late_share": late_share,
        "start": str(START),
        "spine_rows": spark.read.parquet(str(folder / "spine")).count(),
        "feature_rows": spark.read.parquet(str(folder / "features")).count(),
    }


def time_spark(
    spark: SparkSession, folder: Path, table: FeatureTable, written_before: dt.datetime | None
) -> tuple[float, DataFrame]:
    spine = spark.read.parquet(str(folder / "spine"))
    rows = spark.read.parquet(str(folder / "features"))
    result = point_in_time_join(
        spine, [(table, rows, table.feature_names)], written_before=written_before
    )
    started = time.perf_counter()
    result.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started, result


def duckdb_sql(table: FeatureTable, folder: Path, written_before: dt.datetime | None) -> tuple:
    """The DuckDB query and its parameters (paths and values are bound, never formatted)."""
    picked = ", ".join(
        f"CASE WHEN f.{AS_OF} >= CAST(s.ts AS DATE) - INTERVAL {int(table.ttl_days)} DAY "
        f"THEN f.{name} END AS {table.name}__{name}"
        for name in table.feature_names
    )
    keys = " AND ".join(f"s.{k} = f.{k}" for k in table.keys)
    cut = f"WHERE {WRITTEN_AT} <= $cut" if written_before else ""
    sql = f"""
        CREATE OR REPLACE TABLE result AS
        SELECT s.*, {picked}
        FROM read_parquet($spine) AS s
        ASOF LEFT JOIN (
            SELECT *, CAST({AS_OF} + INTERVAL 1 DAY AS DATE) AS available_from
            FROM read_parquet($features) {cut}
        ) AS f
        ON {keys} AND CAST(s.ts AS DATE) >= f.available_from
    """
    params = {
        "spine": str(folder / "spine" / "*.parquet"),
        "features": str(folder / "features" / "*.parquet"),
    }
    if written_before:
        params["cut"] = written_before
    return sql, params


def time_duckdb(
    table: FeatureTable, folder: Path, written_before: dt.datetime | None, memory_limit: str
) -> tuple[float, int, int | None]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET threads = {os.cpu_count()}")
    con.execute(f"SET temp_directory = '{folder / 'duckdb-tmp'}'")
    con.execute("SET TimeZone = 'UTC'")
    sql, params = duckdb_sql(table, folder, written_before)
    started = time.perf_counter()
    con.execute(sql, params)
    seconds = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM result").fetchone()[0]
    differing = None
    if (folder / "spark-result").is_dir():
        # Both directions of EXCEPT ALL: equal multisets of rows, nulls included.
        spark_rows = "read_parquet($path)"
        differing = con.execute(
            f"SELECT (SELECT count(*) FROM (FROM result EXCEPT ALL FROM {spark_rows}))"
            f" + (SELECT count(*) FROM (FROM {spark_rows} EXCEPT ALL FROM result))",
            {"path": str(folder / "spark-result" / "*.parquet")},
        ).fetchone()[0]
    con.close()
    return seconds, rows, differing


def _stop_jvm(spark: SparkSession) -> None:
    """Stop Spark and end this process's own JVM child (it exits when its stdin closes)."""
    gateway = spark.sparkContext._gateway  # noqa: SLF001
    spark.stop()
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    if proc is not None and proc.stdin is not None:
        proc.stdin.close()
        proc.wait(timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--spine-rows", type=int, default=8_000_000)
    parser.add_argument("--feature-rows", type=int, default=60_000_000)
    parser.add_argument("--features", type=int, default=10, help="double feature columns")
    parser.add_argument("--days", type=int, default=30, help="as-of days")
    parser.add_argument("--density", type=float, default=0.87, help="share of (key, day) rows")
    parser.add_argument("--late-share", type=float, default=0.03, help="rows written days late")
    parser.add_argument("--ttl-days", type=int, default=7)
    parser.add_argument(
        "--written-before",
        type=dt.datetime.fromisoformat,
        help="cut-off on written_at (default: none)",
    )
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="data folder")
    parser.add_argument("--reuse-data", action="store_true", help="keep existing Parquet data")
    parser.add_argument("--duckdb-memory", default="12GB", help="DuckDB memory_limit")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also write Spark's result (untimed) and compare it row for row with DuckDB's",
    )
    args = parser.parse_args(argv)
    config = runtime.load(args)
    spark = runtime.session(config, args)
    table = bench_table(args.features, args.ttl_days)

    result: dict = {
        "benchmark": "point_in_time_join",
        "command": " ".join(["bench/bench_pit.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "spark": spark.version,
        "spark_master": spark.sparkContext.master,
        "driver_memory": config.spark.driver_memory,
        "shuffle_partitions": config.spark.shuffle_partitions,
        "ttl_days": args.ttl_days,
        "written_before": str(args.written_before) if args.written_before else None,
        "features": args.features,
    }
    folder: Path = args.folder
    if not (args.reuse_data and (folder / "features").is_dir() and (folder / "spine").is_dir()):
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        data = generate(
            spark,
            folder,
            spine_rows=args.spine_rows,
            feature_rows=args.feature_rows,
            features=args.features,
            days=args.days,
            density=args.density,
            late_share=args.late_share,
        )
        data["generate_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(data), flush=True)
    else:
        data = {
            "spine_rows": spark.read.parquet(str(folder / "spine")).count(),
            "feature_rows": spark.read.parquet(str(folder / "features")).count(),
            "reused": True,
        }
    result["data"] = data
    spine_rows = data["spine_rows"]

    shutil.rmtree(folder / "spark-result", ignore_errors=True)
    if not args.skip_spark:
        seconds, frame = time_spark(spark, folder, table, args.written_before)
        result["spark_seconds"] = round(seconds, 2)
        result["spark_rows_per_second"] = round(spine_rows / seconds)
        print(f"spark point_in_time_join: {seconds:.1f} s", flush=True)
        save_result(result, f"pit-{args.spine_rows}x{args.feature_rows}")
        if args.verify:  # untimed: keep Spark's rows for DuckDB to compare
            frame.write.mode("overwrite").parquet(str(folder / "spark-result"))
    _stop_jvm(spark)  # give the JVM's memory and cores back before DuckDB runs

    if not args.skip_duckdb:
        seconds, rows, differing = time_duckdb(
            table, folder, args.written_before, args.duckdb_memory
        )
        if rows != spine_rows:
            raise SystemExit(f"duckdb returned {rows} rows for {spine_rows} spine rows")
        result["duckdb_seconds"] = round(seconds, 2)
        print(f"duckdb asof join: {seconds:.1f} s", flush=True)
        if differing is not None:
            result["rows_differing_spark_vs_duckdb"] = differing
            print(f"rows differing between Spark and DuckDB: {differing}", flush=True)
    if "spark_seconds" in result and "duckdb_seconds" in result:
        result["ratio_spark_to_duckdb"] = round(
            result["spark_seconds"] / result["duckdb_seconds"], 2
        )
    path = save_result(result, f"pit-{args.spine_rows}x{args.feature_rows}")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Single-node peers timed beside the platform's Spark stages, on the same data, in the
same run (`bench_platform.py --peers`): the ratio Spark / peer of each.

- a landing day's ingestion: DuckDB on the same files (`duckdb_ingest.py`);
- the daily build of the six feature tables: DuckDB SQL over the same bronze files;
- a point-in-time join beside DuckDB's ASOF JOIN (`bench_pit.py`): every profile at the
  last three dates of `profile_daily` against all of that table's rows;
- MLlib ALS on the recommender's interactions beside `implicit`'s Cholesky solver (the
  same exact solve) and its conjugate gradient.

Each returns a dict for the result JSON; none changes the lake the platform reads.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import duckdb_features
import duckdb_ingest
import numpy as np
import scipy.sparse as sp
from bench_pit import time_duckdb, time_spark
from bench_recs import _implicit_als
from pyspark.sql import functions as F
from run_bench import bronze_files, machine

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.features.definitions import AS_OF
from feature_store.features.tables import REGISTRY
from feature_store.landing_files import list_landing
from feature_store.recs.models import ImplicitALS
from feature_store.recs.models.base import Interactions
from feature_store.sources import SOURCES

PIT_TABLE = "profile_daily"
PIT_SPINE_DATES = 3
IMPLICIT_ITERATIONS = 3


def ingest(spark, config: Config, day: dt.date, spark_seconds: float, work: Path, memory: str):
    """DuckDB ingesting ``day``'s landing files into ``work`` (Spark has ingested them)."""
    lake = lk.Lake(config.lake)
    listings = {name: list_landing(spark, lake.landing(name, day)) for name in SOURCES}
    landing = {name: [p for p, _ in x.files] for name, x in listings.items() if x.files}
    earlier = bronze_files(spark, config.lake)
    con = duckdb_ingest.connect(
        config.privacy.pseudonymization_key, threads=machine()["cores"], memory=memory
    )
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    counts = duckdb_ingest.ingest_day(
        con, landing=landing, earlier_bronze=earlier, file_date=day, out=work,
        watermark_days=config.ingest.watermark_days,
        future_tolerance_hours=config.ingest.future_tolerance_hours,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    con.close()
    shutil.rmtree(work, ignore_errors=True)
    lines = sum(sum(by_status.values()) for by_status in counts.values())
    return _ratio("duckdb", spark_seconds, seconds) | {"lines": lines}


def daily_build(spark, config: Config, day: dt.date, report, memory: str) -> dict:
    """DuckDB building every feature table of ``day`` beside Spark's ``report`` of it."""
    ours = {
        "seconds": sum(b.seconds for b in report.builds),
        "tables": {
            b.table: {"rows": b.rows, "seconds": b.seconds, "steps": b.seconds_by_step}
            for b in report.builds
        },
    }
    theirs = duckdb_features.build_all(
        bronze_files(spark, config.lake), day, threads=machine()["cores"], memory=memory
    )
    ratios = duckdb_features.ratios(ours, theirs)
    return {
        "spark_seconds": round(ours["seconds"], 1),
        "duckdb_seconds": theirs["seconds"],
        "spark_over_duckdb": ratios["total"]["build_vs_duckdb"],
        "compute_over_duckdb": ratios["total"]["compute_vs_duckdb"],
        "rows_equal": all(r["rows_equal"] for n, r in ratios.items() if n != "total"),
        "tables": {n: r for n, r in ratios.items() if n != "total"},
    }


def point_in_time(spark, config: Config, work: Path, memory: str) -> dict:
    """`point_in_time_join` and DuckDB ASOF over one spine and ``PIT_TABLE``'s rows."""
    table = REGISTRY.get(PIT_TABLE)
    rows = lk.read_table(spark, lk.Lake(config.lake).features(PIT_TABLE))
    dates = [r[0] for r in rows.select(AS_OF).distinct().orderBy(F.desc(AS_OF)).collect()]
    spine = rows.filter(F.col(AS_OF).isin(dates[:PIT_SPINE_DATES])).select(
        *table.keys,
        # an hour of the next day: that day's spine row sees the as-of date's features
        (F.col(AS_OF).cast("timestamp") + F.expr("INTERVAL 1 DAY")
         + F.expr("make_interval(0, 0, 0, 0, pmod(xxhash64(profile_id), 24))")).alias("ts"),
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    spine.write.parquet(str(work / "spine"))
    rows.write.parquet(str(work / "features"))
    spark_seconds, _ = time_spark(spark, work, table, None)
    duckdb_seconds, spine_rows, _ = time_duckdb(table, work, None, memory)
    feature_rows = spark.read.parquet(str(work / "features")).count()
    shutil.rmtree(work, ignore_errors=True)
    return _ratio("duckdb", spark_seconds, duckdb_seconds) | {
        "spine_rows": spine_rows,
        "feature_rows": feature_rows,
        "table": PIT_TABLE,
    }


def als(spark, interactions, params: dict, fitted_seconds: float) -> dict:
    """Spark's seconds per ALS iteration: the platform's fit of ``params["iterations"]``
    (``fitted_seconds``) less a one-iteration fit, per extra iteration; beside implicit's
    median iteration on the same confidences (1 + alpha x value)."""
    one = ImplicitALS(spark, **{**params, "iterations": 1})
    started = time.perf_counter()
    one.fit(interactions)
    one_seconds = time.perf_counter() - started
    per_iteration = (fitted_seconds - one_seconds) / (params["iterations"] - 1)
    matrix = Interactions(interactions)
    values = 1.0 + params["alpha"] * interactions["rating"].to_numpy(np.float32)
    confidence = sp.csr_matrix((values, (matrix.rows, matrix.cols)), shape=matrix.matrix.shape)
    result = {
        "params": params,
        "spark": {
            "fit_seconds": {"1": round(one_seconds, 1), str(params["iterations"]): fitted_seconds},
            "seconds_per_iteration": round(per_iteration, 2),
            "fixed_seconds": round(one_seconds - per_iteration, 1),
        },
    }
    for solver, use_cg in (("cholesky", False), ("cg", True)):
        implicit = _implicit_als(confidence, params, use_cg=use_cg, iterations=IMPLICIT_ITERATIONS)
        result[f"implicit_{solver}"] = implicit
        result[f"spark_over_{solver}"] = round(per_iteration / implicit["seconds_per_iteration"], 2)
    return result


def _ratio(peer: str, spark_seconds: float, peer_seconds: float) -> dict:
    return {
        "spark_seconds": round(spark_seconds, 1),
        f"{peer}_seconds": round(peer_seconds, 1),
        f"spark_over_{peer}": round(spark_seconds / peer_seconds, 2),
    }

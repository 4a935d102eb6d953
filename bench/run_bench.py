"""Benchmarks for the foundation: generate and ingest at a chosen scale.

Writes bench/results/foundation-<accounts>-<UTC time>.json with the machine (cores,
memory), stage times and throughput. Default scale runs in minutes; the issue's
scale is `--accounts 2000000 --days 30 --landing-compression gzip`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store import runtime
from feature_store.ingest import ingest_date
from feature_store.sources import SOURCES
from feature_store.spark import check_java
from feature_store.synthetic import GenerationSpec, generate, generate_bronze, load_manifest

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "java": check_java(),
        "platform": platform.platform(),
    }


def bronze_files(spark, lake_root: str) -> dict[str, list[str]]:
    """The Parquet files of each bronze Delta table's current version, by source."""
    lake = lk.Lake(lake_root)
    return {
        s: lk.read_table(spark, lake.bronze(s)).inputFiles()
        for s in SOURCES
        if lk.table_exists(spark, lake.bronze(s))
    }


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--titles", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--sessions-per-day", type=float, default=0.5)
    parser.add_argument("--landing-compression", choices=("none", "gzip"), default="none")
    parser.add_argument("--ingest-days", type=int, help="ingest only the first N days")
    parser.add_argument("--lake", help="lake folder (default: <state_dir>/bench-lake, wiped first)")
    args = parser.parse_args(argv)
    config = runtime.load(args)
    lake_root = args.lake or str(Path(config.paths.state_dir) / "bench-lake")
    shutil.rmtree(lake_root, ignore_errors=True)
    config = with_lake(config, lake_root)
    spark = runtime.session(config, args)

    spec = GenerationSpec(
        seed=config.generator.seed,
        accounts=args.accounts,
        titles=args.titles,
        days=args.days,
        start_date=config.generator.start_date,
        dirty_share=config.generator.dirty_share,
        late_share=config.generator.late_share,
        sessions_per_day=args.sessions_per_day,
        landing_compression=args.landing_compression,
    )
    result: dict = {
        "benchmark": "foundation",
        "machine": machine(),
        "spark": spark.version,
        "spark_master": spark.sparkContext.master,
        "driver_memory": config.spark.driver_memory,
        "spec": {**dataclasses.asdict(spec), "start_date": str(spec.start_date)},
    }
    started = time.perf_counter()
    generated = generate(spark, lake_root, spec)
    gen_seconds = time.perf_counter() - started
    viewing = generated.landing_counts["viewing"]["lines"]
    result["generate"] = {
        "seconds": round(gen_seconds, 1),
        "seconds_by_stage": generated.seconds_by_stage,
        "landing_lines": generated.lines,
        "landing_lines_by_source": {k: v["lines"] for k, v in generated.landing_counts.items()},
        "viewing_events": viewing,
        "viewing_events_per_second": round(viewing / gen_seconds),
        "landing_lines_per_second": round(generated.lines / gen_seconds),
        "landing_bytes": folder_bytes(Path(lake_root) / "landing"),
    }
    save_result(result, f"foundation-{spec.accounts}x{spec.days}d")
    print(json.dumps(result["generate"], indent=2), flush=True)

    per_day = []
    ingest_started = time.perf_counter()
    for date in spec.dates[: args.ingest_days or spec.days]:
        day_started = time.perf_counter()
        report = ingest_date(spark, config, date)
        lines = sum(s.lines for s in report.sources)
        seconds = time.perf_counter() - day_started
        per_day.append(
            {
                "date": str(date),
                "seconds": round(seconds, 1),
                "lines": lines,
                "lines_per_second": round(lines / seconds),
                "balanced": all(s.balanced for s in report.sources),
            }
        )
        print(json.dumps(per_day[-1]), flush=True)
        result["ingest"] = {"days": per_day}
        save_result(result, f"foundation-{spec.accounts}x{spec.days}d")
    ingest_seconds = time.perf_counter() - ingest_started
    bronze_viewing = (
        lk.read_table(spark, lk.Lake(lake_root).bronze("viewing")).agg(F.count(F.lit(1))).first()[0]
    )
    total_lines = sum(d["lines"] for d in per_day)
    result["ingest"] = {
        "seconds": round(ingest_seconds, 1),
        "lines": total_lines,
        "lines_per_second": round(total_lines / ingest_seconds),
        "bronze_viewing_rows": bronze_viewing,
        "bronze_bytes": folder_bytes(Path(lake_root) / "bronze"),
        "all_balanced": all(d["balanced"] for d in per_day),
        "days": per_day,
    }
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    path = save_result(result, f"foundation-{spec.accounts}x{spec.days}d")
    print(f"results: {path}")
    return 0


def bronze_lake(spark, lake_root: str, spec: GenerationSpec, config, *, reuse: bool) -> dict:
    """Clean bronze tables of ``spec`` straight from the generator (``reuse``: keep the
    lake's, after checking it holds the same spec); rows per source and sizes."""
    lake = lk.Lake(lake_root)
    if reuse and lk.table_exists(spark, lake.bronze("viewing")):
        stored = load_manifest(spark, lake_root)["spec"]
        wanted = {**dataclasses.asdict(spec), "start_date": spec.start_date.isoformat()}
        if stored != wanted:
            raise SystemExit(f"--reuse-data: the lake at {lake_root} holds {stored}, not {wanted}")
        seconds, by_stage = None, None
    else:
        shutil.rmtree(lake_root, ignore_errors=True)
        started = time.perf_counter()
        generated = generate_bronze(
            spark, lake_root, spec, pseudonymization_key=config.privacy.pseudonymization_key
        )
        seconds, by_stage = round(time.perf_counter() - started, 1), generated.seconds_by_stage
    rows = {
        s: lk.read_table(spark, lake.bronze(s)).agg(F.count(F.lit(1))).first()[0] for s in SOURCES
    }
    data = {
        "generate_seconds": seconds,
        "generate_seconds_by_stage": by_stage,
        "bronze_rows": rows,
        "bronze_bytes": folder_bytes(Path(lake_root) / "bronze"),
    }
    print(json.dumps(data, indent=2), flush=True)
    return data


def with_lake(config, lake_root: str):
    """``config`` with its lake moved to ``lake_root`` and its MLflow store into it (each
    benchmark has its own: a benchmark's runs and model versions stay out of make run's)."""
    paths = dataclasses.replace(config.paths, lake=lake_root, mlflow=f"{lake_root}/mlflow")
    return dataclasses.replace(config, paths=paths)


_STAMP = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def save_result(result: dict, name: str) -> Path:
    """Write ``result`` to bench/results/<name>-<UTC start time of the run>.json; called
    again as a run goes on, it rewrites the same file, so a crash keeps what was done."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{_STAMP}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    return path


if __name__ == "__main__":
    sys.exit(main())

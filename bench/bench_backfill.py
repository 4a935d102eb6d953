"""Benchmark: a backfill of many as-of dates, one pass per table against date by date.

1. Data: clean bronze tables straight from the generator (`generate_bronze`); the as-of
   dates are the last `--dates` days of the generated history, which by default starts
   56 days (the longest lookback) before the first of them. `--reuse-data` keeps a lake
   from an earlier run with the same sizes.
2. One pass: `build_feature_range` over all the dates, in a fresh feature lake holding a
   copy of the bronze tables (no views, features or logs yet).
3. Date by date: `build_features` once per date, in another fresh lake over the same
   bronze: what `marquee features build --start --end` did before.
Both build every table; their statuses and row counts per table and date are compared.

Writes bench/results/backfill-<accounts>x<dates>d-<UTC time>.json with the seconds of
each, the ratio (date by date / one pass) and the one pass's seconds per table. The
issue's size: `--accounts 100000 --dates 60` (the defaults), with a 12 GB driver as `make
bench` runs it: the one pass writes 60 dates of interactions, 130M rows, in one commit.
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

from run_bench import bronze_lake, machine, save_result, with_lake

from feature_store import runtime
from feature_store.features.build import build_feature_range, build_features
from feature_store.features.tables import REGISTRY
from feature_store.synthetic import GenerationSpec

LONGEST_LOOKBACK = max(t.lookback_days for t in REGISTRY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--titles", type=int, default=5_000)
    parser.add_argument("--dates", type=int, default=60, help="as-of dates to build")
    parser.add_argument("--days", type=int, help=f"history (default: dates + {LONGEST_LOOKBACK})")
    parser.add_argument("--sessions-per-day", type=float, default=0.4)
    parser.add_argument("--lake", help="lake folder (default: <state_dir>/bench-backfill)")
    parser.add_argument("--reuse-data", action="store_true", help="keep the lake's bronze")
    args = parser.parse_args(argv)
    config = runtime.load(args)
    root = str(Path(args.lake or Path(config.paths.state_dir) / "bench-backfill").absolute())
    spark = runtime.session(config, args)
    spec = GenerationSpec(
        seed=config.generator.seed,
        accounts=args.accounts,
        titles=args.titles,
        days=args.days or args.dates + LONGEST_LOOKBACK,
        start_date=config.generator.start_date,
        dirty_share=0.0,
        late_share=0.0,
        sessions_per_day=args.sessions_per_day,
    )
    dates = list(spec.dates[-args.dates :])
    name = f"backfill-{spec.accounts}x{len(dates)}d"
    result: dict = {
        "benchmark": "backfill",
        "machine": machine(),
        "spark": spark.version,
        "driver_memory": config.spark.driver_memory,
        "shuffle_partitions": config.spark.shuffle_partitions,
        "spec": {**dataclasses.asdict(spec), "start_date": str(spec.start_date)},
        "as_of_dates": {"first": str(dates[0]), "last": str(dates[-1]), "count": len(dates)},
    }
    result["data"] = bronze_lake(spark, root, spec, config, reuse=args.reuse_data)
    save_result(result, name)

    # one pass first: it pays the JVM's warm-up, date by date profits from it
    one_pass = _fresh_lake(config, root, "one-pass")
    result["one_pass"] = _timed(lambda: _one_pass(spark, one_pass, dates))
    save_result(result, name)
    print(json.dumps(result["one_pass"], indent=2), flush=True)
    by_date = _fresh_lake(config, root, "by-date")

    def progress(done: dict) -> None:
        save_result({**result, "date_by_date_so_far": done}, name)

    result["date_by_date"] = _timed(lambda: _date_by_date(spark, by_date, dates, progress))
    result["same_outcomes"] = result["one_pass"]["outcomes"] == result["date_by_date"]["outcomes"]
    result["ratio_date_by_date_to_one_pass"] = round(
        result["date_by_date"]["seconds"] / result["one_pass"]["seconds"], 2
    )
    path = save_result(result, name)
    summary = {k: result[k] for k in ("same_outcomes", "ratio_date_by_date_to_one_pass")}
    print(json.dumps(summary, indent=2))
    print(f"results: {path}")
    return 0


def _fresh_lake(config, root: str, name: str):
    """A config whose lake holds a copy of the bronze tables of ``root`` and nothing else."""
    lake_root = f"{root}-{name}"
    shutil.rmtree(lake_root, ignore_errors=True)
    shutil.copytree(Path(root) / "bronze", Path(lake_root) / "bronze")
    return with_lake(config, lake_root)


def _timed(build) -> dict:
    started = time.perf_counter()
    out = build()
    return {"seconds": round(time.perf_counter() - started, 1), **out}


def _one_pass(spark, config, dates: list[dt.date]) -> dict:
    report = build_feature_range(spark, config, dates)
    print(report.format_table(), flush=True)
    return {
        "table_seconds": report.table_seconds,
        "failed_dates": [str(d) for d in report.failed_dates],
        "outcomes": _outcomes(report.builds),
    }


def _date_by_date(spark, config, dates: list[dt.date], progress) -> dict:
    """Builds each date in turn; ``progress`` gets the seconds so far after every date, so
    a run cut short (a sitting ends) still leaves its measured dates on disk."""
    builds, started, date_seconds = [], time.perf_counter(), {}
    for as_of in dates:
        began = time.perf_counter()
        report = build_features(spark, config, as_of)
        date_seconds[str(as_of)] = round(time.perf_counter() - began, 1)
        print(
            f"{as_of}: {'ok' if report.ok else 'FAILED'} in {date_seconds[str(as_of)]} s",
            flush=True,
        )
        builds += report.builds
        progress({"dates": len(date_seconds), "seconds": round(time.perf_counter() - started, 1)})
    failed = sorted({str(b.as_of) for b in builds if b.status != "committed"})
    return {"failed_dates": failed, "date_seconds": date_seconds, "outcomes": _outcomes(builds)}


def _outcomes(builds) -> dict:
    """Per table: rows over all dates and the count of each status."""
    out: dict = {}
    for b in builds:
        table = out.setdefault(b.table, {"rows": 0})
        table["rows"] += b.rows
        table[b.status] = table.get(b.status, 0) + 1
    return dict(sorted(out.items()))


if __name__ == "__main__":
    sys.exit(main())

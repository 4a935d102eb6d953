"""Benchmark: the member and content models at scale -- churn (training, evaluation,
scoring every account).

1. Data: clean bronze tables straight from the generator (`generate_bronze`), long
   enough for the churn model's full 30-day feature windows and 30-day labels: the
   default 70 days give one training snapshot (day 32) and the evaluation snapshot
   (day 39), labelled through day 69.
   `--reuse-data` keeps a lake from an earlier run with the same sizes.
2. Features: account_daily and profile_daily for the snapshot dates and the last day.
3. Churn: `train_churn` (snapshots, both models, evaluation with the hidden hazard as
   ceiling), then every account of the last day scored with band and reasons.

Writes bench/results/models-<accounts>x<days>d-<UTC time>.json. The issue's scale:
`--accounts 2000000 --titles 20000 --set spark.driver_memory=12g`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from run_bench import bronze_lake, machine, save_result, with_lake

from feature_store import runtime
from feature_store.churn.dataset import HORIZON_DAYS, SNAPSHOT_TABLES
from feature_store.churn.platform import choose_snapshots, score_accounts, train_churn
from feature_store.features.build import build_features
from feature_store.generator import GenerationSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--titles", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=70)
    parser.add_argument("--sessions-per-day", type=float, default=0.4)
    parser.add_argument("--lake", help="lake folder (default: <state_dir>/bench-models)")
    parser.add_argument("--reuse-data", action="store_true", help="keep the lake's bronze")
    args = parser.parse_args(argv)
    config = runtime.load(args)
    lake_root = str(Path(args.lake or Path(config.paths.state_dir) / "bench-models").absolute())
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
    name = f"models-{spec.accounts}x{spec.days}d"
    result: dict = {
        "benchmark": "models",
        "machine": machine(),
        "spark": spark.version,
        "driver_memory": config.spark.driver_memory,
        "spec": {**dataclasses.asdict(spec), "start_date": str(spec.start_date)},
    }
    result["data"] = bronze_lake(spark, lake_root, spec, config, reuse=args.reuse_data)
    save_result(result, name)

    as_of = spec.end_date
    train_dates, test_date = choose_snapshots(
        spec.dates,
        as_of=as_of,
        horizon_days=HORIZON_DAYS,
        history_start=spec.start_date,
        labels_through=as_of,
    )
    result["features"] = {}
    for date in (*train_dates, test_date, as_of):
        started = time.perf_counter()
        report = build_features(spark, config, date, list(SNAPSHOT_TABLES))
        if not report.ok:
            print(report.format_table(), file=sys.stderr)
            return 1
        result["features"][str(date)] = {
            "seconds": round(time.perf_counter() - started, 1),
            "rows": {b.table: b.rows for b in report.builds},
        }
        save_result(result, name)

    started = time.perf_counter()
    run = train_churn(spark, config, as_of)
    trained = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    scored = score_accounts(spark, config, run)
    score_seconds = time.perf_counter() - started
    result["churn"] = {
        "train_seconds": trained,
        "seconds_by_stage": {k: round(v, 1) for k, v in run.seconds.items()},
        "score_seconds": round(score_seconds, 1),
        "scored_accounts": scored,
        "accounts_scored_per_second": round(scored / score_seconds, 1),
        "band_counts": run.band_counts,
        "train_snapshots": [str(d) for d in run.train_snapshots],
        "test_snapshot": str(run.test_snapshot),
        "rows": run.rows,
        "evaluation": run.evaluation,
        "importances": run.importances,
    }
    print(run.format_table(), flush=True)
    path = save_result(result, name)
    print(json.dumps(result["churn"], indent=2, default=str))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

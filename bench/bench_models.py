"""Benchmark: the member and content models at scale -- churn (training, evaluation,
scoring every account), and the regional popularity forecast with its CDN plan and the
new-title audience model.

1. Data: clean bronze tables straight from the generator (`generate_bronze`), long
   enough for the churn model's full 30-day feature windows and 30-day labels: the
   default 70 days give one training snapshot (day 32) and the evaluation snapshot
   (day 39), labelled through day 69; the forecast needs 56 of them.
   `--reuse-data` keeps a lake from an earlier run with the same sizes.
2. Churn: account_daily and profile_daily for the snapshot dates and the last day, then
   `train_churn` (snapshots, both models, evaluation with the hidden hazard as ceiling),
   then every account of the last day scored with band and reasons.
3. Forecast: region_title_daily for every day (the dates already built are kept), then
   `train_forecast` as the training DAG runs it (rolling-origin backtest against the
   baselines, the final model, 14 days of every region x title forecast, the CDN plan,
   the audience model, MLflow, Delta): seconds per stage and the run's metrics.

Writes bench/results/models-<accounts>x<days>d-<UTC time>.json. The issue's scale:
`--accounts 2000000 --titles 20000 --set spark.driver_memory=12g`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

from run_bench import bronze_lake, machine, save_result, with_lake

from feature_store import lake as lk
from feature_store import runtime
from feature_store.churn.data import HORIZON_DAYS, SNAPSHOT_TABLES
from feature_store.churn.steps import choose_snapshots, score_accounts, train_churn
from feature_store.features.build import build_features
from feature_store.features.definitions import AS_OF
from feature_store.forecast.tracking import audience_metrics, run_metrics
from feature_store.forecast.train import train_forecast
from feature_store.synthetic import GenerationSpec
from feature_store.synthetic.ceilings import audience_ceiling, churn_ceiling

MODELS = ("churn", "forecast")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--titles", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=70)
    parser.add_argument("--sessions-per-day", type=float, default=0.4)
    parser.add_argument("--lake", help="lake folder (default: <state_dir>/bench-models)")
    parser.add_argument("--reuse-data", action="store_true", help="keep the lake's bronze")
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}"
    )
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - set(MODELS):
        parser.error(f"--models takes some of {', '.join(MODELS)}, not {args.models!r}")
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

    for model in models:
        measure = {"churn": _churn, "forecast": _forecast}[model]
        if not measure(spark, config, spec, result, save=lambda: save_result(result, name)):
            return 1
    path = save_result(result, name)
    print(f"results: {path}")
    return 0


def _build(spark, config, date, tables: list[str]) -> dict | None:
    """Build ``tables`` for ``date``: seconds and rows, or None (reported) when a table
    failed validation."""
    started = time.perf_counter()
    report = build_features(spark, config, date, tables)
    if not report.ok:
        print(report.format_table(), file=sys.stderr)
        return None
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "rows": {b.table: b.rows for b in report.builds},
    }


def _churn(spark, config, spec: GenerationSpec, result: dict, *, save) -> bool:
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
        built = _build(spark, config, date, list(SNAPSHOT_TABLES))
        if built is None:
            return False
        result["features"][str(date)] = built
        save()

    started = time.perf_counter()
    run = train_churn(spark, config, as_of, ceiling=churn_ceiling(spark, config))
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
    save()
    print(json.dumps(result["churn"], indent=2, default=str))
    return True


def _forecast(spark, config, spec: GenerationSpec, result: dict, *, save) -> bool:
    table = lk.Lake(config.lake).features("region_title_daily")
    built_dates = set()
    if lk.table_exists(spark, table):
        built_dates = {r[0] for r in lk.read_table(spark, table).select(AS_OF).distinct().collect()}
    missing = [d for d in spec.dates if d not in built_dates]
    started = time.perf_counter()
    for date in missing:
        if _build(spark, config, date, ["region_title_daily"]) is None:
            return False
    seconds = time.perf_counter() - started
    result["forecast_features"] = {
        "table": "region_title_daily",
        "dates_built": len(missing),
        "seconds": round(seconds, 1),
        "seconds_per_date": round(seconds / len(missing), 1) if missing else None,
    }
    save()

    started = time.perf_counter()
    run = train_forecast(
        spark, config, spec.end_date, audience_truth=audience_ceiling(spark, config)
    )
    total = time.perf_counter() - started
    forecast_seconds = run.seconds["forecast"]
    metrics = run_metrics(run)
    if run.audience is not None:
        metrics.update(audience_metrics(run.audience))
    result["forecast"] = {
        "seconds": round(total, 1),
        "seconds_by_stage": {k: round(v, 1) for k, v in run.seconds.items()},
        "series": run.series_count,
        "series_forecast_per_second": round(run.series_count / forecast_seconds, 1),
        "backtest_origins": [str(o) for o in run.backtest.origins],
        "training_rows": run.training_rows,
        "rows_written": {
            "forecast": run.forecast_rows,
            "cdn_plan": run.plan_rows,
            "audience": run.audience_rows,
        },
        "audience_note": run.audience_note or None,
        # over all horizons and regions (per horizon and per region: the MLflow run)
        "metrics": {
            k: round(v, 4)
            for k, v in sorted(metrics.items())
            if not re.search(r"_h\d+$", k) and k.count(".") <= 2
        },
    }
    print(run.format_table(), flush=True)
    save()
    print(json.dumps(result["forecast"], indent=2, default=str))
    return True


if __name__ == "__main__":
    sys.exit(main())

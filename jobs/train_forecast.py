"""Forecast every region x title's daily views for the next 14 days as of a date, backtest
the model against seasonal naive and a trailing mean, register it in MLflow and write the
forecasts and the CDN pre-positioning plan to Delta.

spark-submit jobs/train_forecast.py --date 2026-03-10 [--budget-gb 2000] [--plan-days 7]
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="marquee forecast train", description=__doc__.splitlines()[0]
    )
    runtime.add_common_args(parser)
    parser.add_argument(
        "--date", type=runtime.iso_date, required=True, help="last observed day (the origin)"
    )
    parser.add_argument(
        "--budget-gb", type=float, default=2000.0, help="CDN storage per region, in GB"
    )
    parser.add_argument(
        "--plan-days", type=int, default=7, help="days of forecast views the plan serves"
    )
    parser.add_argument(
        "--backtest-origins",
        type=int,
        help="rolling origins, 7 days apart (default: sized to the data: at most 3, only "
        "those whose fold learns from 7+ origins with all 14 targets observed, and the "
        "latest alone when the series are short or hold under 1,000,000 series x days; "
        "horizons are always 1-14)",
    )
    parser.add_argument("--top-n", type=int, default=100, help="top titles per region judged")
    parser.add_argument(
        "--max-training-rows",
        type=int,
        default=400_000,
        help="rows a model fits on at most; beyond, a sample of whole series",
    )
    parser.add_argument(
        "--gbt-max-iter",
        type=int,
        help="boosting iterations of each model (default: the model's; fewer: faster)",
    )
    parser.add_argument("--no-register", action="store_true", help="log the run only")
    runtime.add_tag_arg(parser)
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace):
    from feature_store.forecast.model import GBTParams
    from feature_store.forecast.steps import ForecastSettings

    return ForecastSettings(
        backtest_origins=args.backtest_origins,
        top_n=args.top_n,
        plan_days=args.plan_days,
        budget_gb=args.budget_gb,
        max_training_rows=args.max_training_rows,
        gbt=GBTParams(**({"max_iter": args.gbt_max_iter} if args.gbt_max_iter else {})),
    )


def _main(args: argparse.Namespace) -> int:
    from feature_store.forecast.data import ForecastDataError
    from feature_store.forecast.steps import MODEL_NAME
    from feature_store.forecast.train import train_forecast
    from feature_store.synthetic.ceilings import audience_ceiling

    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return runtime.EXIT_USAGE

    def train(spark, config, args: argparse.Namespace):
        return train_forecast(
            spark,
            config,
            args.date,
            settings=settings,
            register=not args.no_register,
            audience_truth=audience_ceiling(spark, config),  # None on real data
        )

    job = runtime.TrainingJob(
        MODEL_NAME, ForecastDataError, train, lambda run, _: run.format_table()
    )
    return runtime.run_training(job, args)


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

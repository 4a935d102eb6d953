"""Train the churn model as of a date on labelled snapshots before it, evaluate it against
logistic regression and the hidden hazard, register it in MLflow as `churn` and write
every account's risk to Delta.

spark-submit jobs/train_churn.py --date 2026-02-18 [--horizon-days 30] [--every-days 7]
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="marquee churn train", description=__doc__.splitlines()[0]
    )
    runtime.add_common_args(parser)
    parser.add_argument("--date", type=runtime.iso_date, required=True, help="training as-of date")
    parser.add_argument(
        "--horizon-days", type=int, default=30, help="a cancel within this many days is churn"
    )
    parser.add_argument("--every-days", type=int, default=7, help="days between snapshots")
    parser.add_argument("--max-train-snapshots", type=int, default=4)
    parser.add_argument("--no-register", action="store_true", help="log the run only")
    runtime.add_tag_arg(parser)
    return parser.parse_args(argv)


def _train(spark, config, args: argparse.Namespace):
    from feature_store.churn.train import train_register_and_score
    from feature_store.synthetic.ceilings import churn_ceiling

    return train_register_and_score(
        spark,
        config,
        args.date,
        register=not args.no_register,
        ceiling=churn_ceiling(spark, config),  # None on real data
        horizon_days=args.horizon_days,
        every_days=args.every_days,
        max_train_snapshots=args.max_train_snapshots,
    )


def _main(args: argparse.Namespace) -> int:
    from feature_store.churn.data import ChurnDataError
    from feature_store.churn.tracking import MODEL_NAME

    job = runtime.TrainingJob(MODEL_NAME, ChurnDataError, _train, lambda run, _: run.format_table())
    return runtime.run_training(job, args)


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""Train the recommender as of a date, evaluate it on the following days, register it in
MLflow and write the batch recommendations to Delta.

spark-submit jobs/train_recommender.py --date 2026-01-09 [--label-days 7] [--k 10]
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee recs train", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--date", type=runtime.iso_date, required=True, help="training as-of date")
    parser.add_argument("--label-days", type=int, default=7, help="days of views judged after it")
    parser.add_argument(
        "--ranker-days", type=int, default=3, help="days of sessions the ranker learns from"
    )
    parser.add_argument(
        "--validation",
        choices=("later_days", "random_split"),
        default="later_days",
        help="how EASE's settings and the blend are chosen: on the views of the ranker's "
        "days, or on a random split of the rows, refitted after (an ALS and an EASE fit more)",
    )
    parser.add_argument("--k", type=int, default=10, help="list length evaluated")
    parser.add_argument("--calibration-weight", type=float, default=0.3)
    parser.add_argument("--no-register", action="store_true", help="log the run only")
    runtime.add_tag_arg(parser)
    return parser.parse_args(argv)


def _train(spark, config, args: argparse.Namespace):
    from feature_store.recs.train import train_register_and_score
    from feature_store.synthetic.ceilings import recs_ceiling

    return train_register_and_score(
        spark,
        config,
        args.date,
        ceiling=recs_ceiling(spark, config),  # None on real data
        register=not args.no_register,
        label_days=args.label_days,
        ranker_days=args.ranker_days,
        validation=args.validation,
        k=args.k,
        calibration_weight=args.calibration_weight,
    )


def _main(args: argparse.Namespace) -> int:
    from feature_store.recs.data import RecsDataError
    from feature_store.recs.steps import format_summary
    from feature_store.recs.tracking import MODEL_NAME

    def summary(run, config) -> str:
        return format_summary(run, config, args.k)

    return runtime.run_training(
        runtime.TrainingJob(MODEL_NAME, RecsDataError, _train, summary), args
    )


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

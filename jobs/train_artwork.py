"""Train the artwork policies as of a date on the impressions logged before it, judge each
one off-policy on the held-out days (replay, IPS, SNIPS, doubly robust), register the
served one in MLflow as `artwork_policy` and write its probabilities per title to Delta.

spark-submit jobs/train_artwork.py --date 2026-03-15 [--train-days 14] [--holdout-days 2]
`marquee artwork evaluate --date D` judges the policies and registers nothing.
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime


def parse_args(argv: list[str] | None, *, evaluate_only: bool = False) -> argparse.Namespace:
    action = "evaluate" if evaluate_only else "train"
    parser = argparse.ArgumentParser(
        prog=f"marquee artwork {action}", description=__doc__.splitlines()[0]
    )
    runtime.add_common_args(parser)
    parser.add_argument("--date", type=runtime.iso_date, required=True, help="the as-of date")
    parser.add_argument(
        "--train-days", type=int, default=14, help="days of impressions to learn from"
    )
    parser.add_argument("--holdout-days", type=int, default=2, help="days that judge the policies")
    parser.add_argument(
        "--explore", type=float, default=0.1, help="traffic the served policy spreads evenly"
    )
    if not evaluate_only:
        parser.add_argument("--no-register", action="store_true", help="log the run only")
        runtime.add_tag_arg(parser)
    args = parser.parse_args(argv)
    if evaluate_only:
        args.no_register, args.tag = True, []
    args.evaluate_only = evaluate_only
    return args


def _train(spark, config, args: argparse.Namespace):
    from feature_store.artwork.steps import ArtworkSettings
    from feature_store.artwork.train import train_register_and_publish
    from feature_store.synthetic.artwork_truth import artwork_ceiling

    settings = ArtworkSettings(
        train_days=args.train_days, holdout_days=args.holdout_days, explore=args.explore
    )
    return train_register_and_publish(
        spark,
        config,
        args.date,
        register=not args.no_register,
        write=not args.evaluate_only,
        ceiling=artwork_ceiling(spark, config),  # None on real data
        settings=settings,
    )


def _main(args: argparse.Namespace) -> int:
    from feature_store.artwork.steps import ArtworkDataError
    from feature_store.artwork.tracking import MODEL_NAME

    job = runtime.TrainingJob(
        MODEL_NAME, ArtworkDataError, _train, lambda run, _: run.format_table()
    )
    return runtime.run_training(job, args)


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


def evaluate_main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv, evaluate_only=True))


if __name__ == "__main__":
    sys.exit(main())

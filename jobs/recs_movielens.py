"""The recommender on MovieLens files: the published benchmark, and top-K for any file.

marquee recs benchmark-movielens --path DIR --format ml-latest-small [--json OUT]
marquee recs recommend --ratings FILE --format ml-100k --k 10 --out recs.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from feature_store import runtime
from feature_store.movielens.files import FORMATS, MovieLensFormatError
from feature_store.recs.evaluate import DEFAULT_K, MOVIELENS_VALIDATION_FOLDS


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    runtime.add_common_args(parser)
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument(
        "--validation-folds",
        type=_positive,
        default=MOVIELENS_VALIDATION_FOLDS,
        help="validation splits the ensemble's settings are chosen on (mean over them)",
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def benchmark_main(argv: list[str] | None = None) -> int:
    parser = _parser(
        "marquee recs benchmark-movielens",
        "every recommender component, the ensemble and popularity under the Microsoft "
        "Recommenders protocol (per-item stratified 75/25 split, seed 42, k=10)",
    )
    parser.add_argument("--path", required=True, help="the MovieLens folder (or its parent)")
    parser.add_argument("--json", type=Path, help="also write the full result here")
    parser.add_argument("--k", type=_positive, default=DEFAULT_K)

    def body(args: argparse.Namespace) -> int:
        from feature_store.movielens.benchmark import benchmark_movielens, format_table

        config = runtime.load(args)
        spark = runtime.session(config, args)
        try:
            result = benchmark_movielens(
                spark, args.path, args.fmt, k=args.k, validation_folds=args.validation_folds
            )
        except MovieLensFormatError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return runtime.EXIT_USAGE
        print(format_table(result))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2, sort_keys=True))
            print(f"result written to {args.json}")
        return runtime.EXIT_OK

    return runtime.run(body, parser.parse_args(argv))


def recommend_main(argv: list[str] | None = None) -> int:
    parser = _parser(
        "marquee recs recommend",
        "train the whole ensemble on a ratings file and write every user's top K unseen items",
    )
    parser.add_argument("--ratings", required=True, type=Path, help="the ratings file")
    parser.add_argument("--k", type=_positive, default=DEFAULT_K)
    parser.add_argument("--out", required=True, type=Path, help="CSV: user_id,item_id,rank")

    def body(args: argparse.Namespace) -> int:
        from feature_store.movielens.files import load_ratings_file
        from feature_store.recs.model import train_ensemble
        from feature_store.recs.models.base import ITEM, RANK, USER

        try:
            data = load_ratings_file(args.ratings, args.fmt)
        except MovieLensFormatError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return runtime.EXIT_USAGE
        if data.items is None:
            print(
                f"note: no title metadata beside {args.ratings}; "
                "the ensemble is built without the content model",
                file=sys.stderr,
            )
        config = runtime.load(args)
        spark = runtime.session(config, args)
        trained = train_ensemble(
            spark,
            data.ratings,
            data.items,
            tags=data.tags,
            k=args.k,
            validation_folds=args.validation_folds,
        )
        users = data.ratings[USER].unique()
        recs = trained.ensemble.recommend(users, args.k)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        recs.sort_values([USER, RANK])[[USER, ITEM, RANK]].to_csv(args.out, index=False)
        blend = trained.validation["blend"]
        weights = ", ".join(f"{n} {w:.1f}" for n, w in blend["weights"].items())
        print(
            f"{len(recs):,} recommendations for {recs[USER].nunique():,} of {len(users):,} users "
            f"written to {args.out}\nensemble: {blend['normalisation']} scores, weights "
            f"{weights} (validation nDCG@{args.k} {blend['ndcg']:.4f})"
        )
        return runtime.EXIT_OK

    return runtime.run(body, parser.parse_args(argv))


if __name__ == "__main__":
    commands = {"benchmark-movielens": benchmark_main, "recommend": recommend_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(f"usage: {sys.argv[0]} {{{' | '.join(commands)}}} [options]", file=sys.stderr)
        sys.exit(runtime.EXIT_USAGE)
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))

"""Benchmark: the recommender at member scale, Spark ALS beside the `implicit` library.

Reads the implicit feedback the platform trains on (`profile_title_interactions` as of
one date, from a lake `bench_features.py` built: 2,000,000 accounts is about 3M profiles
x 20,000 titles) and times

1. ALS at rank 64 on that matrix: Spark MLlib (`ImplicitALS`, the platform's settings)
   beside `implicit` on the same users x items confidences (1 + alpha x value, the same
   objective), with both of implicit's solvers: conjugate gradient (its default) and
   Cholesky (the exact solve Spark does). Seconds per iteration: for Spark, the
   difference between fits of two lengths divided by the extra iterations (what a fit
   costs besides its iterations cancels out); for implicit, the median of its
   per-iteration callbacks. `--spark-defaults` also times MLlib's default blocking
   (10 user and 10 item blocks) to show what the tuning gained.
2. The whole ensemble trained as the platform trains it (`train_ensemble`: validation
   choices, then every component refitted on all rows), seconds per component.
3. Top-K scoring: the top 50 titles of every profile from the ALS factors (blocked matrix
   products and top-K selection in NumPy), and the served list (every component, the
   blend, calibrated re-ranking) for a sample of profiles, or with `--score-sample 0`
   for every profile, written to Delta as batch scoring writes it: profiles per second.
   ``--ensemble-file`` pickles the trained ensemble, or loads it when the file exists, so
   training and scoring at 2M accounts can run in different sessions.

Writes bench/results/recs-<profiles>x<titles>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import functions as F
from run_bench import machine, save_result, with_lake
from threadpoolctl import threadpool_limits

from feature_store import lake as lk
from feature_store import runtime
from feature_store.features.definitions import AS_OF
from feature_store.recs.data import load_platform_data
from feature_store.recs.diversity import GenreSpace
from feature_store.recs.model import train_ensemble
from feature_store.recs.models import ImplicitALS
from feature_store.recs.models.base import USER, Interactions, in_threads, top_k_indices
from feature_store.recs.serving import ServingRecommender
from feature_store.recs.steps import (
    PLATFORM_ALS,
    TOP_PER_PROFILE,
    profile_groups,
    write_top_titles,
)

RANK = 64
MLLIB_DEFAULT_BLOCKS = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--lake", help="lake folder (default: <state_dir>/bench-features)")
    parser.add_argument("--as-of", type=runtime.iso_date, help="default: the latest built date")
    parser.add_argument(
        "--iterations",
        default="1,4",
        help="Spark fit lengths whose difference gives seconds per iteration",
    )
    parser.add_argument("--implicit-iterations", type=int, default=5)
    parser.add_argument("--spark-defaults", action="store_true", help="also MLlib's blocking")
    parser.add_argument("--skip-als", action="store_true", help="no ALS comparison")
    parser.add_argument("--skip-ensemble", action="store_true")
    parser.add_argument(
        "--score-sample",
        type=int,
        default=100_000,
        help="profiles served (0: every profile, written to the lake's recs/top_titles as "
        "batch scoring writes it)",
    )
    parser.add_argument(
        "--factor-sample", type=int, default=0, help="profiles scored from ALS factors (0: all)"
    )
    parser.add_argument(
        "--ensemble-file",
        help="pickle of the trained ensemble: written after training, and when it exists "
        "loaded instead of training (train in one session, score in the next)",
    )
    args = parser.parse_args(argv)
    config = runtime.load(args)
    lake_root = str(Path(args.lake or Path(config.paths.state_dir) / "bench-features").absolute())
    config = with_lake(config, lake_root)
    spark = runtime.session(config, args)
    as_of = args.as_of or _latest_as_of(spark, lake_root)
    result: dict = {
        "benchmark": "recs",
        "machine": machine(),
        "spark": spark.version,
        "implicit": _implicit_version(),
        "driver_memory": config.spark.driver_memory,
        # native BLAS threads per call, inherited by Spark's JVM (unset: one per core)
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "lake": lake_root,
        "as_of": str(as_of),
    }

    started = time.perf_counter()
    data = load_platform_data(spark, lake_root, as_of, label_days=0)
    groups, _ = profile_groups(spark, lake_root, as_of)
    matrix = Interactions(data.interactions, catalogue=data.items["item_id"])
    result["data"] = {
        "interactions": len(data.interactions),
        "profiles": matrix.n_users,
        "titles": matrix.n_items,
        "load_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result["data"]), flush=True)
    name = f"recs-{matrix.n_users}x{matrix.n_items}"

    def save() -> Path:
        return save_result(result, name)

    save()

    if not args.skip_als:
        _compare_als(spark, data, matrix, args, result, save)
    if not args.skip_ensemble:
        trained, result["ensemble"] = _trained_ensemble(spark, data, groups, args.ensemble_file)
        print(json.dumps(result["ensemble"], indent=2), flush=True)
        save()
        serving = ServingRecommender(
            trained.ensemble,
            trained.components["trending"],
            GenreSpace(data.items),
            calibration_weight=0.3,
        )
        if args.score_sample:
            result["scoring_served"] = _serve_sample(serving, matrix, args.score_sample)
        else:
            result["scoring_served"] = _serve_all(spark, lake_root, serving, groups, as_of)
        print(json.dumps(result["scoring_served"]), flush=True)
        if "scoring_als" not in result:
            als = trained.components["als"]
            result["scoring_als"] = _score_from_factors(als, args.factor_sample)
            print(json.dumps(result["scoring_als"]), flush=True)
    path = save()
    print(f"results: {path}")
    return 0


def _trained_ensemble(spark, data, groups, ensemble_file: str | None) -> tuple:
    """The ensemble trained as the platform trains it, and its training figures; with
    ``ensemble_file``, both pickled there, or loaded from there when it exists."""
    stored = Path(ensemble_file) if ensemble_file else None
    if stored is not None and stored.exists():
        started = time.perf_counter()
        with stored.open("rb") as f:
            trained, figures = pickle.load(f)
        print(f"loaded the ensemble trained earlier from {stored}", flush=True)
        return trained, {
            **figures,
            "loaded_from": str(stored),
            "load_seconds": round(time.perf_counter() - started, 1),
        }
    started = time.perf_counter()
    trained = train_ensemble(
        spark,
        data.interactions,
        data.items,
        user_groups=groups,
        catalogue=data.items["item_id"],
        als_params=PLATFORM_ALS,
    )
    figures = {
        "seconds": round(time.perf_counter() - started, 1),
        "validation_seconds": round(trained.validation["seconds"], 1),
        "refit_seconds": {n: round(s, 1) for n, s in trained.fit_seconds.items()},
        "blend": trained.validation["blend"],
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        partial = stored.with_name(stored.name + ".partial")
        with partial.open("wb") as f:
            pickle.dump((trained, figures), f, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(stored)  # a session ending mid-write leaves no half file behind
    return trained, figures


def _compare_als(spark, data, matrix: Interactions, args, result: dict, save) -> None:
    """Spark ALS beside implicit on the platform's matrix, then top-K from its factors."""
    short, long = sorted(int(n) for n in args.iterations.split(","))
    if short >= long:
        raise SystemExit("--iterations needs two different fit lengths, e.g. 1,4")
    als = {**PLATFORM_ALS, "rank": RANK}
    spark_als, fitted = _spark_als(spark, data, als, short, long)
    result["als"] = {"params": als, "spark": spark_als}
    save()
    if args.spark_defaults:
        result["als"]["spark_mllib_default_blocks"], _ = _spark_als(
            spark, data, {**als, "blocks": MLLIB_DEFAULT_BLOCKS}, short, long
        )
        save()
    values = 1.0 + als["alpha"] * data.interactions["rating"].to_numpy(np.float32)
    confidence = sp.csr_matrix((values, (matrix.rows, matrix.cols)), shape=matrix.matrix.shape)
    for solver, use_cg in (("cg", True), ("cholesky", False)):
        result["als"][f"implicit_{solver}"] = _implicit_als(
            confidence, als, use_cg=use_cg, iterations=args.implicit_iterations
        )
        save()
    spark_seconds = result["als"]["spark"]["seconds_per_iteration"]
    result["als"]["spark_over_implicit"] = {
        solver: round(
            spark_seconds / result["als"][f"implicit_{solver}"]["seconds_per_iteration"], 2
        )
        for solver in ("cg", "cholesky")
    }
    if args.spark_defaults:
        default = result["als"]["spark_mllib_default_blocks"]["seconds_per_iteration"]
        result["als"]["tuning_speedup"] = round(default / spark_seconds, 2)
    print(json.dumps(result["als"], indent=2), flush=True)
    save()

    result["scoring_als"] = _score_from_factors(fitted, args.factor_sample)
    print(json.dumps(result["scoring_als"]), flush=True)
    save()


def _latest_as_of(spark, lake_root: str) -> dt.date:
    table = lk.Lake(lake_root).features("profile_title_interactions")
    if not lk.table_exists(spark, table):
        raise SystemExit(
            f"no profile_title_interactions under {lake_root}: run bench/bench_features.py first"
        )
    return lk.read_table(spark, table).agg(F.max(AS_OF)).first()[0]


def _implicit_version() -> str:
    import implicit

    return implicit.__version__


def _spark_als(spark, data, params: dict, short: int, long: int) -> tuple[dict, ImplicitALS]:
    """Fits of ``short`` and ``long`` iterations; their difference per extra iteration.
    Returns the figures and the longer fit."""
    seconds = {}
    for iterations in (short, long):
        model = ImplicitALS(spark, **{**params, "iterations": iterations})
        started = time.perf_counter()
        model.fit(data.interactions)
        seconds[iterations] = time.perf_counter() - started
        print(f"spark ALS {params.get('blocks', 2)} blocks, {iterations} iterations: "
              f"{seconds[iterations]:.1f}s", flush=True)  # fmt: skip
    per_iteration = (seconds[long] - seconds[short]) / (long - short)
    figures = {
        "blocks": model.blocks,
        "fit_seconds": {str(n): round(s, 1) for n, s in seconds.items()},
        "seconds_per_iteration": round(per_iteration, 2),
        "fixed_seconds": round(seconds[short] - short * per_iteration, 1),
    }
    return figures, model


def _implicit_als(confidence: sp.csr_matrix, params: dict, *, use_cg: bool, iterations: int):
    from implicit.cpu.als import AlternatingLeastSquares

    # The matrix already holds 1 + alpha x value, so implicit's alpha stays 1; its
    # regularisation is a plain lambda, Spark's lambda x the row's count: the cost of an
    # iteration does not depend on either.
    model = AlternatingLeastSquares(
        factors=params["rank"],
        regularization=params.get("reg", 0.5),
        alpha=1.0,
        iterations=iterations,
        use_cg=use_cg,
        calculate_training_loss=False,
        random_state=42,
    )
    per_iteration: list[float] = []
    started = time.perf_counter()
    # implicit runs its own thread per core and asks for a single-threaded BLAS inside
    with threadpool_limits(1, "blas"):
        model.fit(
            confidence, show_progress=False, callback=lambda _i, s, _l: per_iteration.append(s)
        )
    total = time.perf_counter() - started
    print(f"implicit ALS ({'cg' if use_cg else 'cholesky'}): {per_iteration}", flush=True)
    return {
        "iterations": iterations,
        "fit_seconds": round(total, 1),
        "iteration_seconds": [round(s, 2) for s in per_iteration],
        "seconds_per_iteration": round(statistics.median(per_iteration), 2),
    }


def _score_from_factors(model: ImplicitALS, sample: int, block: int = 4096) -> dict:
    """Top 50 unseen titles per profile from the ALS factors (blocks on one thread per
    core): for every profile, or for ``sample`` profiles drawn at random (the rate is the
    same; the total is projected)."""
    n_users = model.data.n_users
    users = np.arange(n_users)
    if 0 < sample < n_users:
        users = np.sort(np.random.default_rng(42).choice(n_users, sample, replace=False))
    factors, items = model.user_factors, model.item_factors.T.copy()
    seen = model.data.seen

    def top_50(part: slice) -> int:
        rows = users[part]
        scores = factors[rows] @ items
        scores[seen[rows].nonzero()] = -np.inf
        return top_k_indices(scores, TOP_PER_PROFILE).size

    started = time.perf_counter()
    kept = sum(in_threads(top_50, len(users), block))
    seconds = time.perf_counter() - started
    return {
        "profiles": len(users),
        "titles": model.data.n_items,
        "k": TOP_PER_PROFILE,
        "seconds": round(seconds, 1),
        "profiles_per_second": round(len(users) / seconds),
        "all_profiles_projected_seconds": round(n_users * seconds / len(users)),
        "recommendations": kept,
    }


def _serve_all(spark, lake_root: str, serving: ServingRecommender, groups, as_of) -> dict:
    """Batch scoring of every profile: the served top 50, streamed to Delta
    (``recs/top_titles`` of the benchmark's lake) as the training DAG writes it."""
    started = time.perf_counter()
    rows = write_top_titles(
        spark, lake_root, serving, groups, as_of=as_of, model_version="bench", k=TOP_PER_PROFILE
    )
    return {
        **_served(len(groups), rows, time.perf_counter() - started),
        "written_to": lk.Lake(lake_root).recs("top_titles"),
    }


def _serve_sample(serving: ServingRecommender, matrix: Interactions, n: int) -> dict:
    """The served top 50 (blend and calibration) for ``n`` profiles drawn at random, in
    blocks on one thread per core as batch scoring runs it."""
    rng = np.random.default_rng(42)
    users = rng.choice(matrix.user_ids, min(n, matrix.n_users), replace=False)
    started = time.perf_counter()
    recs = pd.concat(serving.recommend_blocks(users, TOP_PER_PROFILE), ignore_index=True)
    seconds = time.perf_counter() - started
    return {
        **_served(len(users), len(recs), seconds),
        "all_profiles_projected_seconds": round(matrix.n_users * seconds / len(users)),
        "users_served": int(recs[USER].nunique()),
    }


def _served(profiles: int, rows: int, seconds: float) -> dict:
    return {
        "profiles": profiles,
        "k": TOP_PER_PROFILE,
        "seconds": round(seconds, 1),
        "profiles_per_second": round(profiles / seconds),
        "rows": rows,
    }


if __name__ == "__main__":
    sys.exit(main())

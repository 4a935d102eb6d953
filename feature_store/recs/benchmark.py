"""MovieLens benchmark: every candidate model, their ensemble and a popularity baseline
under the Microsoft Recommenders protocol (see :mod:`feature_store.recs.evaluation`).

1. Load the ratings in file order; split them per item, 75/25, seed 42 (train / test).
2. Carve a validation set out of train with the same split (fit-train / validation). All
   choices are made there: EASE's penalty and user weighting, the ensemble's
   normalisation and weights. (ALS's defaults were chosen on this validation set too.)
3. Refit every component on the whole train with the chosen settings, recommend the top k
   unseen items to every test user and score them against the test rows.

``benchmark_movielens`` returns a JSON-ready dict; ``format_table`` prints it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession

from feature_store.recs.ensemble import NORMALISATIONS, Blend, tune_blend
from feature_store.recs.evaluation import (
    BENCHMARK_SPLIT,
    DEFAULT_K,
    ranking_metrics,
    stratified_split,
)
from feature_store.recs.models import EASE, ContentSimilarity, ImplicitALS, Popularity, Recommender
from feature_store.recs.models.base import USER
from feature_store.recs.movielens import MovieLensData, load_movielens

log = logging.getLogger(__name__)

# Chosen on the validation split of ml-latest-small, alone and inside the blend: rank
# 16-128, reg 0.05-1, alpha 0.3-6, binary / rating / centered confidence all land within
# ~0.01 nDCG@10 of each other; this one was best on both counts.
ALS_DEFAULTS = {"rank": 64, "reg": 0.5, "alpha": 3.0, "iterations": 15, "confidence": "centered"}
# EASE settings tried on validation: the penalty, and plain vs user-weighted rows.
EASE_GRID = (
    {"lambda_": 250.0, "user_weight": 0.0},
    {"lambda_": 400.0, "user_weight": 0.0},
    {"lambda_": 400.0, "user_weight": 0.25},
    {"lambda_": 600.0, "user_weight": 0.25},
)
COMPONENTS = ("popularity", "content", "als", "ease")
METRIC_COLUMNS = ("precision", "recall", "ndcg", "map")


def benchmark_movielens(
    spark: SparkSession,
    path: str | Path,
    fmt: str,
    *,
    k: int = DEFAULT_K,
    ease_grid: Sequence[dict] = EASE_GRID,
    als_params: dict | None = None,
    blend_step: float = 0.1,
    normalisations: Sequence[str] = NORMALISATIONS,
) -> dict[str, Any]:
    """Run the benchmark on the MovieLens folder ``path`` in format ``fmt``; per-model
    metrics at ``k``, seconds to fit and to recommend, and the choices made on validation."""
    started = time.perf_counter()
    data = load_movielens(path, fmt)
    log.info("loaded %s: %d ratings", fmt, len(data.ratings))
    train, test = stratified_split(data.ratings, **BENCHMARK_SPLIT)
    fit_train, validation = stratified_split(train, **BENCHMARK_SPLIT)
    als_params = {**ALS_DEFAULTS, **(als_params or {})}
    factories: dict[str, Callable[[], Recommender]] = {
        "popularity": Popularity,
        "content": lambda: ContentSimilarity(data.items, tags=data.tags),
        "als": lambda: ImplicitALS(spark, **als_params),
    }

    # -- validation: EASE's penalty, then the ensemble's weights ------------------------
    val_started = time.perf_counter()
    val_models = {name: make().fit(fit_train) for name, make in factories.items()}
    val_users = validation[USER].unique()
    ease_trials = []
    best_ease, best_ndcg = None, -1.0
    for settings in ease_grid:
        model = EASE(**settings).fit(fit_train)
        ndcg = ranking_metrics(validation, model.recommend(val_users, k), k=k)[f"ndcg@{k}"]
        ease_trials.append({**model.params(), "ndcg": ndcg})
        log.info("validation: EASE %s nDCG@%d %.4f", settings, k, ndcg)
        if ndcg > best_ndcg:
            best_ease, best_ndcg = model, ndcg
        del model  # free a losing items x items matrix before the next fit
    val_models["ease"] = best_ease
    val_component_ndcg = {
        name: ranking_metrics(validation, model.recommend(val_users, k), k=k)[f"ndcg@{k}"]
        for name, model in val_models.items()
    }
    val_blend, trials = tune_blend(
        {name: val_models[name] for name in COMPONENTS},
        validation,
        k=k,
        step=blend_step,
        normalisations=normalisations,
    )
    validation_seconds = time.perf_counter() - val_started

    # -- test: refit on the whole train, recommend, score --------------------------------
    factories["ease"] = lambda: EASE(lambda_=best_ease.lambda_, user_weight=best_ease.user_weight)
    test_users = test[USER].unique()
    models: dict[str, dict[str, Any]] = {}
    fitted: dict[str, Recommender] = {}
    for name in COMPONENTS:
        fitted[name], models[name] = _evaluate(factories[name](), train, test, test_users, k)
    blend = Blend(
        {name: fitted[name] for name in COMPONENTS},
        val_blend.weights,
        normalisation=val_blend.normalisation,
    )
    _, models["ensemble"] = _evaluate(blend, None, test, test_users, k)
    models["ensemble"]["fit_seconds"] = validation_seconds + sum(
        models[n]["fit_seconds"] for n in COMPONENTS
    )

    return {
        "dataset": fmt,
        "path": str(path),
        "k": k,
        "protocol": {
            "split": {**BENCHMARK_SPLIT, "kind": "stratified random (python_stratified_split)"},
            "relevancy": "top_k (every test rating is relevant)",
            "exclude_seen": True,
            "map": "map_at_k: divided by min(relevant, k); 'map' divides by relevant",
            "validation": "the same split applied to train; choices made there only",
        },
        "counts": _counts(data, train, test, validation),
        "models": models,
        "validation": {
            "ease": ease_trials,
            "component_ndcg": val_component_ndcg,
            "blend": {
                "normalisation": val_blend.normalisation,
                "weights": val_blend.weights,
                "ndcg": trials[0]["ndcg"],
                "top_trials": trials[:5],
            },
            "seconds": validation_seconds,
        },
        "seconds": time.perf_counter() - started,
    }


def _evaluate(
    model: Recommender, train: pd.DataFrame | None, test: pd.DataFrame, users, k: int
) -> tuple[Recommender, dict[str, Any]]:
    started = time.perf_counter()
    if train is not None:
        model.fit(train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    recs = model.recommend(users, k)
    recommend_seconds = time.perf_counter() - started
    metrics = ranking_metrics(test, recs, k=k)
    log.info("%s: test nDCG@%d %.4f", model.name, k, metrics[f"ndcg@{k}"])
    return model, {
        "metrics": metrics,
        "fit_seconds": fit_seconds,
        "recommend_seconds": recommend_seconds,
        "params": model.params(),
    }


def _counts(data: MovieLensData, train, test, validation) -> dict[str, int]:
    return {
        "ratings": len(data.ratings),
        "users": int(data.ratings[USER].nunique()),
        "items": int(data.ratings["item_id"].nunique()),
        "train_rows": len(train),
        "test_rows": len(test),
        "test_users": int(test[USER].nunique()),
        "train_items": int(train["item_id"].nunique()),
        "validation_rows": len(validation),
    }


def format_table(result: dict[str, Any]) -> str:
    """The benchmark result as a plain-text table, one row per model."""
    k = result["k"]
    c = result["counts"]
    header = (
        f"MovieLens {result['dataset']}: {c['users']} users, {c['items']} items, "
        f"{c['ratings']} ratings; train {c['train_rows']} / test {c['test_rows']} rows "
        f"(per-item stratified 75/25, seed {result['protocol']['split']['seed']}), k={k}"
    )
    names = ["model", *(f"{m}@{k}" for m in METRIC_COLUMNS), "fit s", "recommend s"]
    rows = []
    for name, entry in result["models"].items():
        m = entry["metrics"]
        rows.append(
            [
                name,
                *(f"{m[f'{metric}@{k}']:.4f}" for metric in METRIC_COLUMNS),
                f"{entry['fit_seconds']:.1f}",
                f"{entry['recommend_seconds']:.1f}",
            ]
        )
    widths = [max(len(r[i]) for r in [names, *rows]) for i in range(len(names))]

    def line(cells):
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    blend = result["validation"]["blend"]
    weights = ", ".join(f"{n} {w:.1f}" for n, w in blend["weights"].items())
    footer = (
        f"ensemble: {blend['normalisation']} scores, weights {weights} "
        f"(validation nDCG@{k} {blend['ndcg']:.4f}); ensemble fit s includes the validation "
        f"work ({result['validation']['seconds']:.1f} s); total {result['seconds']:.1f} s"
    )
    return "\n".join(
        [header, line(names), line(["-" * w for w in widths]), *map(line, rows), footer]
    )

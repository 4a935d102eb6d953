"""MovieLens benchmark: every candidate model, their ensemble and a popularity baseline
under the Microsoft Recommenders protocol (see :mod:`feature_store.recs.evaluate`).

1. Load the ratings in file order; split them per item, 75/25, seed 42 (train / test).
2. Train the ensemble on train (:func:`~feature_store.recs.model.train_ensemble`):
   every choice is made on a validation set carved out of train with the same split.
   (ALS's defaults were chosen on that validation set too.)
3. Recommend the top k unseen items to every test user with each component and the
   ensemble, and score them against the test rows.

``benchmark_movielens`` returns a JSON-ready dict; ``format_table`` prints it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession

from feature_store.movielens.files import MovieLensData, load_movielens
from feature_store.recs.ensemble import NORMALISATIONS
from feature_store.recs.evaluate import (
    BENCHMARK_SPLIT,
    DEFAULT_K,
    MOVIELENS_VALIDATION_FOLDS,
    ranking_metrics,
    stratified_split,
)
from feature_store.recs.model import BLEND_REFINE, BLEND_STEP, EASE_GRID, train_ensemble
from feature_store.recs.models import Recommender
from feature_store.recs.models.base import USER

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("precision", "recall", "ndcg", "map")


def benchmark_movielens(
    spark: SparkSession,
    path: str | Path,
    fmt: str,
    *,
    k: int = DEFAULT_K,
    ease_grid: Sequence[dict] = EASE_GRID,
    als_params: dict | None = None,
    blend_step: float = BLEND_STEP,
    blend_refine: Sequence[float] = BLEND_REFINE,
    normalisations: Sequence[str] = NORMALISATIONS,
    validation_folds: int = MOVIELENS_VALIDATION_FOLDS,
) -> dict[str, Any]:
    """Run the benchmark on the MovieLens folder ``path`` in format ``fmt``; per-model
    metrics at ``k``, seconds to fit and to recommend, and the choices made on validation."""
    started = time.perf_counter()
    data = load_movielens(path, fmt)
    log.info("loaded %s: %d ratings", fmt, len(data.ratings))
    train, test = stratified_split(data.ratings, **BENCHMARK_SPLIT)
    trained = train_ensemble(
        spark,
        train,
        data.items,
        tags=data.tags,
        k=k,
        ease_grid=ease_grid,
        als_params=als_params,
        blend_step=blend_step,
        blend_refine=blend_refine,
        normalisations=normalisations,
        validation_folds=validation_folds,
    )
    test_users = test[USER].unique()
    models: dict[str, dict[str, Any]] = {}
    for name, model in trained.components.items():
        models[name] = {
            **_score(model, test, test_users, k),
            "fit_seconds": trained.fit_seconds[name],
        }
    models["ensemble"] = {
        **_score(trained.ensemble, test, test_users, k),
        "fit_seconds": trained.validation["seconds"] + sum(trained.fit_seconds.values()),
    }
    validation = dict(trained.validation)
    validation_rows = validation.pop("rows")
    return {
        "dataset": fmt,
        "path": str(path),
        "k": k,
        "protocol": {
            "split": {**BENCHMARK_SPLIT, "kind": "stratified random (python_stratified_split)"},
            "relevancy": "top_k (every test rating is relevant)",
            "exclude_seen": True,
            "map": "map_at_k: divided by min(relevant, k); 'map' divides by relevant",
            "validation": (
                f"the same split applied to train with seeds 42..{41 + validation_folds}; "
                "choices made there only, on the mean over those folds"
            ),
        },
        "counts": _counts(data, train, test, validation_rows),
        "models": models,
        "validation": validation,
        "seconds": time.perf_counter() - started,
    }


def _score(model: Recommender, test: pd.DataFrame, users, k: int) -> dict[str, Any]:
    started = time.perf_counter()
    recs = model.recommend(users, k)
    recommend_seconds = time.perf_counter() - started
    metrics = ranking_metrics(test, recs, k=k)
    log.info("%s: test nDCG@%d %.4f", model.name, k, metrics[f"ndcg@{k}"])
    return {"metrics": metrics, "recommend_seconds": recommend_seconds, "params": model.params()}


def _counts(data: MovieLensData, train, test, validation_rows: int) -> dict[str, int]:
    return {
        "ratings": len(data.ratings),
        "users": int(data.ratings[USER].nunique()),
        "items": int(data.ratings["item_id"].nunique()),
        "train_rows": len(train),
        "test_rows": len(test),
        "test_users": int(test[USER].nunique()),
        "train_items": int(train["item_id"].nunique()),
        "validation_rows": validation_rows,
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
    weights = ", ".join(f"{n} {w:.2f}" for n, w in blend["weights"].items())
    footer = (
        f"ensemble: {blend['normalisation']} scores, weights {weights} "
        f"(validation nDCG@{k} {blend['ndcg']:.4f}); ensemble fit s includes the validation "
        f"work ({result['validation']['seconds']:.1f} s); total {result['seconds']:.1f} s"
    )
    return "\n".join(
        [header, line(names), line(["-" * w for w in widths]), *map(line, rows), footer]
    )

"""Train the whole recommender on one set of rating rows.

Carve validation folds out of the rows with the benchmark's split and fit every component
on the rest; choose EASE's settings and then the blend
(:func:`~feature_store.recs.ensemble.tune_blend`) on the mean over the folds; refit every
component on all the rows with the chosen settings and blend them. The MovieLens benchmark
calls this on its training split; ``marquee recs recommend`` on a whole ratings file. The
steps: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from feature_store.recs.ensemble import NORMALISATIONS, Blend, ValidationScores, tune_blend
from feature_store.recs.evaluate import (
    BENCHMARK_SPLIT,
    DEFAULT_K,
    ranking_metrics,
    stratified_split,
)
from feature_store.recs.models import (
    EASE,
    ContentSimilarity,
    ImplicitALS,
    Popularity,
    Recommender,
    TrendingPopularity,
)
from feature_store.recs.models.base import USER, sample_groups, shared_interactions

log = logging.getLogger(__name__)

# Chosen on the validation split of ml-latest-small, alone and inside the blend: rank
# 16-128, reg 0.05-1, alpha 0.3-6, binary / rating / centered confidence all land within
# ~0.01 nDCG@10 of each other; this one was best on both counts.
ALS_DEFAULTS = {"rank": 64, "reg": 0.5, "alpha": 3.0, "iterations": 15, "confidence": "centered"}
# EASE settings tried on validation: the penalty, user-weighted rows and the weight of the
# titles' metadata as extra rows (side_weight; dropped when there is no metadata). On the
# three folds of ml-latest-small alone (nDCG@10): plain 250 / 0 0.2130, 400 / 0 0.2141,
# 400 / 0.25 0.2179, 600 / 0.25 0.2182; with metadata at 600 / 0.25: side 20 0.2254,
# 60 0.2280, 150 0.2288, 400 0.2225; 1000 / 0.25 side 100 0.2294, side 200 0.2292;
# 1500 / 0.25 side 120 0.2288; 300 / 0.25 side 100 0.2263; 600 / 0 and 600 / 0.5 side
# 150 0.2266 and 0.2241.
EASE_GRID = (
    {"lambda_": 400.0, "user_weight": 0.25},
    {"lambda_": 600.0, "user_weight": 0.25},
    {"lambda_": 600.0, "user_weight": 0.25, "side_weight": 150.0},
    {"lambda_": 1000.0, "user_weight": 0.25, "side_weight": 100.0},
    {"lambda_": 1500.0, "user_weight": 0.25, "side_weight": 120.0},
)
COMPONENTS = ("popularity", "trending", "content", "als", "ease")
# The blend's search: a simplex grid of this step over the weights, for every
# normalisation, then moves of these finer steps from the best trial while they help.
# On ml-latest-small's three folds (popularity, content, ALS and plain EASE) this found
# 0.2331 in 194 trials where the whole 0.1 grid found 0.2323 in 858.
BLEND_STEP = 0.2
BLEND_REFINE = (0.1, 0.05)
# Validation users the blend is tuned on at most (every trial holds their scores), and
# at most this many users x catalogue cells: a trial ranks every title for every user,
# so a 20,000-title catalogue is tuned on ~1,250 users rather than 5,000.
MAX_BLEND_USERS = 5_000
MAX_BLEND_CELLS = 25_000_000
# Validation users EASE's settings and the components are judged on at most: a sample
# this size ranks the settings as all of them do, and at 3M profiles scoring every
# validation user once per setting would cost more than the fits.
MAX_VALIDATION_USERS = 50_000


@dataclasses.dataclass
class TrainedEnsemble:
    """The blend of components refitted on all the rows, and how it was chosen."""

    ensemble: Blend
    fit_seconds: dict[str, float]  # per component, the refit on all the rows
    validation: dict[str, Any]  # EASE trials, component nDCG, the blend's choice, seconds

    @property
    def components(self) -> dict[str, Recommender]:
        return self.ensemble.components


def train_ensemble(
    spark: SparkSession,
    ratings: pd.DataFrame,
    items: pd.DataFrame | None,
    *,
    tags: pd.DataFrame | None = None,
    k: int = DEFAULT_K,
    ease_grid: Sequence[dict] = EASE_GRID,
    als_params: dict | None = None,
    blend_step: float = BLEND_STEP,
    blend_refine: Sequence[float] = BLEND_REFINE,
    normalisations: Sequence[str] = NORMALISATIONS,
    user_groups: pd.DataFrame | None = None,
    catalogue: Iterable | None = None,
    validation_folds: int = 1,
    settings_from: TrainedEnsemble | None = None,
    holdout: pd.DataFrame | None = None,
) -> TrainedEnsemble:
    """Choose settings on validation splits of ``ratings``, then fit on all of them.

    ``items`` (item_id, title, genres) feeds the content model; without it (``None``)
    the ensemble is built from the other components. ``user_groups`` (user_id, region,
    segment) replaces plain popularity by trending per region and segment. ``catalogue``
    makes every component score those items too (titles nobody watched yet). With
    ``items``, EASE's grid also tries the titles' metadata as extra rows (``side_weight``).

    ``validation_folds`` > 1 repeats the validation split with the next seeds (43, 44, ...)
    and makes every choice on the mean over the folds: on a small data set the best blend
    of one split often wins by less than that split's own noise.

    ``settings_from``: an ensemble trained on nearly the same rows (the same members a few
    days earlier) whose EASE settings and blend are taken as they are: no validation, only
    the fit of every component on ``ratings``.

    ``holdout``: (user_id, item_id) of what the users did after ``ratings`` (a later
    window). The settings are then chosen by how well models fitted on all of ``ratings``
    predict it, and those models are the ensemble: no random split and no refit.
    """
    if items is None:  # no metadata: the settings that need none
        ease_grid = [s for s in ease_grid if not s.get("side_weight")]
    if not ease_grid:
        raise ValueError("ease_grid needs at least one setting (without side_weight if no items)")
    if validation_folds < 1:
        raise ValueError(f"validation_folds must be at least 1, not {validation_folds}")
    catalogue = None if catalogue is None else list(catalogue)
    factories = _component_factories(spark, items, tags, als_params, user_groups, catalogue)
    make_ease = _ease_factory(items, tags, catalogue)
    if settings_from is not None:
        return _fit_with_settings(ratings, factories, make_ease, settings_from.validation)
    blend_options = {"step": blend_step, "refine": blend_refine, "normalisations": normalisations}
    if holdout is not None and len(holdout):  # (no one came back: random splits instead)
        folds = [(ratings, sample_groups(holdout, USER, MAX_VALIDATION_USERS))]
        return _validated(folds, factories, make_ease, ease_grid, k, blend_options, refit=None)
    folds = [
        _validation_fold(ratings, BENCHMARK_SPLIT["seed"] + fold)
        for fold in range(validation_folds)
    ]
    return _validated(folds, factories, make_ease, ease_grid, k, blend_options, refit=ratings)


def _validated(folds, factories, make_ease, ease_grid, k, blend_options, *, refit):
    """The ensemble whose EASE settings and blend were chosen on ``folds`` ((fit rows,
    validation rows) each, emptied here), fitted on ``refit``'s rows; without ``refit``,
    the one fold's own models."""
    started = time.perf_counter()
    n_folds, validation_rows = len(folds), len(folds[0][1])
    # every fit on a fold (EASE's grid, then the components) shares that fold's one
    # Interactions: the EASE model kept from the grid would otherwise hold its own copy.
    # Each fold's matrix lives until validation ends; only small data uses several folds.
    with shared_interactions(*(fit_rows for fit_rows, _ in folds)):
        ease_trials, chosen_ease, kept_ease = _choose_ease(folds, ease_grid, make_ease, k)
        factories = {**factories, "ease": lambda: make_ease(chosen_ease)}
        component_ndcg, blend_folds, models = _validate_components(
            folds, factories, kept_ease, k, keep=refit is None
        )
    # free the folds' rows and models before the refit: at 3M profiles the fold models
    # (EASE alone is 3 GB) and 22M fold rows kept alive beside the refit ran out of memory
    folds.clear()
    del kept_ease
    blend_started = time.perf_counter()
    blend_trials = tune_blend(blend_folds, k=k, **blend_options)
    blend_seconds = time.perf_counter() - blend_started
    del blend_folds
    validation_seconds = time.perf_counter() - started
    if refit is None:
        fit_seconds = {**models.pop("_seconds"), "ease": _chosen_fit_seconds(ease_trials)}
    else:
        models, fit_seconds = _refit(refit, factories)
    best = blend_trials[0]
    return TrainedEnsemble(
        ensemble=Blend(models, best["weights"], normalisation=best["normalisation"]),
        fit_seconds=fit_seconds,
        validation={
            "folds": n_folds,
            "on": "the later window" if refit is None else "random splits, then refitted",
            "rows": validation_rows,
            "ease": ease_trials,
            "ease_settings": dict(chosen_ease),
            "component_ndcg": component_ndcg,
            "blend": {
                "normalisation": best["normalisation"],
                "weights": best["weights"],
                "ndcg": best["ndcg"],
                "top_trials": blend_trials[:5],
                "trials": len(blend_trials),
                "seconds": blend_seconds,
            },
            "seconds": validation_seconds,
        },
    )


def _fit_with_settings(ratings, factories, make_ease, validation: dict) -> TrainedEnsemble:
    """Every component fitted on ``ratings`` with the EASE settings and blend an earlier
    validation chose (``validation``: a TrainedEnsemble's), which it keeps as its own."""
    factories = {**factories, "ease": lambda: make_ease(validation["ease_settings"])}
    fitted, fit_seconds = _refit(ratings, factories)
    blend = validation["blend"]
    return TrainedEnsemble(
        ensemble=Blend(fitted, blend["weights"], normalisation=blend["normalisation"]),
        fit_seconds=fit_seconds,
        validation={**validation, "seconds": 0.0, "settings_reused": True},
    )


def _component_factories(
    spark: SparkSession,
    items: pd.DataFrame | None,
    tags: pd.DataFrame | None,
    als_params: dict | None,
    user_groups: pd.DataFrame | None,
    catalogue: list | None,
) -> dict[str, Callable[[], Recommender]]:
    """A maker of each component but EASE (whose settings are chosen first)."""
    als_params = {**ALS_DEFAULTS, **(als_params or {})}
    factories: dict[str, Callable[[], Recommender]] = {
        "als": lambda: ImplicitALS(spark, **als_params),
    }
    if user_groups is not None:
        factories["trending"] = lambda: TrendingPopularity(user_groups)
    else:
        factories["popularity"] = Popularity
    if items is not None:
        factories["content"] = lambda: ContentSimilarity(items, tags=tags)
    if catalogue is None:
        return factories
    return {
        name: (lambda make=make: make().with_catalogue(catalogue))
        for name, make in factories.items()
    }


def _ease_factory(
    items: pd.DataFrame | None, tags: pd.DataFrame | None, catalogue: list | None
) -> Callable[[dict], Recommender]:
    def make_ease(settings: dict) -> Recommender:
        model = EASE(**settings, items=items, tags=tags)
        return model if catalogue is None else model.with_catalogue(catalogue)

    return make_ease


def _choose_ease(folds, ease_grid: Sequence[dict], make_ease, k: int):
    """(trials with their mean nDCG over the folds, the chosen settings, the chosen model
    when there is one fold -- no need to fit it again -- else None)."""
    trials = [{**make_ease(settings).params(), "ndcg": 0.0} for settings in ease_grid]
    kept, best_ndcg = None, -1.0
    for fit_rows, validation in folds:
        for trial, settings in zip(trials, ease_grid, strict=True):
            fit_started = time.perf_counter()
            model = make_ease(settings).fit(fit_rows)
            trial["fit_seconds"] = round(time.perf_counter() - fit_started, 2)
            ndcg = _validation_ndcg(model, validation, k)
            log.info("validation: EASE %s nDCG@%d %.4f", settings, k, ndcg)
            trial["ndcg"] += ndcg / len(folds)
            if len(folds) == 1 and ndcg > best_ndcg:
                kept, best_ndcg = model, ndcg
            del model  # free a losing items x items matrix before the next fit
    chosen = ease_grid[int(np.argmax([trial["ndcg"] for trial in trials]))]
    return trials, chosen, kept


def _validate_components(folds, factories, kept_ease, k: int, *, keep: bool):
    """(each component's mean nDCG over the folds, each fold's validation scores for the
    blend search, with ``keep`` the last fold's models and their fit seconds under
    ``_seconds``, else None). A fold's models are freed before the next fold is fitted."""
    component_ndcg: dict[str, float] = {}
    blend_folds: list[ValidationScores] = []
    models = None
    for fit_rows, validation in folds:
        models, seconds = _fit_components(fit_rows, factories, ease=kept_ease)
        kept_ease = None
        names = list(models)
        for name in names:
            ndcg = _validation_ndcg(models[name], validation, k)
            component_ndcg[name] = component_ndcg.get(name, 0.0) + ndcg / len(folds)
        blend_folds.append(
            ValidationScores.of(
                models,
                sample_groups(validation, USER, _blend_users(models[names[0]].data.n_items)),
            )
        )
        models = {**models, "_seconds": seconds} if keep else None
    return component_ndcg, blend_folds, models


def _fit_components(rows: pd.DataFrame, factories, *, ease: Recommender | None = None):
    """(every component fitted on ``rows`` in :data:`COMPONENTS` order, the seconds of
    each fit); ``ease``: an EASE model fitted on them already."""
    fitted: dict[str, Recommender] = {}
    fit_seconds: dict[str, float] = {}
    for name in [n for n in COMPONENTS if n in factories]:
        if name == "ease" and ease is not None:
            fitted[name] = ease
            continue
        started = time.perf_counter()
        fitted[name] = factories[name]().fit(rows)
        fit_seconds[name] = time.perf_counter() - started
    return fitted, fit_seconds


def _refit(ratings: pd.DataFrame, factories) -> tuple[dict, dict]:
    """Every component fitted on all of ``ratings`` (sharing one matrix), with seconds."""
    with shared_interactions(ratings):
        return _fit_components(ratings, factories)


def _chosen_fit_seconds(ease_trials: list[dict]) -> float:
    """The fit seconds of the EASE trial of the best nDCG (the model kept)."""
    return max(ease_trials, key=lambda trial: trial["ndcg"])["fit_seconds"]


def _validation_fold(ratings: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The benchmark's split of ``ratings`` with ``seed``: rows to fit on, and the
    validation rows of at most :data:`MAX_VALIDATION_USERS` users."""
    fit_rows, validation = stratified_split(ratings, **{**BENCHMARK_SPLIT, "seed": seed})
    return fit_rows, sample_groups(validation, USER, MAX_VALIDATION_USERS)


def _validation_ndcg(model: Recommender, validation: pd.DataFrame, k: int) -> float:
    recs = model.recommend(validation[USER].unique(), k)
    return ranking_metrics(validation, recs, k=k)[f"ndcg@{k}"]


def _blend_users(n_items: int) -> int:
    return max(1, min(MAX_BLEND_USERS, MAX_BLEND_CELLS // max(n_items, 1)))

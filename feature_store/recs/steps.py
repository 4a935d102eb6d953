"""Train, evaluate, register and batch-score the recommender on the platform's data.

``train_recommender`` for an as-of date T reads the interactions as of T and the views of
the ``label_days`` after T (the truth), trains the ensemble with calibrated re-ranking,
scores every component, the blends, popularity and the ground truth's ideal ranking
against the truth, logs to MLflow and registers ``recommender``, and writes the top 50 per
profile and the 20 most similar titles per title to Delta. The steps: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.features.definitions import AS_OF
from feature_store.features.retrieval import FeatureStoreReader
from feature_store.recs.data import (
    PlatformData,
    RecsDataError,
    load_platform_data,
    sessions_between,
)
from feature_store.recs.diversity import GenreSpace, beyond_accuracy
from feature_store.recs.evaluate import ranking_metrics, ranking_metrics_at
from feature_store.recs.model import TrainedEnsemble, train_ensemble
from feature_store.recs.models import Popularity, top_k_indices
from feature_store.recs.models.base import (
    ITEM,
    RANK,
    SCORE,
    USER,
    Interactions,
    sample_groups,
)
from feature_store.recs.ranker import (
    LABEL,
    SESSION,
    RankerContext,
    candidate_rows,
    fit_ranker,
    sample_sessions,
    sample_training_rows,
    with_features,
)
from feature_store.recs.serving import CANDIDATES_PER_USER, ServingRecommender
from feature_store.timing import Stopwatch

log = logging.getLogger(__name__)

EVAL_KS = (1, 5, 10, 20)
TOP_PER_PROFILE = 50
SIMILAR_PER_TITLE = 20
# Rank 32, not MovieLens's 64: the synthetic members' tastes have 8 latent dimensions, and
# on a 100,000-account lake ALS alone scored nDCG@10 0.0189 at rank 32 against 0.0182 at
# 64 on the ranker's days (16: 0.0183, 24: 0.0190), 0.0188 against 0.0174 on the held-out
# days, in half the fit time (docs/benchmarks.md).
PLATFORM_ALS = {"confidence": "rating", "alpha": 2.0, "iterations": 10, "rank": 32}
# How the ranker's generators choose their settings (`train_recommender`'s validation).
# On one 100,000-account lake the served (calibrated) lists scored nDCG@10 0.0270 on the
# held-out week both ways; the later days save a refit of every component
# (docs/benchmarks.md).
VALIDATIONS = ("later_days", "random_split")
# (profile ids, title ids, training interactions, *, first_day, last_day, k) -> each
# profile's top k unseen titles (user_id, item_id, score, rank) by what it will watch
Ceiling = Callable[..., pd.DataFrame]


@dataclasses.dataclass
class RecommenderRun:
    """What one training run produced."""

    as_of: dt.date
    serving: ServingRecommender
    trained: TrainedEnsemble
    data: PlatformData
    evaluation: dict[str, dict[str, float]]  # model -> metric -> value ({} without truth)
    metrics_by_k: dict[str, dict[int, float]]  # model -> k -> nDCG@k
    feature_versions: dict[str, int]
    model_version: str | None = None
    scored_rows: int = 0
    similar_rows: int = 0
    ranker_report: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per step

    def format_table(self, k: int) -> str:
        """The run as text: the data, every model's metrics at `k`, the ranker's sessions."""
        if not self.evaluation:
            return (
                f"recommender as of {self.as_of}: no views after that date in the lake, "
                "so no evaluation"
            )
        columns = [
            f"precision@{k}",
            f"recall@{k}",
            f"ndcg@{k}",
            f"map@{k}",
            "coverage",
            "intra_list_diversity",
            "novelty",
            "head_share",
            "miscalibration",
        ]
        short = ["P", "R", "nDCG", "MAP", "cover", "ILD", "novel", "head", "miscal"]
        header = f"{'model':<22}" + "".join(f"{s:>9}" for s in short)
        truth = self.data.truth
        lines = [
            f"recommender as of {self.as_of}: {len(self.data.interactions):,} training rows, "
            f"truth = {len(truth):,} new (profile, title) views of {truth[USER].nunique():,} "
            f"profiles in the next {self.data.label_days} days, k={k}",
            header,
            "-" * len(header),
        ]
        for name, metrics in self.evaluation.items():
            lines.append(
                f"{name:<22}" + "".join(f"{metrics.get(c, float('nan')):>9.4f}" for c in columns)
            )
        sessions = self.ranker_report.get("evaluation", {})
        if sessions:
            lines.append(
                f"per session ({sessions['sessions']:,} sessions with a new title): "
                f"nDCG@{k} ensemble {sessions['ensemble'][f'ndcg@{k}']:.4f}, "
                f"ranker with context {sessions['ranker'][f'ndcg@{k}']:.4f}; top {k} shared "
                f"between a phone at noon and the TV at 21h: "
                f"{sessions['context_list_overlap']:.0%}"
            )
        return "\n".join(lines)


def train_recommender(
    spark: SparkSession,
    config: Config,
    as_of: dt.date,
    *,
    label_days: int = 7,
    ranker_days: int = 3,
    k: int = 10,
    calibration_weight: float = 0.3,
    als_params: dict | None = None,
    ease_grid: tuple[dict, ...] | None = None,
    ceiling: Ceiling | None = None,
    validation: str = "later_days",
) -> RecommenderRun:
    """Train on the interactions as of ``as_of`` and evaluate on the next ``label_days``,
    with ``ceiling``'s lists (``ground_truth_ideal``) beside the models' when given.

    The ranker (``ranker_days`` > 0) learns from the sessions of the ``ranker_days`` up to
    ``as_of``, over candidates from generators fitted on the interactions as of
    ``as_of - ranker_days``: its labels come after everything its features saw.

    ``validation`` (:data:`VALIDATIONS`): how those generators choose EASE's settings and
    the blend: on the views of the ranker's days (no split, no refit), or on a random
    split of their rows, then refitted (an ALS and an EASE fit more).
    """
    if validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {VALIDATIONS}, not {validation!r}")
    lake_root = config.lake
    options: dict[str, Any] = {"als_params": {**PLATFORM_ALS, **(als_params or {})}}
    if ease_grid is not None:
        options["ease_grid"] = ease_grid
    fit_generators = functools.partial(_fit_generators, spark, lake_root, k=k, options=options)
    watch = Stopwatch()
    ranker = generators = None
    ranker_report: dict[str, Any] = {}
    if ranker_days > 0:
        with watch.stage("ranker"):
            ranker, ranker_report, generators = _train_ranker(
                spark, lake_root, as_of, ranker_days, fit_generators, validation
            )
    # The EASE settings and blend chosen for the generators a few days earlier serve the
    # final fit too: validating again would cost an EASE grid and another ALS fit.
    with watch.stage("fit"):
        data, trained, feature_versions = fit_generators(
            as_of, label_days, settings_from=generators
        )
    serving = _serving(trained, data, as_of, calibration_weight, ranker)
    evaluation, by_k = {}, {}
    if not data.truth.empty:
        with watch.stage("evaluate"):
            evaluation, by_k = _evaluate(data, trained, serving, k, ceiling)
        if ranker is not None:
            with watch.stage("evaluate_sessions"):
                sessions = _label_sessions(spark, lake_root, data, as_of, label_days)
                ranker_report["evaluation"] = _evaluate_sessions(serving, sessions, k)
    return RecommenderRun(
        as_of, serving, trained, data, evaluation, by_k, feature_versions,
        ranker_report=ranker_report, seconds=watch.seconds,
    )  # fmt: skip


def _serving(trained, data: PlatformData, as_of: dt.date, calibration_weight: float, ranker):
    """The served recommender; a ranker scores the generators fitted up to ``as_of``."""
    context = None if ranker is None else RankerContext.build(data.items, data.interactions, as_of)
    return ServingRecommender(
        trained.ensemble,
        trained.components["trending"],
        GenreSpace(data.items),
        calibration_weight=calibration_weight,
        ranker=ranker,
        ranker_context=context,
    )


def _label_sessions(spark, lake_root, data: PlatformData, as_of: dt.date, days: int):
    """The sessions of the ``days`` after ``as_of``, from the bronze version ``data`` read."""
    return sessions_between(
        spark,
        lake_root,
        as_of + dt.timedelta(days=1),
        as_of + dt.timedelta(days=days),
        version=data.table_versions["bronze.viewing"],
    )


def _fit_generators(
    spark: SparkSession,
    lake_root: str,
    date: dt.date,
    days_after: int,
    *,
    k: int,
    options,
    settings_from: TrainedEnsemble | None = None,
    validate_on_labels: bool = False,
):
    """(the data as of ``date`` with ``days_after`` label days, the ensemble trained on
    it, the Delta versions read); ``settings_from``: see `train_ensemble`; with
    ``validate_on_labels`` its settings are chosen on the label days (its ``holdout``)."""
    data = load_platform_data(spark, lake_root, date, label_days=days_after)
    groups, versions = profile_groups(spark, lake_root, date)
    log.info(
        "recommender %s: %d interactions, %d profiles, %d titles",
        date,
        len(data.interactions),
        data.interactions[USER].nunique(),
        len(data.items),
    )
    trained = train_ensemble(
        spark,
        data.interactions,
        data.items,
        k=k,
        user_groups=groups,
        catalogue=data.items[ITEM],
        settings_from=settings_from,
        holdout=data.truth if validate_on_labels else None,
        **options,
    )
    return data, trained, {**data.table_versions, **versions}


def _train_ranker(spark, lake_root, as_of, ranker_days, fit_generators, validation):
    """Generators as of ``as_of - ranker_days`` (validated as ``validation`` says); labels
    from the sessions after that."""
    start = as_of - dt.timedelta(days=ranker_days)
    later_days = validation == "later_days"
    data, trained, _ = fit_generators(
        start, ranker_days if later_days else 0, validate_on_labels=later_days
    )
    sessions = _label_sessions(spark, lake_root, data, start, ranker_days)
    sessions = sessions[sessions[USER].isin(set(trained.ensemble.data.user_ids))]
    available = int(sessions[SESSION].nunique())
    sessions = sample_sessions(sessions)
    context = RankerContext.build(data.items, data.interactions, start)
    components = list(trained.components)
    candidates = candidate_rows(trained.ensemble, sessions[USER].unique(), CANDIDATES_PER_USER)
    history = data.interactions[data.interactions[USER].isin(set(sessions[USER]))]
    contexts = sessions.drop(columns=[ITEM]).drop_duplicates(SESSION)
    rows = with_features(candidates, contexts, context, history)
    watched = sessions[[SESSION, ITEM]].drop_duplicates().assign(**{LABEL: 1.0})
    rows = rows.merge(watched, on=[SESSION, ITEM], how="left").fillna({LABEL: 0.0})
    training = sample_training_rows(rows)
    ranker, _ = fit_ranker(spark, training, components)
    report = {
        "generators_as_of": start.isoformat(),
        "label_window": [(start + dt.timedelta(days=1)).isoformat(), as_of.isoformat()],
        "sessions": int(sessions[SESSION].nunique()),
        "sessions_available": available,
        "candidate_rows": len(rows),
        "training_rows": len(training),
        "positives": int(training[LABEL].sum()),
        "candidate_recall": float(rows.groupby(SESSION)[LABEL].max().mean()),
        "params": ranker.params,
    }
    log.info("ranker: %s", report)
    return ranker, report, trained


def _evaluate_sessions(serving, sessions, k: int) -> dict[str, Any]:
    """Per session: the blend's context-free list against the ranker's, both over the same
    candidates; truth = the titles started in that session (unseen before as_of)."""
    sessions = sample_sessions(sessions[_unseen_pairs(serving.ensemble.data, sessions)])
    if sessions.empty:
        return {}
    truth = sessions[[SESSION, ITEM]].rename(columns={SESSION: USER})
    contexts = sessions.drop_duplicates(SESSION)[[SESSION, USER, "device", "local_hour"]]
    candidates = candidate_rows(serving.ensemble, contexts[USER].unique(), serving.candidates)
    ranked = serving.ranked(contexts, candidates)
    ranked = ranked.drop(columns=[USER]).rename(columns={SESSION: USER})
    blend = contexts[[SESSION, USER]].merge(candidates[[USER, ITEM, "blend_rank"]], on=USER)
    blend = blend[blend["blend_rank"] <= k].rename(columns={"blend_rank": RANK})
    blend = blend.drop(columns=[USER]).rename(columns={SESSION: USER})
    blend[SCORE] = -blend[RANK]
    out = {
        "sessions": int(len(contexts)),
        "ensemble": ranking_metrics(truth, blend, k=k),
        "ranker": ranking_metrics(truth, ranked, k=k),
        "context_list_overlap": _context_overlap(serving, contexts[USER].unique()[:500], k),
    }
    log.info(
        "sessions: ensemble nDCG@%d %.4f, ranker %.4f, overlap phone-noon vs tv-night %.2f",
        k,
        out["ensemble"][f"ndcg@{k}"],
        out["ranker"][f"ndcg@{k}"],
        out["context_list_overlap"],
    )
    return out


def _unseen_pairs(trained: Interactions, rows: pd.DataFrame) -> np.ndarray:
    """Whether each (user_id, item_id) row is of a user ``trained`` knows and not among its
    interactions."""
    users, items = rows[USER].to_numpy(), rows[ITEM].to_numpy()
    return rows[USER].isin(trained.user_ids).to_numpy() & ~trained.contains(users, items)


def _context_overlap(serving, users, k: int) -> float:
    """Mean share of a profile's top k kept between a phone at noon and the TV at 21h."""
    lists = []
    for device, hour in (("mobile", 12), ("tv", 21)):
        recs = serving.recommend(users, k, devices=[device] * len(users), hours=[hour] * len(users),
                                 calibrate=False)  # fmt: skip
        lists.append(recs.groupby(USER)[ITEM].agg(set))
    both = lists[0].index.intersection(lists[1].index)
    if not len(both):
        return float("nan")
    return float(np.mean([len(lists[0][u] & lists[1][u]) / k for u in both]))


def profile_groups(
    spark: SparkSession, lake_root: str, as_of: dt.date
) -> tuple[pd.DataFrame, dict[str, int]]:
    """(user_id, region, segment) per profile from profile_daily and account_daily.
    Raises :class:`RecsDataError` when profile_daily has no row for ``as_of``: without
    profiles there is no one to recommend to, and an empty top list must not be served."""
    store = FeatureStoreReader(spark, lake_root, error=RecsDataError)
    frames = {t: store.features(t, as_of=as_of) for t in ("profile_daily", "account_daily")}
    groups = (
        frames["profile_daily"]
        .select(F.col("profile_id").alias(USER), "account_id", "segment")
        .join(frames["account_daily"].select("account_id", "region"), "account_id", "left")
        .select(USER, "region", "segment")
        .toPandas()
    )
    if groups.empty:
        raise RecsDataError(
            f"profile_daily has no profile as of {as_of}: build that date's profile_daily "
            f"and account_daily first (marquee features build --date {as_of})"
        )
    return groups, dict(store.versions)


def _evaluate(data, trained, serving, k, ceiling: Ceiling | None):
    """Every model's metrics against the truth (of at most MAX_EVALUATION_USERS users),
    at k and nDCG at several cut-offs; one model's lists in memory at a time."""
    train = data.interactions
    truth = _evaluation_sample(data.truth)
    users = truth[USER].unique()
    cutoff = max(max(EVAL_KS), k)
    makers = {
        name: functools.partial(model.recommend, users, cutoff)
        for name, model in trained.components.items()
    }
    popularity = Popularity().with_catalogue(data.items[ITEM])
    makers["popularity"] = lambda: popularity.fit(train).recommend(users, cutoff)
    makers["ensemble"] = functools.partial(trained.ensemble.recommend, users, cutoff)
    makers["ensemble_calibrated"] = functools.partial(serving.recommend, users, cutoff)
    if ceiling is not None:
        makers["ground_truth_ideal"] = functools.partial(
            ceiling,
            users,
            data.items[ITEM].to_numpy(),
            train,
            first_day=data.as_of + dt.timedelta(days=1),
            last_day=data.as_of + dt.timedelta(days=data.label_days),
            k=cutoff,
        )
    evaluation, by_k = {}, {}
    for name, make in makers.items():
        recs = make()
        at = ranking_metrics_at(truth, recs, sorted({k, *EVAL_KS}))
        metrics = at[k]
        top_k = recs[recs[RANK] <= k]
        metrics.update(beyond_accuracy(top_k, train, serving.space) if len(top_k) else {})
        evaluation[name] = metrics
        by_k[name] = {cut: at[cut][f"ndcg@{cut}"] for cut in EVAL_KS}
        log.info("recommender %s: nDCG@%d %.4f", name, k, metrics[f"ndcg@{k}"])
    return evaluation, by_k


# Truth users the models are judged on at most, drawn with a fixed seed: the mean nDCG@10
# of 50,000 users has a standard error near 0.0005 here, while eight models' lists for all
# of them took 4.4 minutes at 100,000 accounts, and would take twenty times that at 2M.
MAX_EVALUATION_USERS = 50_000


def _evaluation_sample(truth: pd.DataFrame, n: int = MAX_EVALUATION_USERS) -> pd.DataFrame:
    """The truth rows of at most ``n`` of its users (all of them when there are fewer)."""
    sample = sample_groups(truth, USER, n)
    if sample is not truth:
        log.info(
            "recommender: judged on %d of %d profiles with new views", n, truth[USER].nunique()
        )
    return sample


def score_profiles(
    spark: SparkSession, config: Config, run: RecommenderRun, *, k: int = TOP_PER_PROFILE
) -> int:
    """Top k titles for every profile known on the as-of date, written to Delta
    (``<lake>/recs/top_titles``, partition ``as_of_date``, replaced on re-runs)."""
    profiles, _ = profile_groups(spark, config.lake, run.as_of)
    return write_top_titles(
        spark,
        config.lake,
        run.serving,
        profiles,
        as_of=run.as_of,
        model_version=run.model_version or "unregistered",
        k=k,
    )


def write_top_titles(
    spark: SparkSession,
    lake_root: str,
    serving: ServingRecommender,
    profiles: pd.DataFrame,
    *,
    as_of: dt.date,
    model_version: str,
    k: int = TOP_PER_PROFILE,
) -> int:
    """The served top k of each profile in ``profiles`` (user id, region, segment, as
    :func:`profile_groups` gives them), written to ``<lake>/recs/top_titles`` for
    ``as_of``; returns the rows written. Batch scoring and its benchmark share it."""
    lake = lk.Lake(lake_root)
    # 50 titles for 3M profiles is 150M rows: blocks go to a Parquet staging folder as
    # they come, and one Delta write replaces the date from there
    staging = lake.recs(f"_staging/top_titles/{as_of}")
    lk.delete_path(spark, staging)
    rows, pending, pending_rows = 0, [], 0
    blocks = serving.recommend_blocks(
        profiles[USER].to_numpy(),
        k,
        regions=profiles["region"].to_numpy(),
        segments=profiles["segment"].to_numpy(),
    )
    for recs in blocks:
        pending.append(recs)
        rows += len(recs)
        pending_rows += len(recs)
        if pending_rows >= _STAGING_ROWS:
            _append_staging(spark, pending, staging)
            pending, pending_rows = [], 0
    _append_staging(spark, pending, staging)  # the rest; an empty write makes the folder
    frame = (
        spark.read.schema(_TOP_TITLES_SCHEMA)
        .parquet(staging)
        .select("*", F.lit(model_version).alias("model_version"), F.lit(as_of).alias(AS_OF))
    )
    lk.replace_slice(
        frame, lake.recs("top_titles"), slice_values={AS_OF: as_of}, partition_by=[AS_OF]
    )
    lk.delete_path(spark, staging)
    return rows


_STAGING_ROWS = 2_000_000  # rows per staging write (~40,000 profiles' top 50)
_TOP_TITLES_SCHEMA = "profile_id string, title_id string, score double, rank int"


def _append_staging(spark: SparkSession, frames: list[pd.DataFrame], path: str) -> None:
    recs = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({USER: [], ITEM: [], SCORE: [], RANK: []})
    )
    columns = {USER: "profile_id", ITEM: "title_id"}
    recs = recs.rename(columns=columns)[["profile_id", "title_id", SCORE, RANK]]
    # Above spark.sql.execution.arrow.localRelationThreshold, PySpark makes a partition
    # of every Arrow batch (10,000 rows): without the coalesce each 2M-row flush wrote
    # 200 files (16,000 at 2M accounts) and took 3x longer.
    frame = spark.createDataFrame(recs, _TOP_TITLES_SCHEMA)
    frame.coalesce(spark.sparkContext.defaultParallelism).write.mode("append").parquet(path)


def similar_titles(
    spark: SparkSession, config: Config, run: RecommenderRun, *, k: int = SIMILAR_PER_TITLE
) -> int:
    """The k most similar titles per title, written to ``<lake>/recs/similar_titles``:
    the item model's weights for titles with viewers, content similarity for the rest."""
    lake = lk.Lake(config.lake)
    components = run.trained.components
    item_model = components["ease"]
    watched = np.asarray(item_model.data.binary().sum(axis=0)).ravel() > 0
    weights = getattr(item_model, "weights", None)
    if weights is None:  # co-occurrence: a sparse similarity matrix
        weights = item_model.similarity
    pairs = [_neighbours(weights, np.flatnonzero(watched), item_model.data.item_ids, k)]
    content = components.get("content")
    if content is not None and not watched.all():
        pairs.append(
            _neighbours(content.features, np.flatnonzero(~watched), content.data.item_ids, k)
        )
    frame = spark.createDataFrame(
        pd.concat(pairs, ignore_index=True),
        "title_id string, similar_title_id string, score double, rank int",
    ).select(
        "*",
        F.lit(run.model_version or "unregistered").alias("model_version"),
        F.lit(run.as_of).alias(AS_OF),
    )
    lk.replace_slice(
        frame, lake.recs("similar_titles"), slice_values={AS_OF: run.as_of}, partition_by=[AS_OF]
    )
    return frame.count()


def _neighbours(matrix, rows: np.ndarray, item_ids: np.ndarray, k: int) -> pd.DataFrame:
    """Top k columns per given row of an items x items weight matrix (or, for a sparse
    items x features matrix, of its row-by-row cosine), the item itself excluded."""
    frames = []
    is_features = sp.issparse(matrix) and matrix.shape[0] != matrix.shape[1]
    for start in range(0, len(rows), _NEIGHBOUR_BLOCK):
        block = rows[start : start + _NEIGHBOUR_BLOCK]
        if is_features:
            sims = np.asarray((matrix[block] @ matrix.T).todense())
        else:
            sims = matrix[block]
            sims = np.asarray(sims.todense() if sp.issparse(sims) else sims, dtype=np.float64)
        sims[np.arange(len(block)), block] = -np.inf
        best = top_k_indices(sims, k)
        best_scores = np.take_along_axis(sims, best, axis=1)
        keep = (np.isfinite(best_scores) & (best_scores > 0)).ravel()
        n = best.shape[1]
        frames.append(
            pd.DataFrame(
                {
                    "title_id": np.repeat(item_ids[block], n)[keep],
                    "similar_title_id": item_ids[best.ravel()][keep],
                    SCORE: best_scores.ravel()[keep],
                    RANK: np.tile(np.arange(1, n + 1), len(block))[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


_NEIGHBOUR_BLOCK = 1024


def format_summary(run: RecommenderRun, config: Config, k: int) -> str:
    """`format_table` of the run, then the model version and the rows written."""
    version = run.model_version or "not registered"
    return (
        f"{run.format_table(k)}\n"
        f"model: recommender version {version}; {run.scored_rows:,} top titles for profiles "
        f"and {run.similar_rows:,} similar-title pairs written under {config.lake}/recs"
    )

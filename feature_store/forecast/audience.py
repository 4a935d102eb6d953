"""Audience prediction for new titles: each title's views in its first 28 days, per region,
predicted before it is released.

Features (metadata, cast popularity, similar titles, the region) use the series up to
``known_until`` only, the day before the release (or the last observed day for a title not
yet released), and only titles released by then. A Spark MLlib GBT regressor on
``log1p(views over the release day and the 27 after)``, back by ``expm1``, is judged by
release date against the genre average (WAPE, Spearman within each region). Pure transforms
take DataFrames and explicit dates; :func:`similar_titles` runs on the driver and
:func:`evaluate_audience` runs the fits and the actions. Design: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from feature_store.features.content import item_features
from feature_store.forecast.data import DATE, REGION, TITLE, VIEWS
from feature_store.forecast.model import GBTParams, fitting_input
from feature_store.sources import GENRES

log = logging.getLogger(__name__)

LAUNCH_DAYS = 28
RELEASE, CUTOFF = "release_date", "known_until"
OTHER, WEIGHT, CUM = "other_title_id", "weight", "cum_views"
VIEWS_28D = "views_28d"  # views over the release day and the 27 after (null: incomplete)
LABEL = "label_log1p_views_28d"
PRIMARY_GENRE = "primary_genre"
TRUTH = "truth_log_popularity"
MODEL, BASELINE, CEILING = "gbt", "genre_average", "truth_ceiling"
RAW_PREDICTION, PREDICTION = "log1p_prediction", "prediction"
ALL = "all"
PLATFORM_ARTIFACT = "new_title_audience"  # the final model, in the forecast's MLflow run
CATEGORICAL = (REGION, "kind")
NUMERIC = (
    *[f"has_genre_{g}" for g in GENRES],
    "count_genres",
    "cast_log1p_daily_views_28d_mean",
    "cast_log1p_daily_views_28d_max",
    "count_cast_titles",
    "similar_log1p_daily_views_28d_mean",
    "count_similar_titles",
    "region_log1p_daily_views_28d",
)
_TO_VIEWS = f"SELECT *, GREATEST(EXP({RAW_PREDICTION}) - 1.0, 0.0) AS {PREDICTION} FROM __THIS__"


class AudienceDataError(RuntimeError):
    """Too few launches inside the data to train or to evaluate the audience model."""


@dataclasses.dataclass(frozen=True)
class AudienceSettings:
    eval_days: int = 14  # release days evaluated (the latest whose 28 days are observed)
    neighbours: int = 10  # similar titles per title
    min_train_titles: int = 10
    min_eval_titles: int = 3
    # every leaf holds the rows of at least this many titles' worth (rows per title x 4):
    # a title's regions are near-copies of each other, so a leaf of one title's rows
    # memorises that launch instead of learning from launches
    min_leaf_titles: int = 4
    gbt: GBTParams = dataclasses.field(
        default_factory=lambda: GBTParams(max_iter=60, max_depth=3, min_instances_per_node=5)
    )

    def __post_init__(self) -> None:
        names = ("eval_days", "neighbours", "min_train_titles", "min_eval_titles")
        for name in (*names, "min_leaf_titles"):
            if getattr(self, name) < 1:
                raise ValueError(f"audience setting {name} must be at least 1")

    def params(self) -> dict[str, object]:
        """The settings flattened for a run's params (``gbt.*``, and `LAUNCH_DAYS`)."""
        out: dict[str, object] = {k: v for k, v in dataclasses.asdict(self).items() if k != "gbt"}
        out.update({f"gbt.{k}": v for k, v in self.gbt.as_dict().items()})
        out["launch_days"] = LAUNCH_DAYS
        return out


# --- pure transforms ------------------------------------------------------------------


def audience_rows(
    series: DataFrame, *, titles: DataFrame, first: dt.date, last: dt.date
) -> DataFrame:
    """One row per (region, title) of every title released on or after ``first``: release
    date, ``known_until`` (the day before release, at most ``last``) and ``views_28d``,
    null unless all 28 days lie inside ``first``..``last``. ``series``: the dense series."""
    released = titles.filter(F.col(RELEASE) >= F.lit(first)).select(TITLE, RELEASE)
    window_end = F.date_add(F.col(RELEASE), LAUNCH_DAYS - 1)
    in_launch = (F.col(DATE) >= F.col(RELEASE)) & (F.col(DATE) <= window_end)
    sums = (
        series.join(released, TITLE)
        .groupBy(REGION, TITLE, RELEASE)
        .agg(F.sum(F.when(in_launch, F.col(VIEWS)).otherwise(0)).alias("_views"))
    )
    return sums.select(
        REGION,
        TITLE,
        RELEASE,
        F.least(F.date_sub(F.col(RELEASE), 1), F.lit(last)).alias(CUTOFF),
        F.when(window_end <= F.lit(last), F.col("_views").cast("double")).alias(VIEWS_28D),
    )


def cumulative_views(series: DataFrame) -> DataFrame:
    """region, title_id, date, cum_views: views from the series' first day to ``date``."""
    running = (
        Window.partitionBy(REGION, TITLE)
        .orderBy(DATE)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return series.select(REGION, TITLE, DATE, F.sum(VIEWS).over(running).alias(CUM))


def cast_pairs(titles: DataFrame, *, targets: DataFrame) -> DataFrame:
    """title_id, known_until, other_title_id, weight = cast members the two share.
    ``targets``: title_id, known_until. Which others count is up to :func:`prior_levels`."""
    people = titles.select(F.col(TITLE).alias(OTHER), F.explode("cast").alias("_person"))
    mine = targets.join(titles.select(TITLE, "cast"), TITLE).select(
        TITLE, CUTOFF, F.explode("cast").alias("_person")
    )
    return (
        mine.join(people, "_person")
        .filter(F.col(OTHER) != F.col(TITLE))
        .groupBy(TITLE, CUTOFF, OTHER)
        .agg(F.count(F.lit(1)).cast("double").alias(WEIGHT))
    )


def _window_start(other_release: Column | None, first: dt.date) -> Column:
    start = [F.date_sub(F.col(CUTOFF), LAUNCH_DAYS - 1), F.lit(first)]
    return F.greatest(*start, *([other_release] if other_release is not None else []))


def prior_levels(
    pairs: DataFrame, *, cumulative: DataFrame, titles: DataFrame, first: dt.date, prefix: str
) -> DataFrame:
    """Per (region, title, known_until): how its related titles were watched before it.

    ``pairs``: title_id, known_until, other_title_id, weight. An other title counts only if
    released on or before ``known_until`` (so before the title itself), and only its days
    from max(known_until - 27, its release, ``first``) to ``known_until``: its level is
    views per released day there. Output: ``<prefix>_log1p_daily_views_28d_mean`` (weighted
    mean of log1p level), ``..._max`` (cast only) and ``count_<prefix>_titles``.
    """
    released = titles.select(F.col(TITLE).alias(OTHER), F.col(RELEASE).alias("_other_release"))
    eligible = (
        pairs.join(released, OTHER)
        .filter(F.col("_other_release") <= F.col(CUTOFF))
        .withColumn("_start", _window_start(F.col("_other_release"), first))
    )
    at_end = cumulative.select(
        REGION, F.col(TITLE).alias(OTHER), F.col(DATE).alias(CUTOFF), F.col(CUM).alias("_end")
    )
    before = cumulative.select(
        REGION,
        F.col(TITLE).alias(OTHER),
        F.date_add(F.col(DATE), 1).alias("_start"),
        F.col(CUM).alias("_before"),
    )
    joined = eligible.join(at_end, [OTHER, CUTOFF]).join(before, [REGION, OTHER, "_start"], "left")
    days = F.datediff(F.col(CUTOFF), F.col("_start")) + F.lit(1)
    level = F.log1p((F.col("_end") - F.coalesce(F.col("_before"), F.lit(0))) / days)
    name = f"{prefix}_log1p_daily_views_28d"
    return joined.groupBy(REGION, TITLE, CUTOFF).agg(
        (F.sum(F.col(WEIGHT) * level) / F.sum(WEIGHT)).alias(f"{name}_mean"),
        F.max(level).alias(f"{name}_max"),
        F.count(F.lit(1)).cast("double").alias(f"count_{prefix}_titles"),
    )


def region_levels(series: DataFrame, *, keys: DataFrame, first: dt.date) -> DataFrame:
    """region, known_until, region_log1p_daily_views_28d: log1p of the region's total views
    per day over the 28 days up to ``known_until`` (``keys``: region, known_until)."""
    daily = series.groupBy(REGION, DATE).agg(F.sum(VIEWS).alias("_views"))
    running = Window.partitionBy(REGION).orderBy(DATE).rowsBetween(Window.unboundedPreceding, 0)
    cum = daily.select(REGION, DATE, F.sum("_views").over(running).alias(CUM))
    with_start = keys.withColumn("_start", _window_start(None, first))
    at_end = cum.select(REGION, F.col(DATE).alias(CUTOFF), F.col(CUM).alias("_end"))
    before = cum.select(REGION, F.date_add(F.col(DATE), 1).alias("_start"), F.col(CUM).alias("_b"))
    days = F.datediff(F.col(CUTOFF), F.col("_start")) + F.lit(1)
    return (
        with_start.join(at_end, [REGION, CUTOFF])
        .join(before, [REGION, "_start"], "left")
        .select(
            REGION,
            CUTOFF,
            F.log1p((F.col("_end") - F.coalesce(F.col("_b"), F.lit(0))) / days).alias(
                "region_log1p_daily_views_28d"
            ),
        )
    )


def audience_features(
    rows: DataFrame,
    *,
    titles: DataFrame,
    cast: DataFrame,
    similar: DataFrame,
    region: DataFrame,
) -> DataFrame:
    """:func:`audience_rows` with the label, the primary genre and every model feature
    (0 where a title has no earlier related title, with its count saying so)."""
    meta = titles.select(TITLE, "kind", "genres")
    joined = (
        rows.join(meta, TITLE, "left")
        .join(cast, [REGION, TITLE, CUTOFF], "left")
        .join(similar.drop("similar_log1p_daily_views_28d_max"), [REGION, TITLE, CUTOFF], "left")
        .join(region, [REGION, CUTOFF], "left")
    )
    genre = [
        F.coalesce(F.array_contains("genres", g).cast("double"), F.lit(0.0)).alias(f"has_genre_{g}")
        for g in GENRES
    ]
    filled = [
        F.coalesce(F.col(c).cast("double"), F.lit(0.0)).alias(c)
        for c in NUMERIC
        if c.startswith(("cast_", "count_cast", "similar_", "count_similar", "region_"))
    ]
    return joined.select(
        REGION,
        TITLE,
        RELEASE,
        CUTOFF,
        VIEWS_28D,
        F.log1p(F.col(VIEWS_28D)).alias(LABEL),
        F.coalesce(F.col("kind"), F.lit("unknown")).alias("kind"),
        F.coalesce(F.get(F.col("genres"), 0), F.lit("unknown")).alias(PRIMARY_GENRE),
        *genre,
        F.greatest(F.coalesce(F.size("genres"), F.lit(0)), F.lit(0))
        .cast("double")
        .alias("count_genres"),
        *filled,
    )


def genre_average(train: DataFrame, *, rows: DataFrame) -> DataFrame:
    """``rows`` with ``genre_average``: the mean views_28d of the ``train`` titles in the
    same region with the same primary genre; the region's mean where none has it; the
    mean of every training row where the region has none."""
    by_genre = train.groupBy(REGION, PRIMARY_GENRE).agg(F.avg(VIEWS_28D).alias("_genre"))
    by_region = train.groupBy(REGION).agg(F.avg(VIEWS_28D).alias("_region"))
    overall = train.agg(F.avg(VIEWS_28D).alias("_overall"))
    return (
        rows.join(by_genre, [REGION, PRIMARY_GENRE], "left")
        .join(by_region, REGION, "left")
        .crossJoin(overall)
        .select(*rows.columns, F.coalesce("_genre", "_region", "_overall").alias(BASELINE))
    )


# --- similar titles (driver) ----------------------------------------------------------


def similar_titles(
    catalogue: pd.DataFrame, *, targets: pd.DataFrame, k: int, chunk: int = 512
) -> pd.DataFrame:
    """The ``k`` titles most similar to each target (cosine over genres, kind and cast)
    among those released on or before its ``known_until``: title_id, known_until,
    other_title_id, weight (the similarity, > 0).

    ``catalogue``: title_id, kind, genres, cast, release_date; ``targets``: title_id,
    known_until."""
    columns = [TITLE, CUTOFF, OTHER, WEIGHT]
    if catalogue.empty or targets.empty:
        return pd.DataFrame(columns=columns)
    items = pd.DataFrame(
        {
            "item_id": catalogue[TITLE].to_numpy(),
            "title": "",
            "genres": catalogue["genres"].map(_as_list),
            "kind": catalogue["kind"],
            "cast": catalogue["cast"].map(_as_list),
        }
    )
    ids = np.sort(items["item_id"].unique())
    features = item_features(items, ids, decade_weight=0.0, tag_weight=0.0)
    release = (pd.to_datetime(catalogue.set_index(TITLE)[RELEASE].reindex(ids)).to_numpy()).astype(
        "datetime64[D]"
    )
    targets = targets[targets[TITLE].isin(ids)].reset_index(drop=True)
    where = np.searchsorted(ids, targets[TITLE].to_numpy())
    cutoffs = pd.to_datetime(targets[CUTOFF]).to_numpy().astype("datetime64[D]")
    k = min(k, len(ids))
    frames = []
    for start in range(0, len(targets), chunk):
        rows = where[start : start + chunk]
        sims = (features[rows] @ features.T).toarray()
        # NaT release dates compare False: a title without one is never a neighbour
        eligible = release[None, :] <= cutoffs[start : start + chunk, None]
        eligible[np.arange(len(rows)), rows] = False
        sims = np.where(eligible & (sims > 0), sims, -np.inf)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(sims, top, axis=1)
        r, c = np.nonzero(np.isfinite(picked))
        frames.append(
            pd.DataFrame(
                {
                    TITLE: targets[TITLE].to_numpy()[start + r],
                    CUTOFF: targets[CUTOFF].to_numpy()[start + r],
                    OTHER: ids[top[r, c]],
                    WEIGHT: picked[r, c],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[columns]


def _as_list(value) -> list:
    return [] if value is None or isinstance(value, float) else list(value)


# --- model and metrics ----------------------------------------------------------------


def build_pipeline(params: GBTParams, *, numeric: tuple[str, ...] = NUMERIC) -> Pipeline:
    """The unfitted pipeline on the `numeric` and categorical features, back to views."""
    indexed = [f"{c}_index" for c in CATEGORICAL]
    return Pipeline(
        stages=[
            StringIndexer(inputCols=list(CATEGORICAL), outputCols=indexed, handleInvalid="keep"),
            VectorAssembler(inputCols=[*numeric, *indexed], outputCol="features"),
            GBTRegressor(
                featuresCol="features",
                labelCol=LABEL,
                predictionCol=RAW_PREDICTION,
                maxIter=params.max_iter,
                maxDepth=params.max_depth,
                stepSize=params.step_size,
                subsamplingRate=params.subsampling_rate,
                minInstancesPerNode=params.min_instances_per_node,
                maxBins=params.max_bins,
                seed=params.seed,
            ),
            SQLTransformer(statement=_TO_VIEWS),
        ]
    )


def leaf_params(settings: AudienceSettings, *, rows: int, titles: int) -> GBTParams:
    """The GBT settings with at least ``min_leaf_titles`` titles' worth of rows per leaf."""
    per_title = rows / max(titles, 1)
    floor = math.ceil(settings.min_leaf_titles * per_title)
    return dataclasses.replace(
        settings.gbt, min_instances_per_node=max(settings.gbt.min_instances_per_node, floor)
    )


def _fit(pipeline: Pipeline, rows: DataFrame) -> PipelineModel:
    """A few thousand launch rows at most: one cached partition, so each of the trees'
    hundreds of small jobs is a single task."""
    with fitting_input(rows, partitions=1) as cached:
        return pipeline.fit(cached)


def _score(rows: DataFrame, model: PipelineModel, name: str) -> DataFrame:
    return model.transform(rows).select(*rows.columns, F.col(PREDICTION).alias(name))


def spearman(predicted: pd.Series, actual: pd.Series) -> float:
    """Rank correlation (average ranks for ties); 0 for a constant prediction (it orders
    nothing), NaN when fewer than 3 titles or the actuals are all equal."""
    if len(actual) < 3 or actual.nunique() < 2:
        return float("nan")
    if predicted.nunique() < 2:
        return 0.0
    return float(predicted.rank().corr(actual.rank()))


def audience_metrics(frame: pd.DataFrame, *, models: tuple[str, ...]) -> pd.DataFrame:
    """model, region (``all`` for every row), titles, actual_views, wape, spearman (for
    ``all``: the mean over the regions that have one) from rows of region, views_28d and
    one prediction column per model."""
    out = []
    for name in models:
        regional = [
            _metric_row(group, name, region, spearman(group[name], group[VIEWS_28D]))
            for region, group in frame.groupby(REGION, sort=True)
        ]
        mean_rank = pd.Series([r["spearman"] for r in regional], dtype=float).mean()
        out += [_metric_row(frame, name, ALL, mean_rank), *regional]
    return pd.DataFrame(out)


def _metric_row(group: pd.DataFrame, name: str, region: str, rank: float) -> dict:
    actual = float(group[VIEWS_28D].sum())
    error = float((group[name] - group[VIEWS_28D]).abs().sum())
    return {
        "model": name,
        REGION: region,
        "titles": int(group[TITLE].nunique()),
        "actual_views": actual,
        "wape": error / actual if actual else float("nan"),
        "spearman": rank,
    }


@dataclasses.dataclass
class AudienceResult:
    """What the evaluation and the final fit produced (pandas only, no live frames)."""

    eval_start: dt.date  # first release day evaluated
    eval_end: dt.date  # last release day with all 28 days observed
    train_titles: int
    eval_titles: int
    train_rows: int
    eval_rows: int
    metrics: pd.DataFrame  # model, region, titles, actual_views, wape, spearman
    evaluation: pd.DataFrame  # region, title_id, release_date, views_28d, one column per model
    importances: dict[str, float]
    model: PipelineModel  # the final model, on every title with 28 days observed
    upcoming: pd.DataFrame  # region, title_id, release_date, known_until, predicted_views_28d
    leaf_rows: int = 0  # the final model's minimum rows per leaf (see leaf_params)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m for m in (MODEL, BASELINE, CEILING) if m in self.evaluation.columns)

    def value(self, model: str, metric: str = "wape", region: str = ALL) -> float:
        """One metric of `model` in `region` (default: all regions); NaN when absent."""
        m = self.metrics
        hit = m[(m["model"] == model) & (m[REGION] == region)]
        return float(hit[metric].iloc[0]) if len(hit) else float("nan")

    def improvement(self) -> float:
        """Relative WAPE reduction of the model against the genre average."""
        return 1.0 - self.value(MODEL) / self.value(BASELINE)

    def format_lines(self) -> list[str]:
        """The result as lines of text: the data, each model's metrics, upcoming titles."""
        lines = [
            f"new-title audience (views in the first {LAUNCH_DAYS} days per region): trained "
            f"on {self.train_titles} titles released before {self.eval_start} "
            f"({self.train_rows} region rows), evaluated on {self.eval_titles} released "
            f"{self.eval_start} to {self.eval_end} ({self.eval_rows} region rows)",
            f"{'model':<18}{'WAPE':>8}{'Spearman':>10}  (Spearman: mean over regions)",
        ]
        for name in self.models:
            lines.append(f"{name:<18}{self.value(name):>8.4f}{self.value(name, 'spearman'):>10.3f}")
        lines.append(f"gbt WAPE {self.improvement():.1%} below the genre average")
        regions = sorted(set(self.metrics[REGION]) - {ALL})
        pairs = [
            f"{r} {self.value(MODEL, 'spearman', r):.2f}/{self.value(BASELINE, 'spearman', r):.2f}"
            for r in regions
        ]
        lines.append("Spearman by region (gbt/genre average): " + ", ".join(pairs))
        titles = self.upcoming[TITLE].nunique() if len(self.upcoming) else 0
        lines.append(
            f"predicted before launch: {titles} titles released after {self.eval_end} "
            f"({len(self.upcoming)} region rows)"
        )
        return lines


# --- evaluation and the final fit -----------------------------------------------------


def evaluate_audience(
    series: DataFrame,
    *,
    titles: DataFrame,
    first: dt.date,
    last: dt.date,
    settings: AudienceSettings,
    truth: DataFrame | None = None,
) -> AudienceResult:
    """Evaluate against the genre average (and the truth ceiling when ``truth`` is given),
    then fit on every complete launch and predict the titles still launching.

    ``series``: the dense series from ``first`` to ``last`` (persisted by the caller);
    ``titles``: title_id, kind, genres, cast, release_date.
    Raises :class:`AudienceDataError` when too few launches fit in the window."""
    eval_end = last - dt.timedelta(days=LAUNCH_DAYS - 1)
    eval_start = eval_end - dt.timedelta(days=settings.eval_days - 1)
    rows = audience_rows(series, titles=titles, first=first, last=last).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    frames: list[DataFrame] = [rows]
    try:
        is_eval = F.col(RELEASE) >= F.lit(eval_start)
        complete = F.col(VIEWS_28D).isNotNull()
        counts = _launch_counts(rows.filter(complete), is_eval)
        _check_launches(counts, settings, first=first, eval_start=eval_start, eval_end=eval_end)
        (train_titles, train_rows), (eval_titles, eval_rows) = counts
        features = _launch_features(rows, series, titles, first, settings, frames)
        if truth is not None:
            features = features.join(truth, [TITLE, REGION], "left").fillna({TRUTH: 0.0})
        features = features.persist(StorageLevel.MEMORY_AND_DISK)
        frames.append(features)

        log.info("audience: fitting on %d titles, evaluating %d", train_titles, eval_titles)
        params = leaf_params(settings, rows=train_rows, titles=train_titles)
        train, test = features.filter(complete & ~is_eval), features.filter(complete & is_eval)
        evaluation = _evaluation(train, test, params, with_ceiling=truth is not None)
        final_params = leaf_params(
            settings, rows=train_rows + eval_rows, titles=train_titles + eval_titles
        )
        final, upcoming = _fit_final(features.filter(complete), features, final_params, eval_end)
    finally:
        for frame in frames:
            frame.unpersist()
    models = (MODEL, BASELINE, *((CEILING,) if truth is not None else ()))
    result = AudienceResult(
        eval_start=eval_start,
        eval_end=eval_end,
        train_titles=train_titles,
        eval_titles=eval_titles,
        train_rows=train_rows,
        eval_rows=eval_rows,
        metrics=audience_metrics(evaluation, models=models),
        evaluation=evaluation,
        importances=feature_importances(final),
        leaf_rows=final_params.min_instances_per_node,
        model=final,
        upcoming=upcoming,
    )
    log.info(
        "audience: WAPE gbt %.4f, genre average %.4f (%.1f%% lower)",
        result.value(MODEL),
        result.value(BASELINE),
        100 * result.improvement(),
    )
    return result


def _check_launches(
    counts, settings: AudienceSettings, *, first: dt.date, eval_start: dt.date, eval_end: dt.date
) -> None:
    """Refuse a window where too few launches have all their days to train or evaluate."""
    (train_titles, _), (eval_titles, _) = counts
    if train_titles < settings.min_train_titles or eval_titles < settings.min_eval_titles:
        raise AudienceDataError(
            f"{train_titles} titles released {first} to {eval_start - dt.timedelta(days=1)}"
            f" and {eval_titles} released {eval_start} to {eval_end} have all "
            f"{LAUNCH_DAYS} days in the data; training needs {settings.min_train_titles} "
            f"and evaluation {settings.min_eval_titles}"
        )


def _fit_final(complete: DataFrame, features: DataFrame, params, eval_end: dt.date):
    """The model fitted on every complete launch, and its predictions for the titles
    released after the evaluation window (still launching)."""
    log.info("audience: fitting the final model on every complete launch")
    final = _fit(build_pipeline(params), complete)
    upcoming = (
        _score(features.filter(F.col(RELEASE) > F.lit(eval_end)), final, "predicted_views_28d")
        .select(REGION, TITLE, RELEASE, CUTOFF, "predicted_views_28d")
        .toPandas()
    )
    return final, upcoming.sort_values([TITLE, REGION], ignore_index=True)


def _evaluation(train: DataFrame, test: DataFrame, params, *, with_ceiling: bool):
    """The held-out launches with each model's prediction: the model, the genre average
    and (``with_ceiling``) the model given the hidden truth's popularity."""
    scored = _score(test, _fit(build_pipeline(params), train), MODEL)
    if with_ceiling:
        ceiling = _fit(build_pipeline(params, numeric=(*NUMERIC, TRUTH)), train)
        scored = _score(scored, ceiling, CEILING)
    scored = genre_average(train, rows=scored)
    models = (MODEL, BASELINE, *((CEILING,) if with_ceiling else ()))
    return scored.select(REGION, TITLE, RELEASE, VIEWS_28D, *models).toPandas()


def _launch_counts(complete_rows: DataFrame, is_eval) -> tuple[tuple[int, int], ...]:
    """((titles, rows) released before the evaluation window, (titles, rows) inside it)."""
    counts = complete_rows.groupBy(is_eval.alias("is_eval")).agg(
        F.countDistinct(TITLE).alias("titles"), F.count(F.lit(1)).alias("rows")
    )
    by_split = {r["is_eval"]: (r["titles"], r["rows"]) for r in counts.collect()}
    return by_split.get(False, (0, 0)), by_split.get(True, (0, 0))


def _launch_features(rows, series, titles, first, settings, frames: list[DataFrame]):
    """Every launch row with its features: the title's metadata, its cast's and its most
    similar titles' prior levels, and the region's (cached frames go to ``frames``)."""
    spark = series.sparkSession
    targets = rows.select(TITLE, CUTOFF).distinct()
    catalogue = titles.select(TITLE, "kind", "genres", "cast", RELEASE).toPandas()
    pairs = similar_titles(catalogue, targets=targets.toPandas(), k=settings.neighbours)
    similar_pairs = spark.createDataFrame(
        pairs, f"{TITLE} string, {CUTOFF} date, {OTHER} string, {WEIGHT} double"
    )
    cumulative = cumulative_views(series).persist(StorageLevel.MEMORY_AND_DISK)
    frames.append(cumulative)
    levels = dict(cumulative=cumulative, titles=titles, first=first)
    return audience_features(
        rows,
        titles=titles,
        cast=prior_levels(cast_pairs(titles, targets=targets), prefix="cast", **levels),
        similar=prior_levels(similar_pairs, prefix="similar", **levels),
        region=region_levels(series, keys=rows.select(REGION, CUTOFF).distinct(), first=first),
    )


def feature_importances(model: PipelineModel) -> dict[str, float]:
    """The fitted trees' importance per input column, largest first."""
    names = [*NUMERIC, *[f"{c}_index" for c in CATEGORICAL]]
    values = model.stages[2].featureImportances.toArray()
    return dict(sorted(zip(names, values, strict=True), key=lambda kv: -kv[1]))

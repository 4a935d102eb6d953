"""Rolling-origin backtest: how well each forecaster did on days it had not seen.

At every origin O the model is retrained from scratch on examples whose target day is on or
before O, then forecasts O+1..O+14 for every series: each fold is exactly the situation of a
run on day O. Metrics, per horizon and over all horizons, for all series and for each
region's top titles: WAPE and pooled MASE (below 1 is better than seasonal naive did in
sample). Origins, top titles and why MASE is pooled: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pandas as pd
from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from feature_store.forecast.data import REGION, TITLE
from feature_store.forecast.features import (
    HORIZON,
    LOOKBACK_DAYS,
    ORIGIN,
    SEASONAL_SCALE,
    SUM_28D,
    TARGET_DATE,
    TARGET_VIEWS,
)
from feature_store.forecast.model import (
    MODEL,
    MODELS,
    SEASONAL_NAIVE,
    TRAILING_MEAN,
    GBTParams,
    fit,
)
from feature_store.forecast.model import with_predictions as predict

log = logging.getLogger(__name__)

ALL, TOP = "all", "top"
IS_TOP = "is_top"


def min_history_days(*, horizon: int, min_train_origins: int) -> int:
    """Days of series a backtest needs: 28 days of features, ``min_train_origins`` origins
    whose 14-day targets are all observed before the backtest origin, and 14 days of
    actuals after it."""
    return LOOKBACK_DAYS + 2 * horizon + min_train_origins - 1


def backtest_origins(
    first: dt.date,
    end: dt.date,
    *,
    horizon: int,
    count: int,
    step: int,
    min_train_origins: int,
) -> list[dt.date]:
    """Up to ``count`` origins, ``step`` days apart, the last ``horizon`` days before
    ``end``, none earlier than the history allows; oldest first."""
    earliest = first + dt.timedelta(days=LOOKBACK_DAYS - 1 + horizon + min_train_origins - 1)
    last = end - dt.timedelta(days=horizon)
    origins = [last - dt.timedelta(days=step * i) for i in range(count)]
    return sorted(o for o in origins if o >= earliest)


# The sizing rule's constants (see :func:`plan_backtest`).
SIZED_MAX_ORIGINS = 3
# a sized fold learns from at least a week of origins whose 14 targets are all observed:
# every weekday once, as the final model does many times over
SIZED_FOLD_TRAIN_ORIGINS = 7
# series x days below which the backtest is one origin (a demo or a smoke test: the
# 5,000-account demo holds ~0.6M; 100,000 accounts over 70 days ~4M)
SIZED_FULL_SERIES_DAYS = 1_000_000


@dataclasses.dataclass(frozen=True)
class BacktestPlan:
    """The origins and horizons a backtest evaluates, and the rule that chose them (for
    the run's record: what the quality report is about)."""

    origins: tuple[dt.date, ...]
    horizons: tuple[int, ...]
    rule: str

    def params(self) -> dict[str, object]:
        """The plan for a run's params: origins counted, the horizon range, the rule."""
        return {
            "backtest.origins_evaluated": len(self.origins),
            "backtest.horizons_evaluated": f"{self.horizons[0]}-{self.horizons[-1]}",
            "backtest.rule": self.rule,
        }


def plan_backtest(
    first: dt.date,
    end: dt.date,
    *,
    series_count: int,
    horizon: int,
    step: int,
    min_train_origins: int,
    count: int | None = None,
) -> BacktestPlan:
    """The backtest sized to the data, or ``count`` origins when asked for.

    Horizons: always 1..``horizon``, the whole forecast window: the CDN plan's days and
    the report's per-horizon errors need every one, and scoring them costs little; the
    data decides how many origins, never which horizons.

    Origins (``count`` None), ``step`` days apart, the last ``horizon`` days before
    ``end``:
    - length: only origins whose fold learns from at least
      ``SIZED_FOLD_TRAIN_ORIGINS`` (7) origins with all targets observed, at most
      ``SIZED_MAX_ORIGINS`` (3): an earlier fold's model would learn from a few days and
      say little about the final one. A series too short for any such fold (under 62
      days at the defaults) gets the latest origin the history allows: one;
    - size: fewer than ``SIZED_FULL_SERIES_DAYS`` (1,000,000) series x days gets the
      latest of those origins only: there each fold costs the fits' fixed overhead, not
      data, and the run is a demo or a smoke test.
    So 12 weeks of a real catalogue (20,000 series) get all three; the 70-day demo one.
    With ``count``: that many, as the history allows (``min_train_origins``).
    """
    horizons = tuple(range(1, horizon + 1))
    days = (end - first).days + 1

    def origins(n: int, train_origins: int) -> tuple[dt.date, ...]:
        return tuple(
            backtest_origins(
                first, end, horizon=horizon, count=n, step=step, min_train_origins=train_origins
            )
        )

    if count is not None:
        chosen = origins(count, min_train_origins)
        return BacktestPlan(chosen, horizons, f"{count} asked for, {len(chosen)} fit {days} days")
    sized = origins(SIZED_MAX_ORIGINS, SIZED_FOLD_TRAIN_ORIGINS)
    series_days = series_count * days
    if not sized:
        rule = (
            f"short: in {days} days no fold has {SIZED_FOLD_TRAIN_ORIGINS} fully observed "
            "training origins, so the latest origin only"
        )
        return BacktestPlan(origins(1, min_train_origins), horizons, rule)
    if series_days < SIZED_FULL_SERIES_DAYS:
        rule = (
            f"small: {series_days:,} series x days (under {SIZED_FULL_SERIES_DAYS:,}), so "
            "the latest origin only"
        )
        return BacktestPlan(sized[-1:], horizons, rule)
    rule = (
        f"sized: {len(sized)} of at most {SIZED_MAX_ORIGINS} origins with "
        f"{SIZED_FOLD_TRAIN_ORIGINS}+ fully observed training origins in {days} days"
    )
    return BacktestPlan(sized, horizons, rule)


def training_rows(
    examples: DataFrame,
    *,
    origin: dt.date,
    max_train_origins: int,
    max_rows: int | None = None,
    seed: int = 7,
) -> DataFrame:
    """Examples a model trained on day ``origin`` could have: targets observed by then,
    from the latest ``max_train_origins`` origins; with ``max_rows``, a sample of whole
    series small enough to hold about that many (see :func:`sample_series`)."""
    oldest = origin - dt.timedelta(days=max_train_origins)
    rows = examples.filter(
        (F.col(ORIGIN) >= F.lit(oldest))
        & (F.col(ORIGIN) < F.lit(origin))
        & (F.col(TARGET_DATE) <= F.lit(origin))
        & F.col(TARGET_VIEWS).isNotNull()
    )
    return rows if max_rows is None else sample_series(rows, max_rows=max_rows, seed=seed)


def sample_series(rows: DataFrame, *, max_rows: int, seed: int = 7) -> DataFrame:
    """``rows`` unchanged when they are at most ``max_rows``; otherwise the rows of a
    uniform random share of the (region, title) series, chosen by a hash of the series'
    key so that the same lake and seed always give the same sample.

    Whole series rather than single rows: a series' rows at neighbouring origins are
    near-copies of each other, so rows sampled one by one would spend the budget on
    repeats of the same few series' shapes; whole series give the trees as many distinct
    series as the budget allows. Uniform, unweighted: every row already counts once in
    the loss, so a uniform share of series leaves the loss's expectation unchanged. Why
    a cap at all: one GBT pass per tree over every row of every origin grows with the
    catalogue times the regions (200,000 series x 42 origins x 14 horizons at 20,000
    titles), far past what a few cores fit in minutes, for little gain over a sample."""
    total = rows.count()
    if total <= max_rows:
        return rows
    share = max_rows / total
    buckets = 1_000_000
    bucket = F.pmod(F.xxhash64(F.col(REGION), F.col(TITLE), F.lit(seed)), F.lit(buckets))
    log.info("training on %.1f%% of the series (%d rows, cap %d)", 100 * share, total, max_rows)
    return rows.filter(bucket < F.lit(int(share * buckets)))


def with_top_flag(rows: DataFrame, *, top_n: int) -> DataFrame:
    """``is_top``: the series is among its region's ``top_n`` by views over the 28 days up
    to the origin (ties broken by title id, so exactly ``top_n`` per region)."""
    by_views = Window.partitionBy(ORIGIN, REGION).orderBy(F.col(SUM_28D).desc(), F.col(TITLE))
    # every horizon row of a series shares (sum, title): dense_rank numbers series, not rows
    return rows.withColumn(IS_TOP, F.dense_rank().over(by_views) <= top_n)


def error_sums(
    rows: DataFrame, *, models: tuple[str, ...] = MODELS, by: tuple[str, ...] = ()
) -> DataFrame:
    """Per segment (all / top), ``by`` columns (e.g. region) and horizon: rows, actual
    views, in-sample scale and each model's absolute error, summed. Sums add up, so the
    figures over all horizons come from these."""
    segments = rows.withColumn(
        "segment",
        F.explode(
            F.when(F.col(IS_TOP), F.array(F.lit(ALL), F.lit(TOP))).otherwise(F.array(F.lit(ALL)))
        ),
    )
    return segments.groupBy("segment", *by, HORIZON).agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(TARGET_VIEWS).alias("actual"),
        F.sum(SEASONAL_SCALE).alias("scale"),
        *[F.sum(F.abs(F.col(m) - F.col(TARGET_VIEWS))).alias(f"abs_error_{m}") for m in models],
    )


def metrics_table(
    sums: pd.DataFrame, *, models: tuple[str, ...] = MODELS, by: tuple[str, ...] = ()
) -> pd.DataFrame:
    """WAPE and pooled MASE per segment, ``by`` columns, model and horizon (0 = all
    horizons together), from :func:`error_sums`."""
    keys = ["segment", *by]
    overall = sums.drop(columns=[HORIZON]).groupby(keys, as_index=False).sum()
    overall[HORIZON] = 0
    both = pd.concat([sums, overall], ignore_index=True)
    rows = []
    for record in both.to_dict("records"):
        for m in models:
            error = record[f"abs_error_{m}"]
            rows.append(
                {
                    **{k: record[k] for k in keys},
                    "model": m,
                    HORIZON: int(record[HORIZON]),
                    "wape": error / record["actual"] if record["actual"] else float("nan"),
                    "mase": error / record["scale"] if record["scale"] else float("nan"),
                    "actual_views": float(record["actual"]),
                    "rows": int(record["rows"]),
                }
            )
    return pd.DataFrame(rows).sort_values([*keys, "model", HORIZON], ignore_index=True)


@dataclasses.dataclass
class BacktestResult:
    origins: list[dt.date]
    metrics: pd.DataFrame  # segment, model, horizon (0 = all), wape, mase, actual_views, rows
    predictions: DataFrame  # every backtest row: features, actuals, each model's forecast
    # the same per region, over all horizons only (horizon 0)
    by_region: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    def wape(self, model: str, *, segment: str = ALL, horizon: int = 0) -> float:
        """The WAPE of `model` on `segment` at `horizon` (0: all horizons); NaN when absent."""
        m = self.metrics
        hit = m[(m["segment"] == segment) & (m["model"] == model) & (m[HORIZON] == horizon)]
        return float(hit["wape"].iloc[0]) if len(hit) else float("nan")

    def improvement(self, *, segment: str = ALL, baseline: str = SEASONAL_NAIVE) -> float:
        """Relative WAPE reduction of the model against ``baseline`` (0.15 = 15% lower)."""
        return 1.0 - self.wape(MODEL, segment=segment) / self.wape(baseline, segment=segment)


def run_backtest(
    examples: DataFrame,
    *,
    origins: list[dt.date],
    params: GBTParams,
    max_train_origins: int,
    top_n: int,
    max_training_rows: int | None = None,
) -> BacktestResult:
    """Retrain at every origin on what was known then; score the next days.

    ``examples``: :func:`~feature_store.forecast.features.forecast_examples` rows
    (persisted by the caller: every fold filters them).
    """
    folds = []
    for origin in origins:
        train = training_rows(
            examples,
            origin=origin,
            max_train_origins=max_train_origins,
            max_rows=max_training_rows,
            seed=params.seed,
        )
        log.info("backtest origin %s: fitting the model", origin)
        model: PipelineModel = fit(train, params)
        test = examples.filter((F.col(ORIGIN) == F.lit(origin)) & F.col(TARGET_VIEWS).isNotNull())
        folds.append(predict(test, model))
    predictions = folds[0]
    for fold in folds[1:]:
        predictions = predictions.unionByName(fold)
    # persisted: the metrics, the CDN evaluation and the plots all read these rows
    predictions = with_top_flag(predictions, top_n=top_n).persist(StorageLevel.MEMORY_AND_DISK)
    metrics = metrics_table(error_sums(predictions).toPandas())
    regional = metrics_table(error_sums(predictions, by=(REGION,)).toPandas(), by=(REGION,))
    result = BacktestResult(
        origins, metrics, predictions, regional[regional[HORIZON] == 0].reset_index(drop=True)
    )
    log.info(
        "backtest over %d origins: WAPE gbt %.4f, seasonal naive %.4f, trailing mean %.4f",
        len(origins),
        result.wape(MODEL),
        result.wape(SEASONAL_NAIVE),
        result.wape(TRAILING_MEAN),
    )
    return result

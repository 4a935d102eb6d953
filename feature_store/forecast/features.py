"""Forecast rows: what is known at a forecast origin T, one row per series and horizon.

One global model serves every (region, title) series and every horizon h = 1..14; horizon
is a feature. An origin's features come from the series rows dated in (T - 28, T] only,
plus the target day's calendar and the title's release date. The label is
``log1p(views on T+h) - log1p(mean views of the last 7 days)`` (days since release only,
for a new title), and the view features are expressed the same way.

Pure transforms: DataFrames in and out, explicit dates, no I/O and no actions. Why one
model and this scale: docs/models.md.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from feature_store.forecast.data import DATE, REGION, TITLE, VIEWS
from feature_store.sources import GENRES

LOOKBACK_DAYS = 28  # the window an origin's features summarise: (T - 28, T]
HORIZON_DAYS = 14
SEASONAL_WEEKS = 4  # same-weekday lags: 1 to 4 weeks before the target day
RECENT_LAGS = 7  # views on T, T-1, ..., T-6 as individual features
# release age of titles the catalogue no longer lists (watched before it dropped them):
# treated as long-released back catalogue
UNKNOWN_RELEASE_AGE = 3650

ORIGIN, HORIZON, TARGET_DATE = "origin_date", "horizon", "target_date"
LEVEL = "log_level_7d"  # log1p(mean views of the last 7 released days): a series' scale
TARGET_VIEWS = "target_views"  # views on T + h (null beyond the last observed day)
LABEL = "label_log_ratio"  # log1p(target_views) - level
RELEASE_AGE = "days_since_release_at_target"
# Release age at the origin tells how many of the 28 days were real history: without it
# a title on its launch day (a 7-day level of one day's views, a same-weekday lag at the
# spike) falls into the leaves learnt from not-yet-released titles, whose ratio to a
# level of 0 is huge, and its forecast explodes
RELEASE_AGE_AT_ORIGIN = "days_since_release_at_origin"
SUM_28D = "sum_views_28d"
MEAN_7D = "mean_views_7d"
SAME_WEEKDAY_1W = "views_same_weekday_1w"
LAG_0 = "views_lag_0d"
SEASONAL_SCALE = "seasonal_naive_mae_in_sample"  # MASE's scale, see evaluate.py
NEXT_VIEWS = "next_views"  # origin rows' views on T+1 .. T+h: the targets, never a feature

CATEGORICAL_FEATURES = (REGION, "kind")
NUMERIC_FEATURES = (
    HORIZON,
    LEVEL,
    *[f"rel_views_lag_{k}d" for k in range(RECENT_LAGS)],
    *[f"rel_views_same_weekday_{w}w" for w in range(1, SEASONAL_WEEKS + 1)],
    "rel_mean_views_same_weekday_4w",
    "rel_mean_views_14d",
    "rel_mean_views_28d",
    "share_zero_view_days_28d",
    "target_weekday",
    "target_is_weekend",
    RELEASE_AGE,
    RELEASE_AGE_AT_ORIGIN,
    "is_released_at_target",
    *[f"has_genre_{g}" for g in GENRES],
)


def _lag(k: int) -> str:
    return f"views_lag_{k}d"


def origin_rows(series: DataFrame, *, origins: list[dt.date], ahead: int = 0) -> DataFrame:
    """One row per (region, title, origin) with the 28 days up to the origin as columns.

    ``views_lag_{k}d`` = views on T - k for k = 0..27, read with ``lag`` over each series
    in date order, so no origin ever sees a later day. Origins whose window is not 28
    consecutive days of the series (it starts before the series does, or a day is
    missing) are dropped, never padded. With ``ahead`` > 0, also ``next_views``: the
    views on T+1 .. T+ahead (null past the series' end or on a missing day), the targets
    :func:`examples_from_origins` reads -- never a feature.

    Lags and leads over one sorted pass, not every row copied to the 28 origins it feeds
    and summed back, nor a join for the targets: that explode and join were most of the
    cost of building the examples.
    """
    if not origins:
        raise ValueError("origin_rows needs at least one origin date")
    # one ordering (a day number, which range frames need) for the lags and the leads
    by_day = Window.partitionBy(REGION, TITLE).orderBy(F.unix_date(F.col(DATE)))
    lags = [F.lag(VIEWS, k).over(by_day).cast("double") for k in range(LOOKBACK_DAYS)]
    # the row 27 back is 27 days back only when the window holds every day once
    span = F.datediff(F.col(DATE), F.lag(DATE, LOOKBACK_DAYS - 1).over(by_day))
    # the row dated T+h exactly (a frame of that one day), whatever days are missing
    leads = [
        F.first(VIEWS).over(by_day.rangeBetween(h, h)).cast("double") for h in range(1, ahead + 1)
    ]
    zero_days = [F.when(F.col(_lag(k)) == 0, 1.0).otherwise(0.0) for k in range(LOOKBACK_DAYS)]
    total_zero = zero_days[0]
    for z in zero_days[1:]:
        total_zero = total_zero + z
    windowed = series.select(
        REGION,
        TITLE,
        F.col(DATE).alias(ORIGIN),
        *[lag.alias(_lag(k)) for k, lag in enumerate(lags)],
        span.alias("_span"),
        *([F.array(*leads).alias(NEXT_VIEWS)] if leads else []),
    ).filter(F.col(ORIGIN).isin(sorted(set(origins))) & (F.col("_span") == LOOKBACK_DAYS - 1))
    return windowed.select(
        REGION,
        TITLE,
        ORIGIN,
        *[_lag(k) for k in range(LOOKBACK_DAYS)],
        (total_zero / F.lit(float(LOOKBACK_DAYS))).alias("share_zero_view_days_28d"),
        *([NEXT_VIEWS] if leads else []),
    )


def _mean(first: int, last: int) -> Column:
    """Mean of views_lag_{first}d .. views_lag_{last}d."""
    cols = [F.col(_lag(k)) for k in range(first, last + 1)]
    total = cols[0]
    for c in cols[1:]:
        total = total + c
    return total / F.lit(float(len(cols)))


def _rel(value: Column) -> Column:
    return F.log1p(value) - F.col(LEVEL)


def horizon_rows(
    origin_rows: DataFrame, *, titles: DataFrame, horizons: tuple[int, ...] | None = None
) -> DataFrame:
    """Origin rows expanded to one row per horizon, with every model feature.

    ``titles``: title_id, kind, genres, release_date (known in advance). Keeps the raw
    values the baselines and metrics need: views on T (``views_lag_0d``), the mean of
    the last 7 days, the same weekday as the target in the last week, the 28-day sum
    (for ranking top titles) and the in-sample seasonal-naive MAE.
    """
    horizons = horizons or tuple(range(1, HORIZON_DAYS + 1))
    attributes = titles.select(TITLE, "kind", "genres", "release_date")
    age_at_origin = F.datediff(F.col(ORIGIN), F.col("release_date"))
    expanded = (
        origin_rows.join(attributes, TITLE, "left")
        .withColumn(HORIZON, F.explode(F.array(*[F.lit(h) for h in horizons])))
        .withColumn(TARGET_DATE, F.date_add(F.col(ORIGIN), F.col(HORIZON)))
        .withColumn(MEAN_7D, _mean(0, 6))
        .withColumn(LEVEL, _level(age_at_origin))
    )
    same = [_same_weekday(w) for w in range(1, SEASONAL_WEEKS + 1)]
    return expanded.select(
        REGION,
        TITLE,
        ORIGIN,
        HORIZON,
        TARGET_DATE,
        F.coalesce(F.col("kind"), F.lit("unknown")).alias("kind"),
        F.col(LEVEL),
        *_relative_views(same),
        "share_zero_view_days_28d",
        *_calendar_and_age(age_at_origin),
        *[
            F.coalesce(F.array_contains("genres", g).cast("double"), F.lit(0.0)).alias(
                f"has_genre_{g}"
            )
            for g in GENRES
        ],
        # raw values for the baselines, the metrics and the CDN baseline
        F.col(_lag(0)).alias(LAG_0),
        F.col(MEAN_7D),
        same[0].alias(SAME_WEEKDAY_1W),
        (_mean(0, 27) * F.lit(float(LOOKBACK_DAYS))).alias(SUM_28D),
        _seasonal_naive_scale().alias(SEASONAL_SCALE),
        *([NEXT_VIEWS] if NEXT_VIEWS in origin_rows.columns else []),
    )


def _same_weekday(weeks_back: int) -> Column:
    """The views of the day ``weeks_back`` weeks before the target on its weekday: the
    most recent day at or before T on the target's weekday is T - offset."""
    lags = F.array(*[F.col(_lag(k)) for k in range(LOOKBACK_DAYS)])
    offset = (F.lit(7) - F.col(HORIZON) % 7) % 7
    return F.element_at(lags, offset + F.lit(7 * (weeks_back - 1) + 1))


def _seasonal_naive_scale() -> Column:
    """In-sample seasonal naive MAE over the window: |y_t - y_{t-7}| for the 21 days that
    have a value a week earlier inside it."""
    diffs = [F.abs(F.col(_lag(k)) - F.col(_lag(k + 7))) for k in range(LOOKBACK_DAYS - 7)]
    return _sum(diffs) / F.lit(float(len(diffs)))


def _sum(columns: list[Column]) -> Column:
    total = columns[0]
    for column in columns[1:]:
        total = total + column
    return total


def _level(age_at_origin: Column) -> Column:
    """log1p of the mean views of the released days of the last 7 only: a title 2 days
    after its launch has a level of 2 days' views, not 2/7 of it (which would make every
    ratio of a new title look like a surge); 0 before release, 7 days when not in the
    catalogue."""
    released = F.coalesce(F.least(F.greatest(age_at_origin + 1, F.lit(0)), F.lit(7)), F.lit(7))
    sum_7d = _mean(0, 6) * F.lit(7.0)
    return F.log1p(sum_7d / F.greatest(released, F.lit(1)).cast("double"))


def _relative_views(same: list[Column]) -> list[Column]:
    """Recent lags, same-weekday values and means, each relative to the level."""
    same_mean = _sum(same) / F.lit(float(SEASONAL_WEEKS))
    return [
        *[_rel(F.col(_lag(k))).alias(f"rel_{_lag(k)}") for k in range(RECENT_LAGS)],
        *[_rel(s).alias(f"rel_views_same_weekday_{w}w") for w, s in enumerate(same, 1)],
        _rel(same_mean).alias("rel_mean_views_same_weekday_4w"),
        _rel(_mean(0, 13)).alias("rel_mean_views_14d"),
        _rel(_mean(0, 27)).alias("rel_mean_views_28d"),
    ]


def _calendar_and_age(age_at_origin: Column) -> list[Column]:
    """The target's weekday and weekend flag, and the title's age at target and origin."""
    weekday = (F.dayofweek(TARGET_DATE) + 5) % 7  # Monday 0 .. Sunday 6
    release_age = F.datediff(F.col(TARGET_DATE), F.col("release_date"))
    return [
        weekday.cast("double").alias("target_weekday"),
        (weekday >= 5).cast("double").alias("target_is_weekend"),
        F.coalesce(release_age, F.lit(UNKNOWN_RELEASE_AGE)).cast("double").alias(RELEASE_AGE),
        F.coalesce(age_at_origin, F.lit(UNKNOWN_RELEASE_AGE))
        .cast("double")
        .alias(RELEASE_AGE_AT_ORIGIN),
        F.coalesce(release_age >= 0, F.lit(True)).cast("double").alias("is_released_at_target"),
    ]


def examples_from_origins(
    origin_rows: DataFrame, *, titles: DataFrame, horizons: tuple[int, ...] | None = None
) -> DataFrame:
    """:func:`horizon_rows` of origin rows made with ``ahead``, plus the views on the
    target day and the model's label (null where the target day is past the end of the
    series: those rows are forecasts, not training examples)."""
    rows = horizon_rows(origin_rows, titles=titles, horizons=horizons)
    target = F.element_at(F.col(NEXT_VIEWS), F.col(HORIZON))
    return (
        rows.withColumn(TARGET_VIEWS, target)
        .drop(NEXT_VIEWS)
        .withColumn(LABEL, F.log1p(F.col(TARGET_VIEWS)) - F.col(LEVEL))
    )


def forecast_examples(
    series: DataFrame,
    *,
    titles: DataFrame,
    origins: list[dt.date],
    horizons: tuple[int, ...] | None = None,
) -> DataFrame:
    """Every (series, origin, horizon) row with features known at the origin and, where
    the series reaches it, the target."""
    horizons = horizons or tuple(range(1, HORIZON_DAYS + 1))
    windows = origin_rows(series, origins=origins, ahead=max(horizons))
    return examples_from_origins(windows, titles=titles, horizons=horizons)


def feature_origins(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every origin from the first with a full 28-day window to ``last``."""
    start = first + dt.timedelta(days=LOOKBACK_DAYS - 1)
    return [start + dt.timedelta(days=i) for i in range((last - start).days + 1)]

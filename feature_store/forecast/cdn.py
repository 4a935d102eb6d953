"""CDN pre-positioning: which titles each region's edge storage should hold.

Given a per-region storage budget, the plan maximizes the forecast views of the stored
titles over the next ``plan_days``. A title's size is its runtime times the bitrate
ladder's sum (a series is stored whole). Selection is a 0/1 knapsack per region: greedy by
forecast views per GB, then compared with the single most-viewed title that fits. The
baseline, "yesterday's top titles", fills the same budget by the last day's views.
Candidates are aggregated in Spark; the fill runs on the driver in pandas. Why:
docs/models.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from feature_store.forecast.data import REGION, TITLE
from feature_store.forecast.features import HORIZON, LAG_0, ORIGIN, TARGET_VIEWS
from feature_store.forecast.model import MODEL

log = logging.getLogger(__name__)

# The renditions every title is encoded in (Mbit/s), 240p up to 4K: a per-title
# encoding ladder of the kind streaming services publish.
BITRATE_LADDER_MBPS = (0.235, 0.375, 0.56, 1.05, 1.75, 3.0, 5.8, 16.0)
SIZE_GB, SCORE, BUDGET_GB = "size_gb", "score", "budget_gb"
PICK_RANK, USED_GB = "pick_rank", "used_gb"
BY_DENSITY, BY_SCORE = "views_per_gb", "views"
PLAN, YESTERDAY, ORACLE = "forecast_plan", "yesterdays_top", "oracle"
PLAN_COLUMNS = [REGION, TITLE, SIZE_GB, SCORE, BUDGET_GB, PICK_RANK, USED_GB]


def title_sizes(titles: DataFrame, *, ladder: tuple[float, ...] = BITRATE_LADDER_MBPS) -> DataFrame:
    """title_id, size_gb: every rendition of the whole title (all episodes of a series)."""
    runtime_s = (
        F.col("duration_minutes").cast("double")
        * F.greatest(F.coalesce(F.col("episodes"), F.lit(0)), F.lit(1))
        * F.lit(60.0)
    )
    return titles.select(TITLE, (runtime_s * F.lit(sum(ladder)) / F.lit(8000.0)).alias(SIZE_GB))


def region_budget(budget_gb: float | Mapping[str, float], region: str) -> float:
    """One figure for every region, or one per region (regions not listed get none:
    nothing is planned for them)."""
    if isinstance(budget_gb, Mapping):
        return float(budget_gb.get(region, 0.0))
    return float(budget_gb)


def greedy_fill(frame: pd.DataFrame, *, budget: float, order: str = BY_DENSITY) -> pd.DataFrame:
    """The titles one region stores: ``frame`` holds title_id, size_gb and score
    (expected views); returns the picked rows in pick order with the storage used after
    each. Titles with no expected views are never stored."""
    candidates = frame[(frame[SCORE] > 0) & (frame[SIZE_GB] > 0)].copy()
    candidates["_key"] = (
        candidates[SCORE] / candidates[SIZE_GB] if order == BY_DENSITY else candidates[SCORE]
    )
    candidates = candidates.sort_values(
        ["_key", SCORE, TITLE], ascending=[False, False, True], kind="mergesort"
    )
    picked, used = [], 0.0
    for index, size in zip(candidates.index, candidates[SIZE_GB], strict=True):
        if used + size <= budget + 1e-9:
            picked.append(index)
            used += size
    chosen = candidates.loc[picked]
    if order == BY_DENSITY:
        fits = candidates[candidates[SIZE_GB] <= budget + 1e-9]
        if len(fits) and fits[SCORE].max() > chosen[SCORE].sum():
            chosen = fits.loc[[fits[SCORE].idxmax()]]
    chosen = chosen.drop(columns=["_key"]).reset_index(drop=True)
    chosen[BUDGET_GB] = budget
    chosen[PICK_RANK] = range(1, len(chosen) + 1)
    chosen[USED_GB] = chosen[SIZE_GB].cumsum()
    return chosen


def select_titles(
    candidates: pd.DataFrame,
    *,
    budget_gb: float | Mapping[str, float],
    order: str = BY_DENSITY,
    group_by: tuple[str, ...] = (REGION,),
) -> pd.DataFrame:
    """Per group (a region; a region and origin in the backtest) the titles to store.

    ``candidates``: the group columns, title_id, size_gb and score (expected views).
    Returns the group columns, title_id, size_gb, score, budget_gb, pick_rank, used_gb.
    """
    columns = [*group_by, *[c for c in PLAN_COLUMNS if c not in group_by]]
    frames = []
    for key, group in candidates.groupby(list(group_by), sort=True):
        values = dict(zip(group_by, key if isinstance(key, tuple) else (key,), strict=True))
        picked = greedy_fill(group, budget=region_budget(budget_gb, values[REGION]), order=order)
        frames.append(picked.assign(**values))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def hit_rates(
    plan: pd.DataFrame, actual: pd.DataFrame, *, group_by: tuple[str, ...] = (REGION,)
) -> pd.DataFrame:
    """Per group: views of stored titles, all views, and their ratio (the local hit rate).

    ``plan``: group columns and title_id of the stored titles; ``actual``: group columns,
    title_id and views.
    """
    keys = [*group_by, TITLE]
    stored = plan[keys].drop_duplicates().assign(_stored=True)
    joined = actual.merge(stored, on=keys, how="left")
    joined["served"] = joined["views"].where(joined["_stored"].eq(True), 0.0)
    out = joined.groupby(list(group_by), as_index=False).agg(
        served_views=("served", "sum"), total_views=("views", "sum")
    )
    total = out["total_views"].where(out["total_views"] > 0)
    out["hit_rate"] = out["served_views"] / total  # NaN for a group nobody watched
    return out


def plan_candidates(forecast: DataFrame, *, sizes: DataFrame, plan_days: int) -> DataFrame:
    """Region, title_id, size_gb and score = forecast views over the next ``plan_days``
    (``forecast``: region, title_id, horizon, forecast_views)."""
    return (
        forecast.filter(F.col(HORIZON) <= plan_days)
        .groupBy(REGION, TITLE)
        .agg(F.sum("forecast_views").alias(SCORE))
        .join(sizes, TITLE, "left")
        .fillna({SIZE_GB: 0.0})
    )


def backtest_candidates(predictions: DataFrame, *, sizes: DataFrame, plan_days: int) -> DataFrame:
    """Per backtest origin, region and title: size, the model's forecast views over the
    next ``plan_days`` (``forecast_plan``), the views on the origin day
    (``yesterdays_top``) and the views that followed (``oracle``, also the actuals)."""
    return (
        predictions.filter(F.col(HORIZON) <= plan_days)
        .groupBy(ORIGIN, REGION, TITLE)
        .agg(
            F.sum(MODEL).alias(PLAN),
            F.max(LAG_0).alias(YESTERDAY),
            F.sum(TARGET_VIEWS).alias(ORACLE),
        )
        .join(sizes, TITLE, "left")
        .fillna({SIZE_GB: 0.0})
    )


def backtest_hit_rates(
    candidates: pd.DataFrame, *, budget_gb: float | Mapping[str, float]
) -> pd.DataFrame:
    """Each backtest origin's plans against what was then watched: strategy, region,
    served_views, total_views (summed over origins).

    Strategies: the forecast plan (greedy by forecast views per GB), yesterday's top
    titles (by views on the origin day), and the oracle (greedy on the actual views: the
    ceiling any forecast could reach under this budget).
    """
    keys = (ORIGIN, REGION)
    actual = candidates[[*keys, TITLE, ORACLE]].rename(columns={ORACLE: "views"})
    frames = []
    for strategy, order in ((PLAN, BY_DENSITY), (YESTERDAY, BY_SCORE), (ORACLE, BY_DENSITY)):
        scored = candidates[[*keys, TITLE, SIZE_GB, strategy]].rename(columns={strategy: SCORE})
        plan = select_titles(scored, budget_gb=budget_gb, order=order, group_by=keys)
        frames.append(hit_rates(plan, actual, group_by=keys).assign(strategy=strategy))
    rates = pd.concat(frames, ignore_index=True)
    return rates.groupby(["strategy", REGION], as_index=False)[
        ["served_views", "total_views"]
    ].sum()

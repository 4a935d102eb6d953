"""Regional popularity forecasts and the CDN plan for one as-of date: the settings, the
run's result and its outputs.

The job (:func:`feature_store.forecast.train.train_forecast`) backtests the model on
rolling origins against seasonal naive and the 7-day trailing mean, trains the final model,
forecasts the next 14 days of every region x title, plans each region's pre-positioning,
evaluates and fits the new-title audience model, logs to MLflow, registers
``popularity_forecast`` and replaces the ``as_of_date`` partition of its outputs. It needs
``ForecastSettings.min_days`` days of ``region_title_daily`` ending on ``as_of`` (56 with
the defaults). The steps: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features.definitions import AS_OF
from feature_store.forecast import cdn
from feature_store.forecast.audience import (
    AudienceDataError,
    AudienceResult,
    AudienceSettings,
    evaluate_audience,
)
from feature_store.forecast.data import (
    DATE,
    REGION,
    TITLE,
    VIEWS,
    SeriesData,
)
from feature_store.forecast.evaluate import (
    ALL,
    IS_TOP,
    TOP,
    BacktestPlan,
    BacktestResult,
    min_history_days,
    plan_backtest,
)
from feature_store.forecast.features import (
    HORIZON,
    HORIZON_DAYS,
    LOOKBACK_DAYS,
    ORIGIN,
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
)

log = logging.getLogger(__name__)

MODEL_NAME = "popularity_forecast"
FORECASTS, PLAN, AUDIENCE = "popularity_forecast", "cdn_plan", "new_title_audience"
FORECAST_VIEWS = "forecast_views"
TARGET_IMPROVEMENT = 0.15  # the bar: WAPE at least 15% below seasonal naive
PLOT_SERIES = 4  # top series drawn in the forecast-against-actuals plot


def output_path(lake_root: str, table: str) -> str:
    """``<lake>/predictions/<table>``: where serving and planning pull model outputs."""
    return lk.Lake(lake_root).predictions(table)


@dataclasses.dataclass(frozen=True)
class ForecastSettings:
    horizon: int = HORIZON_DAYS
    # None: sized to the data (see backtest.plan_backtest); a number: that many origins
    backtest_origins: int | None = None
    backtest_step_days: int = 7
    # origins with all 14 targets observed before a fold's origin (the later ones, with
    # fewer targets observed, train too): 1 lets 8 weeks of history -- the demo's --
    # hold 28 days of features, 14 training origins and 14 days of actuals
    min_train_origins: int = 1
    max_train_origins: int = 42  # the latest origins a model learns from (6 weeks)
    # rows a model fits on at most (a sample of whole series beyond): see sample_series
    max_training_rows: int = 400_000
    top_n: int = 100  # "top titles" of a region, by views over the 28 days up to the origin
    plan_days: int = 7  # the CDN plan stores what the next days are expected to watch
    budget_gb: float | Mapping[str, float] = 2000.0  # storage per region (or per region)
    gbt: GBTParams = dataclasses.field(default_factory=GBTParams)
    audience: AudienceSettings = dataclasses.field(default_factory=AudienceSettings)

    def __post_init__(self) -> None:
        if self.backtest_origins is not None and self.backtest_origins < 1:
            raise ValueError("forecast setting backtest_origins must be at least 1")
        counts = ("horizon", "backtest_step_days", "min_train_origins")
        for name in (*counts, "max_train_origins", "max_training_rows", "top_n", "plan_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"forecast setting {name} must be at least 1")
        if self.plan_days > self.horizon:
            raise ValueError(
                f"forecast setting plan_days ({self.plan_days}) is beyond the horizon "
                f"({self.horizon}): the plan can only use forecast days"
            )
        if self.max_train_origins < self.min_train_origins + self.horizon - 1:
            raise ValueError(
                "forecast setting max_train_origins must cover min_train_origins origins "
                f"with all targets observed: at least {self.min_train_origins + self.horizon - 1}"
            )
        budgets = (
            self.budget_gb.values() if isinstance(self.budget_gb, Mapping) else [self.budget_gb]
        )
        if any(b < 0 for b in budgets):
            raise ValueError("forecast setting budget_gb must not be negative")

    @property
    def min_days(self) -> int:
        return min_history_days(horizon=self.horizon, min_train_origins=self.min_train_origins)

    def backtest_plan(self, first: dt.date, end: dt.date, *, series_count: int) -> BacktestPlan:
        """The origins and horizons to backtest on this series (sized unless asked)."""
        return plan_backtest(
            first,
            end,
            series_count=series_count,
            horizon=self.horizon,
            step=self.backtest_step_days,
            min_train_origins=self.min_train_origins,
            count=self.backtest_origins,
        )

    @property
    def min_days_reason(self) -> str:
        return (
            f"{LOOKBACK_DAYS} days of features, {self.min_train_origins} training "
            f"origin{'s' if self.min_train_origins != 1 else ''} with all {self.horizon} "
            f"targets observed and {self.horizon} days of "
            "backtest actuals"
        )

    def params(self) -> dict[str, object]:
        """The settings flattened for a run's params (``gbt.*``, ``audience.*``, budgets)."""
        nested = ("gbt", "budget_gb", "audience")
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in nested}
        if self.backtest_origins is None:
            out["backtest_origins"] = "sized"
        if isinstance(self.budget_gb, Mapping):
            out.update({f"budget_gb.{r}": gb for r, gb in sorted(self.budget_gb.items())})
        else:
            out["budget_gb"] = self.budget_gb
        out.update({f"gbt.{k}": v for k, v in self.gbt.as_dict().items()})
        out.update({f"audience.{k}": v for k, v in self.audience.params().items()})
        out["lookback_days"] = LOOKBACK_DAYS
        return out


@dataclasses.dataclass
class ForecastRun:
    """What one run produced (the Spark frames are gone once the run returns)."""

    as_of: dt.date
    first_date: dt.date
    table_versions: dict[str, int]
    settings: ForecastSettings
    series_count: int
    backtest: BacktestResult
    cdn_backtest: pd.DataFrame  # strategy, region, served_views, total_views
    plan_summary: pd.DataFrame  # region, budget_gb, titles, used_gb, expected_hit_rate
    importances: dict[str, float]
    training_rows: int  # the final model learnt from (labelled rows of released titles)
    plot_history: pd.DataFrame  # region, title_id, date, views around the last origin
    plot_forecasts: pd.DataFrame  # region, title_id, target_date, horizon, target, models
    audience: AudienceResult | None = None
    audience_note: str = ""  # why the audience model was not evaluated
    # which origins and horizons the backtest evaluated, and why (sized to the data)
    backtest_plan: BacktestPlan | None = None
    model_version: str | None = None
    forecast_rows: int = 0
    plan_rows: int = 0
    audience_rows: int = 0
    # wall seconds per stage: load, backtest, fit, forecast, audience, track, write
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def improvement(self) -> float:
        return self.backtest.improvement()

    def hit_rate(self, strategy: str) -> float:
        """The share of backtest views the CDN plan of `strategy` served; NaN without views."""
        rows = self.cdn_backtest[self.cdn_backtest["strategy"] == strategy]
        total = rows["total_views"].sum()
        return float(rows["served_views"].sum() / total) if total else float("nan")

    def format_table(self) -> str:
        """The run on one screen: backtest metrics, regions, CDN plan, audience, outputs."""
        bt = self.backtest
        days = (self.as_of - self.first_date).days + 1
        lines = [
            f"popularity forecast as of {self.as_of}: {days} days of history from "
            f"{self.first_date}, {self.series_count:,} region x title series, backtest "
            f"origins {', '.join(o.isoformat() for o in bt.origins)}",
        ]
        if self.backtest_plan is not None:
            lines.append(f"backtest sizing: {self.backtest_plan.rule}")
        lines += self._metric_lines()
        met = "met" if self.improvement >= TARGET_IMPROVEMENT else "NOT met"
        lines.append(
            f"gbt WAPE {self.improvement:.1%} below seasonal naive (target "
            f"{TARGET_IMPROVEMENT:.0%}: {met}), {bt.improvement(baseline=TRAILING_MEAN):.1%} "
            f"below the trailing mean; top titles: {bt.improvement(segment=TOP):.1%} below "
            "seasonal naive"
        )
        lines += self._region_lines() + self._plan_lines()
        if self.audience is not None:
            lines += self.audience.format_lines()
        else:
            lines.append(f"new-title audience: not evaluated: {self.audience_note}")
        version = self.model_version or "not registered"
        lines.append(
            f"model {MODEL_NAME} version {version}; {self.forecast_rows:,} forecast rows, "
            f"{self.plan_rows:,} plan rows and {self.audience_rows:,} audience rows written"
        )
        return "\n".join(lines)

    def _metric_lines(self) -> list[str]:
        """WAPE and MASE per segment and model, overall and at a few horizons."""
        horizons = (1, 7, self.settings.horizon)
        header = f"{'segment':<9}{'model':<18}{'WAPE':>8}{'MASE':>8}" + "".join(
            f"{'h' + str(h):>8}" for h in horizons
        )
        lines = [header, "-" * len(header)]
        m = self.backtest.metrics
        for segment in (ALL, TOP):
            label = ALL if segment == ALL else f"top{self.settings.top_n}"
            for model in MODELS:
                rows = m[(m["segment"] == segment) & (m["model"] == model)].set_index(HORIZON)
                if rows.empty:
                    continue
                by_h = "".join(f"{rows['wape'].get(h, float('nan')):>8.4f}" for h in horizons)
                lines.append(
                    f"{label:<9}{model:<18}{rows.loc[0, 'wape']:>8.4f}"
                    f"{rows.loc[0, 'mase']:>8.4f}{by_h}"
                )
        return lines

    def _region_lines(self) -> list[str]:
        by_region = self.backtest.by_region
        regional = by_region[by_region["segment"] == ALL].set_index(["model", REGION])
        if not len(regional):
            return []
        pairs = [
            f"{region} {regional.loc[(MODEL, region), 'wape']:.3f}/"
            f"{regional.loc[(SEASONAL_NAIVE, region), 'wape']:.3f}"
            for region in sorted(set(regional.index.get_level_values(REGION)))
        ]
        return ["WAPE by region (gbt/seasonal naive): " + ", ".join(pairs)]

    def _plan_lines(self) -> list[str]:
        """The CDN plan's backtest against its baselines, and the plan written."""
        budget = self.settings.budget_gb
        budget_text = "per-region budgets" if isinstance(budget, Mapping) else f"{budget:,.0f} GB"
        plan = self.plan_summary
        expected = (
            plan["expected_served"].sum() / plan["expected_total"].sum()
            if len(plan) and plan["expected_total"].sum()
            else float("nan")
        )
        return [
            f"CDN backtest ({budget_text} per region, next {self.settings.plan_days} days): "
            f"local hit rate forecast plan {self.hit_rate(cdn.PLAN):.1%}, yesterday's top "
            f"titles {self.hit_rate(cdn.YESTERDAY):.1%}, oracle {self.hit_rate(cdn.ORACLE):.1%}",
            f"plan from {self.as_of}: {int(plan['titles'].sum()) if len(plan) else 0:,} titles "
            f"over {len(plan)} regions, expected hit rate {expected:.1%} (by the forecasts)",
        ]


def train_audience(
    spark: SparkSession,
    lake_root: str,
    data: SeriesData,
    series: DataFrame,
    settings: AudienceSettings,
    truth: DataFrame | None = None,
) -> tuple[AudienceResult | None, str]:
    """The audience model's evaluation and final fit, or None and the reason it could not
    run (too few launches inside the window: the forecast goes on without it). ``truth``
    (title_id, region, truth_log_popularity), when given, is scored as the ceiling."""
    try:
        result = evaluate_audience(
            series,
            titles=data.titles,
            first=data.first_date,
            last=data.end_date,
            settings=settings,
            truth=truth,
        )
    except AudienceDataError as exc:
        log.warning("new-title audience not evaluated: %s", exc)
        return None, str(exc)
    return result, ""


def write_audience(
    spark: SparkSession,
    lake_root: str,
    upcoming: pd.DataFrame,
    *,
    as_of: dt.date,
    model_version: str | None,
) -> int:
    """Replace the as-of partition of ``new_title_audience`` with ``upcoming``: the
    predicted first-28-day views of every title still launching, per region. Its
    ``model_version`` is the forecast version whose run logged the audience model."""
    rows = spark.createDataFrame(
        upcoming,
        f"{REGION} string, {TITLE} string, release_date date, known_until date, "
        "predicted_views_28d double",
    ).select(
        REGION,
        TITLE,
        "release_date",
        "known_until",
        "predicted_views_28d",
        F.lit(model_version or "unregistered").alias("model_version"),
        F.lit(as_of).alias(AS_OF),
    )
    path = output_path(lake_root, AUDIENCE)
    lk.replace_slice(rows, path, slice_values={AS_OF: as_of}, partition_by=[AS_OF])
    log.info("audience: %d rows written to %s for %s", len(upcoming), path, as_of)
    return len(upcoming)


def plan_summary(plan: pd.DataFrame, expected: pd.DataFrame) -> pd.DataFrame:
    """Per region: titles stored, storage used and the expected hit rate (the share of
    forecast views over the plan's days that fall on stored titles)."""
    rates = cdn.hit_rates(plan, expected.rename(columns={cdn.SCORE: "views"})).rename(
        columns={
            "served_views": "expected_served",
            "total_views": "expected_total",
            "hit_rate": "expected_hit_rate",
        }
    )
    used = plan.groupby(REGION, as_index=False).agg(
        titles=(TITLE, "count"), used_gb=(cdn.USED_GB, "max"), budget_gb=(cdn.BUDGET_GB, "max")
    )
    frame = rates.merge(used, on=REGION, how="left").fillna({"titles": 0, "used_gb": 0.0})
    return frame.sort_values(REGION, ignore_index=True)


def plot_samples(
    series: DataFrame, backtest: BacktestResult, *, top: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last fold's biggest series: their 28 days before the origin and every model's
    forecast against the actuals after it (small frames for the run's plot)."""
    last = backtest.origins[-1]
    rows = backtest.predictions.filter((F.col(ORIGIN) == F.lit(last)) & F.col(IS_TOP))
    # collected once (a few keys), not re-ranked by each of the two reads below
    chosen = (
        rows.select(REGION, TITLE, SUM_28D)
        .distinct()
        .orderBy(F.col(SUM_28D).desc(), REGION, TITLE)
        .limit(top)
        .select(REGION, TITLE)
        .collect()
    )
    leaders = series.sparkSession.createDataFrame(chosen, f"{REGION} string, {TITLE} string")
    sample = (
        rows.join(F.broadcast(leaders), [REGION, TITLE])
        .select(REGION, TITLE, TARGET_DATE, HORIZON, TARGET_VIEWS, *MODELS)
        .toPandas()
    )
    first = last - dt.timedelta(days=LOOKBACK_DAYS - 1)
    history = (
        series.filter((F.col(DATE) >= F.lit(first)) & (F.col(DATE) <= F.lit(last)))
        .join(F.broadcast(leaders), [REGION, TITLE])
        .select(REGION, TITLE, DATE, VIEWS)
        .toPandas()
    )
    return history, sample


def write_outputs(
    spark: SparkSession,
    lake_root: str,
    run: ForecastRun,
    *,
    forecast: DataFrame,
    plan: pd.DataFrame,
) -> tuple[int, int]:
    """Replace the as-of partition of the forecast and plan tables; returns their rows."""
    version = F.lit(run.model_version or "unregistered")
    forecasts = forecast.select(
        REGION,
        TITLE,
        F.col(TARGET_DATE).alias("forecast_date"),
        F.col(HORIZON).cast("int").alias(HORIZON),
        F.col(FORECAST_VIEWS).cast("double").alias(FORECAST_VIEWS),
        version.alias("model_version"),
        F.lit(run.as_of).alias(AS_OF),
    )
    plan_rows = spark.createDataFrame(
        plan[cdn.PLAN_COLUMNS],
        f"{REGION} string, {TITLE} string, {cdn.SIZE_GB} double, {cdn.SCORE} double, "
        f"{cdn.BUDGET_GB} double, {cdn.PICK_RANK} int, {cdn.USED_GB} double",
    ).select(
        REGION,
        TITLE,
        cdn.PICK_RANK,
        cdn.SIZE_GB,
        # forecast views over the plan's days (plan_days says how many)
        F.col(cdn.SCORE).alias("expected_views"),
        cdn.USED_GB,
        cdn.BUDGET_GB,
        F.lit(run.settings.plan_days).alias("plan_days"),
        version.alias("model_version"),
        F.lit(run.as_of).alias(AS_OF),
    )
    # the rows written are the rows given (a Delta write commits all or nothing): counted
    # from the cached forecast and the pandas plan, not by reading each table back
    counts = []
    for frame, rows, table in (
        (forecasts, forecast.count(), FORECASTS),
        (plan_rows, len(plan), PLAN),
    ):
        path = output_path(lake_root, table)
        lk.replace_slice(frame, path, slice_values={AS_OF: run.as_of}, partition_by=[AS_OF])
        log.info("forecast: %d rows written to %s for %s", rows, path, run.as_of)
        counts.append(rows)
    return counts[0], counts[1]

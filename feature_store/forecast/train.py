"""The forecast job's steps in order (what each computes is in the doc of
:mod:`feature_store.forecast.steps`): load the series and the origins' rows,
backtest, fit the final model, forecast and plan, the audience model, log and register
in MLflow, write to Delta. Every frame a step caches is released when the run ends,
however it ends."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.config import Config
from feature_store.forecast import cdn
from feature_store.forecast.data import REGION, TITLE, ForecastDataError, SeriesData, load_series
from feature_store.forecast.evaluate import (
    BacktestPlan,
    BacktestResult,
    run_backtest,
    training_rows,
)
from feature_store.forecast.features import (
    HORIZON,
    ORIGIN,
    TARGET_DATE,
    examples_from_origins,
    feature_origins,
    origin_rows,
)
from feature_store.forecast.model import MODEL, feature_importances, fit_counted, with_predictions
from feature_store.forecast.steps import (
    FORECAST_VIEWS,
    PLOT_SERIES,
    ForecastRun,
    ForecastSettings,
    plan_summary,
    plot_samples,
    train_audience,
    write_audience,
    write_outputs,
)
from feature_store.forecast.tracking import EXPERIMENT, log_forecast_run
from feature_store.timing import Stopwatch
from feature_store.tracking import configure_mlflow

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Inputs:
    """The series up to the as-of date and the rows of every origin the run needs."""

    data: SeriesData
    series: DataFrame
    series_count: int
    sizing: BacktestPlan
    examples: DataFrame


@dataclasses.dataclass
class Backtested:
    result: BacktestResult
    cdn_hit_rates: pd.DataFrame
    sizes: pd.DataFrame
    plot_history: pd.DataFrame
    plot_forecasts: pd.DataFrame


def train_forecast(
    spark: SparkSession,
    config: Config,
    as_of: dt.date,
    *,
    settings: ForecastSettings | None = None,
    register: bool = True,
    audience_truth: DataFrame | None = None,
) -> ForecastRun:
    """Backtest, train, forecast, plan, log to MLflow and write, for ``as_of`` (the last
    observed day); ``audience_truth`` is the audience model's ceiling when given (see
    :func:`~feature_store.forecast.steps.train_audience`). Raises
    :class:`~feature_store.forecast.data.ForecastDataError` when the lake holds too
    little history."""
    settings = settings or ForecastSettings()
    watch, cached = Stopwatch(), []
    try:
        with watch.stage("load"):  # the origin rows are cached lazily: see "backtest"
            inputs = load_inputs(spark, config, as_of, settings, cached)
        with watch.stage("backtest"):
            backtested = backtest(inputs, settings, cached)
        with watch.stage("fit"):
            model, training_row_count = fit_final(inputs, settings, as_of)
        with watch.stage("forecast"):  # every series' next days, and the plan from them
            forecast, plan, expected = forecast_and_plan(
                inputs, model, backtested.sizes, settings, as_of, cached
            )
        with watch.stage("audience"):
            audience, audience_note = train_audience(
                spark, config.lake, inputs.data, inputs.series, settings.audience, audience_truth
            )
        run = ForecastRun(
            as_of=as_of,
            first_date=inputs.data.first_date,
            table_versions=inputs.data.table_versions,
            settings=settings,
            series_count=inputs.series_count,
            backtest=backtested.result,
            cdn_backtest=backtested.cdn_hit_rates,
            plan_summary=plan_summary(plan, expected),
            importances=feature_importances(model),
            training_rows=training_row_count,
            plot_history=backtested.plot_history,
            plot_forecasts=backtested.plot_forecasts,
            audience=audience,
            audience_note=audience_note,
            backtest_plan=inputs.sizing,
            seconds=watch.seconds,  # the same dict: the stages below land in it too
        )
        with watch.stage("track"):
            configure_mlflow(config, EXPERIMENT)
            run.model_version = log_forecast_run(run, model, register=register)
        with watch.stage("write"):
            write(spark, config, run, forecast=forecast, plan=plan)
    finally:
        for frame in reversed(cached):
            frame.unpersist()
    log.info("forecast as of %s:\n%s", as_of, run.format_table())
    return run


def load_inputs(
    spark: SparkSession,
    config: Config,
    as_of: dt.date,
    settings: ForecastSettings,
    cached: list[DataFrame],
) -> Inputs:
    """The series, the backtest's plan sized to them, and the rows of the origins some
    model learns from or forecasts from (cached frames are added to ``cached``)."""
    data = load_series(
        spark, config.lake, as_of, min_days=settings.min_days, why=settings.min_days_reason
    )
    series = data.series.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(series)
    series_count = series.select(REGION, TITLE).distinct().count()
    sizing = settings.backtest_plan(data.first_date, as_of, series_count=series_count)
    folds = list(sizing.origins)
    if not folds:
        raise ForecastDataError(
            f"no backtest origin fits in {data.first_date}..{as_of} with these settings"
        )
    oldest = min(folds[0], as_of) - dt.timedelta(days=settings.max_train_origins)
    origins = [o for o in feature_origins(data.first_date, as_of) if o >= oldest]
    # the origin rows are cached, not their 14 horizon rows each: cached, the examples
    # of every origin were most of the run's memory and time (5.6M rows at the demo);
    # a fold reads a sample of them, made from these on the way
    windows = origin_rows(series, origins=origins, ahead=max(sizing.horizons)).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    cached.append(windows)
    examples = examples_from_origins(windows, titles=data.titles, horizons=sizing.horizons)
    log.info(
        "forecast: %d series, %d origins, backtest at %s (%s)",
        series_count,
        len(origins),
        folds,
        sizing.rule,
    )
    return Inputs(data, series, series_count, sizing, examples)


def backtest(inputs: Inputs, settings: ForecastSettings, cached: list[DataFrame]) -> Backtested:
    """Rolling-origin backtest against the baselines, the CDN plan each origin would
    have made, and the plot's sample of series."""
    result = run_backtest(
        inputs.examples,
        origins=list(inputs.sizing.origins),
        params=settings.gbt,
        max_train_origins=settings.max_train_origins,
        top_n=settings.top_n,
        max_training_rows=settings.max_training_rows,
    )
    cached.append(result.predictions)
    sizes = cdn.title_sizes(inputs.data.titles)
    candidates = cdn.backtest_candidates(
        result.predictions, sizes=sizes, plan_days=settings.plan_days
    ).toPandas()
    hit_rates = cdn.backtest_hit_rates(candidates, budget_gb=settings.budget_gb)
    history, sample = plot_samples(inputs.series, result, top=PLOT_SERIES)
    return Backtested(result, hit_rates, sizes, history, sample)


def fit_final(
    inputs: Inputs, settings: ForecastSettings, as_of: dt.date
) -> tuple[PipelineModel, int]:
    """(model, training rows): the model on the latest origins up to ``as_of``."""
    train = training_rows(
        inputs.examples,
        origin=as_of,
        max_train_origins=settings.max_train_origins,
        max_rows=settings.max_training_rows,
        seed=settings.gbt.seed,
    )
    log.info("forecast: fitting the final model on origins up to %s", as_of)
    return fit_counted(train, settings.gbt)


def forecast_and_plan(
    inputs: Inputs,
    model: PipelineModel,
    sizes: DataFrame,
    settings: ForecastSettings,
    as_of: dt.date,
    cached: list[DataFrame],
) -> tuple[DataFrame, pd.DataFrame, pd.DataFrame]:
    """(forecast rows, each region's plan, the plan's candidates with expected views)."""
    forecast = (
        with_predictions(inputs.examples.filter(F.col(ORIGIN) == F.lit(as_of)), model)
        .select(REGION, TITLE, HORIZON, TARGET_DATE, F.col(MODEL).alias(FORECAST_VIEWS))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    cached.append(forecast)
    expected = cdn.plan_candidates(forecast, sizes=sizes, plan_days=settings.plan_days).toPandas()
    return forecast, cdn.select_titles(expected, budget_gb=settings.budget_gb), expected


def write(
    spark: SparkSession,
    config: Config,
    run: ForecastRun,
    *,
    forecast: DataFrame,
    plan: pd.DataFrame,
) -> None:
    """The forecasts, the plan and the audience predictions to Delta (row counts on
    ``run``)."""
    run.forecast_rows, run.plan_rows = write_outputs(
        spark, config.lake, run, forecast=forecast, plan=plan
    )
    if run.audience is not None:
        run.audience_rows = write_audience(
            spark,
            config.lake,
            run.audience.upcoming,
            as_of=run.as_of,
            model_version=run.model_version,
        )

"""Regional popularity forecasts and the CDN plan: the dense series, point-in-time
features, baselines, metrics and knapsack on hand-made data; then the whole run on a
small synthetic lake (weekly pattern, release spikes and decay) registered in MLflow."""

from __future__ import annotations

import datetime as dt

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from conftest import make_config
from feature_world import bronze_frame
from pandas.testing import assert_frame_equal
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features.definitions import AS_OF
from feature_store.features.tables import REGION_TITLE_DAILY
from feature_store.forecast import cdn
from feature_store.forecast.data import ForecastDataError, dense_series, load_series
from feature_store.forecast.evaluate import (
    BacktestResult,
    backtest_origins,
    error_sums,
    metrics_table,
    min_history_days,
    plan_backtest,
    sample_series,
)
from feature_store.forecast.features import (
    HORIZON,
    LAG_0,
    ORIGIN,
    SEASONAL_SCALE,
    TARGET_VIEWS,
    forecast_examples,
    horizon_rows,
    origin_rows,
)
from feature_store.forecast.model import GBTParams, with_baselines
from feature_store.forecast.steps import (
    FORECASTS,
    MODEL_NAME,
    PLAN,
    ForecastSettings,
    output_path,
)
from feature_store.forecast.tracking import EXPERIMENT
from feature_store.forecast.train import train_forecast
from jobs import train_forecast as train_forecast_job

D0 = dt.date(2026, 1, 5)  # a Monday
SERIES_SCHEMA = "region string, title_id string, date date, views long"
TITLES_SCHEMA = "title_id string, kind string, genres array<string>, release_date date"


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


# --- the dense series ---------------------------------------------------------------


def test_dense_series_fills_zeros_for_every_available_title_and_day(spark):
    daily = spark.createDataFrame(
        [("gb", "t1", day(0), 3), ("gb", "t1", day(2), 5), ("de", "t9", day(1), 1)],
        "region string, title_id string, as_of_date date, count_views long",
    )
    available = spark.createDataFrame(
        [("gb", "t1"), ("gb", "t2")], "region string, title_id string"
    )
    out = dense_series(daily, availability=available, first=day(0), last=day(2))
    expected = spark.createDataFrame(
        [
            ("gb", "t1", day(0), 3),
            ("gb", "t1", day(1), 0),
            ("gb", "t1", day(2), 5),
            ("gb", "t2", day(0), 0),
            ("gb", "t2", day(1), 0),
            ("gb", "t2", day(2), 0),
            # watched, though the catalogue no longer lists it: kept, views happened
            ("de", "t9", day(0), 0),
            ("de", "t9", day(1), 1),
            ("de", "t9", day(2), 0),
        ],
        SERIES_SCHEMA,
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


# --- features and baselines ---------------------------------------------------------


def _ramp(spark, days: int, *, bump_after: int | None = None):
    """views = day index (0, 1, 2, ...): every lag is its own day number. With
    ``bump_after``, the days after it get a huge value instead."""
    rows = [
        ("gb", "t1", day(i), i if bump_after is None or i <= bump_after else 10_000 + i)
        for i in range(days)
    ]
    return spark.createDataFrame(rows, SERIES_SCHEMA)


def _titles(spark):
    return spark.createDataFrame([("t1", "movie", ["drama"], day(30))], TITLES_SCHEMA)


def test_features_use_nothing_after_the_origin(spark):
    origin = day(35)
    clean = horizon_rows(origin_rows(_ramp(spark, 50), origins=[origin]), titles=_titles(spark))
    bumped = horizon_rows(
        origin_rows(_ramp(spark, 50, bump_after=35), origins=[origin]), titles=_titles(spark)
    )
    assert_df_equality(clean, bumped, ignore_row_order=True)
    assert clean.select(F.max(LAG_0)).first()[0] == 35.0
    # an origin whose 28-day window starts before the series is dropped, not padded
    assert origin_rows(_ramp(spark, 50), origins=[day(26)]).collect() == []


def test_seasonal_naive_and_trailing_mean_on_a_hand_made_series(spark):
    rows = horizon_rows(origin_rows(_ramp(spark, 40), origins=[day(35)]), titles=_titles(spark))
    out = with_baselines(rows).select(
        HORIZON,
        "seasonal_naive",
        "trailing_mean_7d",
        "days_since_release_at_target",
        "target_weekday",
        SEASONAL_SCALE,
    )
    # y[T+h-7*ceil(h/7)]: h=1 -> day 29 (T-6), h=7 -> T, h=8 -> T-6, h=13 -> T-1, h=14 -> T;
    # trailing mean of days 29..35 = 32; release on day 30: age at T+h = 5 + h;
    # weekday of day 35+h (day 0 is a Monday); in-sample |y_t - y_t-7| = 7 everywhere
    expected = spark.createDataFrame(
        [
            (h, float(35 - (7 - h % 7) % 7), 32.0, float(5 + h), float((35 + h) % 7), 7.0)
            for h in range(1, 15)
        ],
        "horizon int, seasonal_naive double, trailing_mean_7d double, "
        "days_since_release_at_target double, target_weekday double, "
        "seasonal_naive_mae_in_sample double",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    by_h = {r[HORIZON]: r["seasonal_naive"] for r in out.collect()}
    assert (by_h[1], by_h[7], by_h[8], by_h[13], by_h[14]) == (29.0, 35.0, 29.0, 34.0, 35.0)


def test_examples_carry_the_target_and_none_beyond_the_series(spark):
    series = _ramp(spark, 40)
    out = forecast_examples(series, titles=_titles(spark), origins=[day(30), day(39)]).select(
        ORIGIN, HORIZON, TARGET_VIEWS
    )
    expected = spark.createDataFrame(
        [(day(30), h, float(30 + h) if h <= 9 else None) for h in range(1, 15)]
        + [(day(39), h, None) for h in range(1, 15)],
        "origin_date date, horizon int, target_views double",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


# --- metrics ------------------------------------------------------------------------

_METRIC_ROWS = [
    # horizon, actual, scale, top, gbt, seasonal naive, trailing mean
    (1, 10.0, 2.0, True, 8.0, 14.0, 10.0),
    (1, 0.0, 1.0, False, 1.0, 0.0, 2.0),
    (2, 5.0, 1.0, True, 5.0, 2.0, 4.0),
]


def test_wape_and_mase_on_hand_computed_numbers(spark):
    rows = spark.createDataFrame(
        _METRIC_ROWS,
        "horizon int, target_views double, seasonal_naive_mae_in_sample double, "
        "is_top boolean, gbt double, seasonal_naive double, trailing_mean_7d double",
    )
    sums = error_sums(rows)
    expected = spark.createDataFrame(
        [
            ("all", 1, 2, 10.0, 3.0, 3.0, 4.0, 2.0),
            ("all", 2, 1, 5.0, 1.0, 0.0, 3.0, 1.0),
            ("top", 1, 1, 10.0, 2.0, 2.0, 4.0, 0.0),
            ("top", 2, 1, 5.0, 1.0, 0.0, 3.0, 1.0),
        ],
        "segment string, horizon int, rows long, actual double, scale double, "
        "abs_error_gbt double, abs_error_seasonal_naive double, "
        "abs_error_trailing_mean_7d double",
    )
    assert_approx_df_equality(sums, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
    table = metrics_table(sums.toPandas())
    got = {(r.segment, r.model, r.horizon): (r.wape, r.mase) for r in table.itertuples()}
    hand = {
        ("all", "gbt", 1): (3 / 10, 3 / 3),
        ("all", "seasonal_naive", 1): (4 / 10, 4 / 3),
        ("all", "trailing_mean_7d", 2): (1 / 5, 1 / 1),
        ("all", "gbt", 0): (3 / 15, 3 / 4),
        ("all", "seasonal_naive", 0): (7 / 15, 7 / 4),
        ("top", "gbt", 0): (2 / 15, 2 / 3),
        ("top", "trailing_mean_7d", 0): (1 / 15, 1 / 3),
    }
    for key, value in hand.items():
        assert got[key] == pytest.approx(value), key
    result = BacktestResult([day(0)], table, rows)
    assert result.improvement() == pytest.approx(1 - (3 / 15) / (7 / 15))


def test_backtest_origins_step_back_from_the_end_within_the_history():
    first, end = day(0), day(69)
    assert min_history_days(horizon=14, min_train_origins=7) == 62
    origins = backtest_origins(first, end, horizon=14, count=5, step=7, min_train_origins=7)
    # the last leaves 14 days of actuals; none before day 27 + 13 + 7 = 47
    assert origins == [day(48), day(55)]


def _sized(days: int, series: int, count: int | None = None):
    end = day(days - 1)
    return plan_backtest(
        D0, end, series_count=series, horizon=14, step=7, min_train_origins=1, count=count
    )


def test_the_backtest_is_sized_to_the_length_and_size_of_the_series():
    every_horizon = tuple(range(1, 15))
    # the demo: 70 days of ~8,000 series (0.56M series x days) -> the latest origin only
    demo = _sized(70, 8_000)
    assert (demo.origins, demo.horizons) == ((day(55),), every_horizon)
    assert demo.rule.startswith("small: 560,000 series x days")
    # 70 days of a large catalogue: the fold at day 41 would learn from one fully observed
    # origin, so two origins (day 48's fold learns from 8, day 55's from 15)
    wide = _sized(70, 60_000)
    assert (wide.origins, wide.horizons) == ((day(48), day(55)), every_horizon)
    # twelve weeks of a real catalogue: the full three-origin backtest
    long = _sized(84, 20_000)
    assert (long.origins, long.horizons) == ((day(55), day(62), day(69)), every_horizon)
    assert long.rule.startswith("sized: 3 of at most 3 origins")
    # too short for a fold with a week of observed origins: the latest origin there is
    short = _sized(60, 60_000)
    assert (short.origins, short.horizons) == ((day(45),), every_horizon)
    assert short.rule.startswith("short: in 60 days")
    # asked for: as many as the history allows, whatever the size
    assert _sized(70, 8_000, count=3).origins == (day(41), day(48), day(55))
    assert demo.params() == {
        "backtest.origins_evaluated": 1,
        "backtest.horizons_evaluated": "1-14",
        "backtest.rule": demo.rule,
    }


def test_a_capped_training_set_keeps_whole_series_the_same_ones_every_time(spark):
    rows = spark.createDataFrame(
        [(f"r{r}", f"t{t}", h) for r in range(4) for t in range(250) for h in range(4)],
        "region string, title_id string, horizon int",
    )
    assert sample_series(rows, max_rows=4000, seed=7) is rows  # at the cap: untouched

    sample = sample_series(rows, max_rows=1000, seed=7).toPandas()
    per_series = sample.groupby(["region", "title_id"])["horizon"].apply(sorted)
    assert all(h == [0, 1, 2, 3] for h in per_series)  # whole series, never part of one
    assert 150 <= len(per_series) <= 350  # a quarter of the 1,000 series, give or take
    again = sample_series(rows, max_rows=1000, seed=7).toPandas()
    assert_frame_equal(
        sample.sort_values(list(sample.columns), ignore_index=True),
        again.sort_values(list(again.columns), ignore_index=True),
    )
    other = sample_series(rows, max_rows=1000, seed=8).toPandas()
    assert set(zip(other["region"], other["title_id"], strict=True)) != set(per_series.index)


# --- the CDN plan -------------------------------------------------------------------

PLAN_COLUMNS = ["region", "title_id", "size_gb", "score"]


def test_cdn_plan_respects_the_budget_and_picks_the_best_views_per_gb():
    candidates = pd.DataFrame(
        [
            # gb, budget 10: d has the most views per GB but can never fit; a (10 views/GB)
            # fits, b (9/GB) then no longer does, c (7.5/GB) fills the rest; z has no views
            ("gb", "a", 6.0, 60.0),
            ("gb", "b", 5.0, 45.0),
            ("gb", "c", 4.0, 30.0),
            ("gb", "d", 20.0, 500.0),
            ("gb", "z", 1.0, 0.0),
            # de, budget 10: greedy takes x (2/GB) and then y no longer fits (2 views in
            # all); y alone (15 views) is better, and is what the plan keeps
            ("de", "x", 1.0, 2.0),
            ("de", "y", 10.0, 15.0),
            # fr has no budget: nothing is planned
            ("fr", "a", 1.0, 100.0),
        ],
        columns=PLAN_COLUMNS,
    )
    plan = cdn.select_titles(candidates, budget_gb={"gb": 10.0, "de": 10.0})
    expected = pd.DataFrame(
        [
            ("de", "y", 10.0, 15.0, 10.0, 1, 10.0),
            ("gb", "a", 6.0, 60.0, 10.0, 1, 6.0),
            ("gb", "c", 4.0, 30.0, 10.0, 2, 10.0),
        ],
        columns=cdn.PLAN_COLUMNS,
    )
    assert_frame_equal(plan, expected, check_dtype=False)
    # yesterday's top titles: by views, not per GB, filled the same way
    by_views = cdn.select_titles(candidates, budget_gb=10.0, order=cdn.BY_SCORE)
    assert by_views.groupby("region")["title_id"].apply(list).to_dict() == {
        "de": ["y"],
        "fr": ["a"],
        "gb": ["a", "c"],
    }
    actual = pd.DataFrame(
        [("gb", "a", 50.0), ("gb", "b", 30.0), ("gb", "c", 20.0), ("gb", "d", 100.0)],
        columns=["region", "title_id", "views"],
    )
    rates = cdn.hit_rates(plan[plan["region"] == "gb"], actual)
    expected_rates = pd.DataFrame(
        [("gb", 70.0, 200.0, 0.35)],
        columns=["region", "served_views", "total_views", "hit_rate"],
    )
    assert_frame_equal(rates, expected_rates)


def test_title_size_is_runtime_times_the_bitrate_ladder(spark):
    titles = spark.createDataFrame(
        [("m", 100, 0), ("s", 50, 10)], "title_id string, duration_minutes int, episodes int"
    )
    ladder = sum(cdn.BITRATE_LADDER_MBPS)  # Mbit/s over every rendition
    expected = spark.createDataFrame(
        [("m", 6000 * ladder / 8000), ("s", 10 * 3000 * ladder / 8000)],
        "title_id string, size_gb double",
    )
    assert_approx_df_equality(
        cdn.title_sizes(titles), expected, 1e-9, ignore_row_order=True, ignore_nullable=True
    )


# --- a small synthetic lake ---------------------------------------------------------

DAYS = 70
END = day(DAYS - 1)
REGIONS = {"gb": 1.0, "de": 0.6}
# title, kind, genres, release day (from D0), daily base views, episodes, regions
CATALOGUE = [
    ("t00", "movie", ["action"], -400, 120.0, 0, "gb de"),
    ("t01", "series", ["drama"], -300, 80.0, 8, "gb de"),
    ("t02", "movie", ["kids", "animation"], -200, 60.0, 0, "gb de"),
    ("t03", "series", ["comedy"], -900, 40.0, 6, "gb de"),
    ("t04", "movie", ["thriller"], -100, 25.0, 0, "gb de"),
    ("t05", "movie", ["documentary"], -800, 12.0, 0, "gb"),
    ("t06", "series", ["kids"], -500, 30.0, 10, "gb de"),
    ("t07", "movie", ["romance"], -600, 8.0, 0, "gb de"),
    ("t08", "movie", ["scifi"], 40, 50.0, 0, "gb de"),
    ("t09", "series", ["crime"], 55, 35.0, 8, "gb de"),
    ("t10", "movie", ["drama"], -700, 4.0, 0, "gb"),
    ("t11", "movie", ["comedy"], 75, 30.0, 0, "gb de"),
]


def _synthetic_views(seed: int = 3) -> list[tuple]:
    """Poisson views: base x region x per-title regional taste x weekend lift (movies
    +30%, kids +40%, Friday to Sunday) x release spike decaying over a week."""
    rng = np.random.default_rng(seed)
    rows = []
    for title, kind, genres, release, base, _, regions in CATALOGUE:
        for region in regions.split():
            taste = REGIONS[region] * float(np.exp(rng.normal(0.0, 0.3)))
            for i in range(DAYS):
                age = i - release
                if age < 0:
                    continue
                weekend = day(i).weekday() >= 4
                lift = 1.0 + weekend * (0.3 * (kind == "movie") + 0.4 * ("kids" in genres))
                spike = 1.0 + 5.0 * np.exp(-age / 7.0)
                views = int(rng.poisson(base * taste * lift * spike))
                if views:
                    rows.append((region, title, day(i), views))
    return rows


def write_lake(spark, lake_root: str, *, days: int = DAYS) -> None:
    """region_title_daily (days with views only) and bronze titles, written directly."""
    lake = lk.Lake(lake_root)
    written_at = dt.datetime(2026, 3, 20)
    rtd = [
        (r, t, v, v * 1.5, v, dt.datetime.combine(d, dt.time(22)), d, written_at)
        for r, t, d, v in _synthetic_views()
        if d < day(days)
    ]
    frame = spark.createDataFrame(rtd, REGION_TITLE_DAILY.schema)
    frame.write.format("delta").partitionBy(AS_OF).mode("overwrite").save(
        lake.features("region_title_daily")
    )
    titles = bronze_frame(
        spark,
        "titles",
        [
            {
                "event_ts": dt.datetime(2025, 12, 1),
                "title_id": t,
                "name": t,
                "kind": kind,
                "genres": genres,
                "cast": [],
                "release_date": day(release),
                "duration_minutes": 100 if kind == "movie" else 45,
                "episodes": episodes or None,
                "available_regions": regions.split(),
                "artwork": [],
            }
            for t, kind, genres, release, _, episodes, regions in CATALOGUE
        ],
    )
    titles.write.format("delta").mode("overwrite").save(lake.bronze("titles"))


SMALL = ForecastSettings(
    backtest_origins=2,
    min_train_origins=7,
    top_n=5,
    plan_days=7,
    budget_gb=120.0,
    max_train_origins=42,
    gbt=GBTParams(max_iter=30, max_depth=4, min_instances_per_node=10),
)


@pytest.fixture(scope="module")
def forecast_run(spark, tmp_path_factory):
    state = tmp_path_factory.mktemp("forecast")
    config = make_config(state)
    write_lake(spark, config.lake)
    run = train_forecast(spark, config, END, settings=SMALL)
    return config, run


def test_the_model_beats_seasonal_naive_by_the_target_margin(forecast_run):
    _, run = forecast_run
    bt = run.backtest
    assert bt.origins == [day(48), day(55)]
    assert run.series_count == 22  # 12 titles in gb, 10 in de
    print("\n" + run.format_table())
    gbt, naive, mean = (bt.wape(m) for m in ("gbt", "seasonal_naive", "trailing_mean_7d"))
    assert run.improvement >= 0.15, run.format_table()
    assert gbt < mean, run.format_table()
    # every horizon and both segments are measured, for every model
    m = bt.metrics
    assert set(m["horizon"]) == set(range(15))
    assert set(m["segment"]) == {"all", "top"} and len(m) == 2 * 3 * 15
    top_rows = m[(m["segment"] == "top") & (m["horizon"] == 1) & (m["model"] == "gbt")]
    assert int(top_rows["rows"].iloc[0]) == 2 * 2 * 5  # origins x regions x top 5
    assert naive > 0.0 and gbt > 0.0
    regional = bt.by_region  # over all horizons, per region
    assert set(regional["region"]) == {"gb", "de"} and len(regional) == 2 * 2 * 3
    assert "WAPE by region (gbt/seasonal naive): de " in run.format_table()
    # the forecast plan serves at least as much locally as yesterday's top titles
    assert run.hit_rate(cdn.PLAN) >= run.hit_rate(cdn.YESTERDAY) - 0.01
    assert run.hit_rate(cdn.ORACLE) >= run.hit_rate(cdn.PLAN) - 1e-9


def test_forecasts_and_plan_are_written_once_per_as_of_date(spark, forecast_run):
    config, run = forecast_run
    forecasts = lk.read_table(spark, output_path(config.lake, FORECASTS))
    assert run.forecast_rows == forecasts.count() == 22 * 14
    window = forecasts.groupBy("region", "title_id").agg(
        F.min("forecast_date").alias("first"),
        F.max("forecast_date").alias("last"),
        F.count(F.lit(1)).alias("days"),
    )
    expected = spark.createDataFrame(
        [
            (r, t, END + dt.timedelta(days=1), END + dt.timedelta(days=14), 14)
            for t, *_, regions in CATALOGUE
            for r in regions.split()
        ],
        "region string, title_id string, first date, last date, days long",
    )
    assert_df_equality(window, expected, ignore_row_order=True, ignore_nullable=True)
    # nothing before release: t11 premieres on day 75 (END + 6)
    t11 = forecasts.filter((F.col("title_id") == "t11") & (F.col("horizon") < 6))
    assert {r.forecast_views for r in t11.collect()} == {0.0}
    assert forecasts.filter(F.col("forecast_views") < 0).count() == 0
    assert {r.model_version for r in forecasts.select("model_version").distinct().collect()} == {
        run.model_version
    }
    plan = lk.read_table(spark, output_path(config.lake, PLAN))
    assert run.plan_rows == plan.count() > 0
    used = plan.groupBy("region").agg(F.sum("size_gb").alias("gb")).collect()
    assert all(r.gb <= 120.0 + 1e-9 for r in used)
    # re-writing the same as-of date replaces its partitions
    from feature_store.forecast.steps import write_outputs

    again = forecasts.select(
        "region",
        "title_id",
        F.col("forecast_date").alias("target_date"),
        "horizon",
        "forecast_views",
    )
    plan_frame = plan.select(
        "region",
        "title_id",
        "size_gb",
        F.col("expected_views").alias(cdn.SCORE),
        "budget_gb",
        "pick_rank",
        "used_gb",
    ).toPandas()
    counts = write_outputs(
        spark, config.lake, run, forecast=again.localCheckpoint(), plan=plan_frame
    )
    assert counts == (run.forecast_rows, run.plan_rows)
    assert lk.read_table(spark, output_path(config.lake, FORECASTS)).count() == 22 * 14


def test_the_run_is_registered_with_lineage_metrics_and_plots(spark, forecast_run):
    config, run = forecast_run
    assert run.model_version == "1"
    client = mlflow.MlflowClient()
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.tags["data.as_of"] == END.isoformat()
    assert version.tags["data.first_date"] == D0.isoformat()
    assert version.tags["data.backtest_origins"] == f"{day(48)},{day(55)}"
    logged = client.get_run(version.tags["run_id"])
    assert logged.data.params["lineage.region_title_daily.version"] == "0"
    assert logged.data.params["lineage.bronze.titles.version"] == "0"
    metrics = logged.data.metrics
    assert metrics["all.gbt.wape"] == pytest.approx(run.backtest.wape("gbt"))
    assert {"all.gbt.wape_h1", "all.seasonal_naive.mase_h14", "top.trailing_mean_7d.wape"} <= set(
        metrics
    )
    assert metrics["all.wape_improvement_vs_seasonal_naive"] == pytest.approx(run.improvement)
    assert "cdn.hit_rate.forecast_plan" in metrics and "cdn.hit_rate.yesterdays_top" in metrics
    # where the run's time went: every stage in the run record, those before tracking
    # logged with it (bench/bench_models.py reports the same stages at scale)
    stages = ["load", "backtest", "fit", "forecast", "audience"]
    assert list(run.seconds) == [*stages, "track", "write"]
    assert all(seconds > 0 for seconds in run.seconds.values())
    assert {m: metrics[f"seconds.{m}"] for m in stages} == pytest.approx(
        {m: run.seconds[m] for m in stages}
    )
    plots = {a.path for a in client.list_artifacts(logged.info.run_id, "plots")}
    assert plots == {"plots/forecast_vs_actuals_top_titles.png", "plots/wape_by_horizon.png"}
    assert mlflow.get_experiment(logged.info.experiment_id).name == EXPERIMENT

    # the registered pipeline turns forecast rows into the views written to the table
    model = mlflow.spark.load_model(f"models:/{MODEL_NAME}/1")
    data = load_series(spark, config.lake, END, min_days=1)
    rows = forecast_examples(data.series, titles=data.titles, origins=[END])
    scored = model.transform(rows).select(
        "region", "title_id", "horizon", F.col("prediction").alias("forecast_views")
    )
    written = lk.read_table(spark, output_path(config.lake, FORECASTS)).select(
        "region", "title_id", "horizon", "forecast_views"
    )
    assert_approx_df_equality(
        scored, written, 1e-6, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True
    )


# --- bad input ----------------------------------------------------------------------


def test_missing_table_and_short_history_fail_with_clear_messages(spark, tmp_path):
    with pytest.raises(ForecastDataError, match="no region_title_daily table under"):
        load_series(spark, str(tmp_path / "empty"), END, min_days=62)
    lake_root = str(tmp_path / "short")
    write_lake(spark, lake_root, days=10)
    with pytest.raises(ForecastDataError, match="has no partition for 2026-03-15"):
        load_series(spark, lake_root, END, min_days=62)
    with pytest.raises(
        ForecastDataError,
        match=r"holds 10 consecutive days up to 2026-01-14 \(2026-01-05 to 2026-01-14\); "
        "the forecast needs at least 62",
    ):
        load_series(spark, lake_root, day(9), min_days=62)


def test_job_reports_too_little_history_and_bad_settings(spark, tmp_path, capsys):
    write_lake(spark, str(tmp_path / "lake"), days=20)
    common = ["-q", "--set", f"paths.state_dir={tmp_path}", "--set", f"paths.lake={tmp_path}/lake"]
    code = train_forecast_job.main(["--date", day(19).isoformat(), *common])
    err = capsys.readouterr().err
    assert code == 1
    assert "holds 20 consecutive days" in err and "needs at least 56" in err
    code = train_forecast_job.main(["--date", day(19).isoformat(), "--plan-days", "15", *common])
    assert code == 2
    assert "plan_days (15) is beyond the horizon (14)" in capsys.readouterr().err

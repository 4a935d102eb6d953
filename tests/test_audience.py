"""New-title audience prediction: launch windows, point-in-time cast and similar-title
features, the genre-average baseline and the metrics on hand-made data; then the whole
forecast run on a small generated lake where stars make launches popular, so a model
that reads the cast's past views must beat the genre average."""

from __future__ import annotations

import datetime as dt
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from conftest import make_config
from feature_world import bronze_frame

from feature_store import lake as lk
from feature_store.features.tables import REGION_TITLE_DAILY
from feature_store.forecast.audience import (
    AudienceSettings,
    audience_metrics,
    audience_rows,
    cast_pairs,
    cumulative_views,
    genre_average,
    leaf_params,
    prior_levels,
    similar_titles,
)
from feature_store.forecast.data import load_series
from feature_store.forecast.model import GBTParams
from feature_store.forecast.steps import (
    AUDIENCE,
    MODEL_NAME,
    ForecastSettings,
    output_path,
    train_audience,
    write_audience,
)
from feature_store.forecast.tracking import audience_report, log_audience
from feature_store.synthetic.ceilings import audience_ceiling
from feature_store.tracking import configure_mlflow

D0 = dt.date(2026, 1, 5)
SERIES_SCHEMA = "region string, title_id string, date date, views long"
CAST_SCHEMA = "title_id string, cast array<string>, release_date date"


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def _dense(spark, views: dict[tuple[str, str], dict[int, int]], days: int):
    """A dense series: every (region, title) listed, every day 0..days-1, 0 unless given."""
    rows = [
        (region, title, day(i), by_day.get(i, 0))
        for (region, title), by_day in views.items()
        for i in range(days)
    ]
    return spark.createDataFrame(rows, SERIES_SCHEMA)


# --- launch windows -----------------------------------------------------------------


def test_launch_views_sum_the_first_28_days_only_when_all_are_observed(spark):
    series = _dense(
        spark,
        {
            ("gb", "new"): {2: 50, 3: 7, 30: 1, 31: 1000},  # release day 3: days 3..30
            ("de", "new"): {},
            ("gb", "late"): {25: 9},  # release day 25: its 28 days end after day 40
            ("gb", "old"): {0: 5},  # released before the data: no launch to learn
            ("gb", "soon"): {},  # released after the data
        },
        days=41,
    )
    titles = spark.createDataFrame(
        [("new", day(3)), ("late", day(25)), ("old", day(-10)), ("soon", day(45))],
        "title_id string, release_date date",
    )
    out = audience_rows(series, titles=titles, first=day(0), last=day(40))
    expected = spark.createDataFrame(
        [
            ("gb", "new", day(3), day(2), 8.0),  # day 2 is before release, day 31 after
            ("de", "new", day(3), day(2), 0.0),
            ("gb", "late", day(25), day(24), None),
            ("gb", "soon", day(45), day(40), None),  # known until the last observed day
        ],
        "region string, title_id string, release_date date, known_until date, views_28d double",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


# --- cast popularity: only earlier titles, only earlier days -------------------------

CAST_TITLES = [
    ("target", ["a", "b"], day(40)),
    ("o1", ["a"], day(0)),  # shares a; watched long before, in and after the window
    ("o2", ["a", "b"], day(41)),  # shares both, but released after the target
    ("o3", ["z"], day(0)),  # shares nobody
    ("o4", ["b"], day(35)),  # shares b; released 5 days before the target
]


def _cast_series(spark, *, after: int):
    """o1 watched 100/day on days 0..11, 10/day on 12..39 and ``after`` from day 40."""
    o1 = {i: 100 if i < 12 else 10 if i < 40 else after for i in range(50)}
    return _dense(
        spark,
        {
            ("gb", "target"): {i: 999 for i in range(40, 50)},
            ("gb", "o1"): o1,
            ("de", "o1"): {i: 20 for i in range(50)},
            # dirty pre-release views do not make o2 an earlier title
            ("gb", "o2"): {i: 7 for i in range(30, 50)},
            ("gb", "o3"): {i: 50 for i in range(50)},
            ("gb", "o4"): {i: 4 for i in range(35, 40)} | {i: 3000 for i in range(40, 50)},
        },
        days=50,
    )


def _cast_levels(spark, series):
    titles = spark.createDataFrame(CAST_TITLES, CAST_SCHEMA)
    targets = spark.createDataFrame([("target", day(39))], "title_id string, known_until date")
    pairs = cast_pairs(titles, targets=targets)
    return prior_levels(
        pairs, cumulative=cumulative_views(series), titles=titles, first=day(0), prefix="cast"
    )


def test_cast_popularity_uses_earlier_titles_and_the_28_days_before_release(spark):
    out = _cast_levels(spark, _cast_series(spark, after=10_000))
    # gb: o1 at 10/day over days 12..39 (the 28 days up to the day before release; its
    # 100/day before that is out of the window), o4 at 4/day over its 5 released days;
    # o2 (released after) and o3 (no shared cast) never count. de: o1 alone, 20/day.
    expected = spark.createDataFrame(
        [
            ("gb", "target", day(39), (math.log1p(10) + math.log1p(4)) / 2, math.log1p(10), 2.0),
            ("de", "target", day(39), math.log1p(20), math.log1p(20), 1.0),
        ],
        "region string, title_id string, known_until date, cast_log1p_daily_views_28d_mean "
        "double, cast_log1p_daily_views_28d_max double, count_cast_titles double",
    )
    assert_approx_df_equality(out, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
    # views on and after the release day change nothing
    unchanged = _cast_levels(spark, _cast_series(spark, after=3))
    assert_approx_df_equality(out, unchanged, 1e-9, ignore_row_order=True)


def test_similar_titles_are_the_nearest_already_released():
    catalogue = pd.DataFrame(
        [
            ("t", "movie", ["drama"], ["a"], day(10)),
            ("same", "movie", ["drama"], ["a"], day(0)),  # identical metadata
            ("series", "series", ["drama"], [], day(5)),  # same genre, other kind
            ("later", "movie", ["drama"], ["a"], day(20)),  # identical, released after t
            ("far", "series", ["horror"], ["z"], day(0)),  # nothing in common
        ],
        columns=["title_id", "kind", "genres", "cast", "release_date"],
    )
    targets = pd.DataFrame({"title_id": ["t"], "known_until": [day(9)]})
    out = similar_titles(catalogue, targets=targets, k=3).sort_values(
        "weight", ascending=False, ignore_index=True
    )
    # unit blocks: genres x 1, kind x 0.5, cast x 0.5; t . series = 1 / sqrt(1.5 x 1.25)
    expected = pd.DataFrame(
        {
            "title_id": ["t", "t"],
            "known_until": [day(9), day(9)],
            "other_title_id": ["same", "series"],
            "weight": [1.0, 1 / math.sqrt(1.5 * 1.25)],
        }
    )
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-9)


# --- baseline and metrics -----------------------------------------------------------


def test_genre_average_falls_back_to_the_region_then_to_every_title(spark):
    train = spark.createDataFrame(
        [
            ("gb", "drama", 10.0),
            ("gb", "drama", 30.0),
            ("gb", "comedy", 100.0),
            ("de", "drama", 5.0),
        ],
        "region string, primary_genre string, views_28d double",
    )
    rows = spark.createDataFrame(
        [("gb", "x", "drama"), ("gb", "y", "horror"), ("de", "z", "comedy"), ("fr", "w", "drama")],
        "region string, title_id string, primary_genre string",
    )
    expected = spark.createDataFrame(
        [
            ("gb", "x", "drama", 20.0),
            ("gb", "y", "horror", 140.0 / 3),  # no horror in gb: gb's mean
            ("de", "z", "comedy", 5.0),
            ("fr", "w", "drama", 145.0 / 4),  # nothing in fr: every training row
        ],
        "region string, title_id string, primary_genre string, genre_average double",
    )
    assert_approx_df_equality(
        genre_average(train, rows=rows), expected, 1e-9, ignore_row_order=True, ignore_nullable=True
    )


def test_wape_and_spearman_per_region_on_hand_computed_numbers():
    frame = pd.DataFrame(
        [
            # region, title, actual, gbt (right order), genre average (constant in gb)
            ("gb", "a", 10.0, 12.0, 20.0),
            ("gb", "b", 20.0, 18.0, 20.0),
            ("gb", "c", 40.0, 30.0, 20.0),
            ("de", "a", 5.0, 1.0, 4.0),
            ("de", "b", 1.0, 2.0, 2.0),
            ("de", "c", 3.0, 3.0, 3.0),
        ],
        columns=["region", "title_id", "views_28d", "gbt", "genre_average"],
    )
    m = audience_metrics(frame, models=("gbt", "genre_average")).set_index(["model", "region"])
    assert m.loc[("gbt", "gb"), "wape"] == pytest.approx(14 / 70)
    assert m.loc[("gbt", "de"), "wape"] == pytest.approx(5 / 9)
    assert m.loc[("gbt", "all"), "wape"] == pytest.approx(19 / 79)
    assert m.loc[("genre_average", "all"), "wape"] == pytest.approx(32 / 79)
    assert m.loc[("gbt", "gb"), "spearman"] == pytest.approx(1.0)
    assert m.loc[("gbt", "de"), "spearman"] == pytest.approx(-0.5)
    assert m.loc[("genre_average", "gb"), "spearman"] == 0.0  # a constant orders nothing
    assert m.loc[("genre_average", "de"), "spearman"] == pytest.approx(1.0)
    assert m.loc[("genre_average", "all"), "spearman"] == pytest.approx(0.5)
    assert m.loc[("gbt", "all"), "spearman"] == pytest.approx(0.25)  # mean over regions
    assert m.loc[("gbt", "all"), "titles"] == 3


# --- the whole run on a small generated lake ------------------------------------------

DAYS = 70
END = day(DAYS - 1)
REGIONS = {"gb": 1.0, "de": 0.5, "fr": 0.3}
GENRE_POOL = ("drama", "comedy", "action", "kids")
STARS = {f"s{i}": power for i, power in enumerate([0.0] * 6 + [1.0] * 3 + [2.0] * 3)}


def _catalogue(seed: int = 11) -> list[dict]:
    """40 back-catalogue titles, 60 launches on days 0..42 and 6 on days 50..80. A
    title's popularity: its stars' power (mean over 2-3 of 12 people, the same people
    across old and new titles), its genre, its kind and lognormal noise."""
    rng = np.random.default_rng(seed)
    releases = (
        [int(-rng.integers(60, 900)) for _ in range(40)]
        + [int(d) for d in np.linspace(0, 42, 60).round()]
        + [50, 55, 60, 66, 72, 80]
    )
    appeal = {"drama": 0.0, "comedy": 0.2, "action": 0.4, "kids": -0.2}
    people = list(STARS)
    out = []
    for i, release in enumerate(releases):
        cast = list(rng.choice(people, size=int(rng.integers(2, 4)), replace=False))
        genre = GENRE_POOL[int(rng.integers(len(GENRE_POOL)))]
        kind = "movie" if rng.random() < 0.6 else "series"
        power = float(np.mean([STARS[c] for c in cast]))
        log_pop = (
            1.0
            + 1.3 * power
            + appeal[genre]
            + 0.3 * (kind == "series")
            + float(rng.normal(0, 0.25))
        )
        regions = [r for r in REGIONS if r == "gb" or rng.random() < 0.85]
        out.append(
            {
                "title_id": f"t{i:03d}",
                "title_idx": i,
                "kind": kind,
                "genres": [genre],
                "cast": cast,
                "release": release,
                "log_pop": log_pop,
                "regions": regions,
            }
        )
    return out


def write_lake(spark, lake_root: str, *, seed: int = 5) -> None:
    """region_title_daily (days with views only), bronze titles and the ground truth."""
    rng = np.random.default_rng(seed)
    catalogue = _catalogue()
    lake = lk.Lake(lake_root)
    written_at = dt.datetime(2026, 3, 20)
    rows, truth_regions = [], []
    for t in catalogue:
        for region in REGIONS:
            multiplier = float(np.exp(rng.normal(0.0, 0.2)))
            truth_regions.append((t["title_idx"], region, multiplier, region in t["regions"]))
            if region not in t["regions"]:
                continue
            for i in range(max(t["release"], 0), DAYS):
                age = i - t["release"]
                spike = 1.0 + 4.0 * np.exp(-age / 7.0)
                mean = np.exp(t["log_pop"]) * REGIONS[region] * multiplier * spike
                views = int(rng.poisson(mean))
                if views:
                    ts = dt.datetime.combine(day(i), dt.time(22))
                    rows.append(
                        (region, t["title_id"], views, views * 1.5, views, ts, day(i), written_at)
                    )
    frame = spark.createDataFrame(rows, REGION_TITLE_DAILY.schema)
    # one file, not a partition a day: the series reads the same, the fixture is faster
    frame.coalesce(1).write.format("delta").mode("overwrite").save(
        lake.features("region_title_daily")
    )
    bronze = bronze_frame(
        spark,
        "titles",
        [
            {
                "event_ts": dt.datetime(2025, 12, 1),
                "title_id": t["title_id"],
                "name": t["title_id"],
                "kind": t["kind"],
                "genres": t["genres"],
                "cast": t["cast"],
                "release_date": day(t["release"]),
                "duration_minutes": 100 if t["kind"] == "movie" else 45,
                "episodes": 8 if t["kind"] == "series" else None,
                "available_regions": t["regions"],
                "artwork": [],
            }
            for t in catalogue
        ],
    )
    bronze.write.format("delta").mode("overwrite").save(lake.bronze("titles"))
    truth = lake.ground_truth
    spark.createDataFrame(
        [(t["title_idx"], t["title_id"], t["log_pop"]) for t in catalogue],
        "title_idx int, title_id string, base_log_pop double",
    ).write.format("delta").mode("overwrite").save(f"{truth}/titles")
    spark.createDataFrame(
        truth_regions,
        "title_idx int, region string, popularity_multiplier double, available boolean",
    ).write.format("delta").mode("overwrite").save(f"{truth}/title_regions")


SETTINGS = AudienceSettings(
    eval_days=14, gbt=GBTParams(max_iter=20, max_depth=3, min_instances_per_node=5)
)


@pytest.fixture(scope="module")
def audience_run(spark, tmp_path_factory):
    """The audience step of a forecast run (``train_forecast`` calls the same function on
    the same series), on the generated lake."""
    config = make_config(tmp_path_factory.mktemp("audience"))
    write_lake(spark, config.lake)
    data = load_series(spark, config.lake, END, min_days=1)
    series = data.series.persist()
    try:
        truth = audience_ceiling(spark, config)
        result, note = train_audience(spark, config.lake, data, series, SETTINGS, truth)
    finally:
        series.unpersist()
    assert result is not None, note
    return config, result


def test_the_model_beats_the_genre_average_on_launches_it_never_saw(audience_run):
    _, result = audience_run
    print("\n" + "\n".join(result.format_lines()))
    # 60 launches on days 0..42 evenly: those from day 29 (42 - 14 + 1) are evaluated
    assert (result.eval_start, result.eval_end) == (day(29), day(42))
    assert result.train_titles + result.eval_titles == 60
    assert 15 <= result.eval_titles <= 25
    evaluated = pd.to_datetime(result.evaluation["release_date"]).dt.date
    assert evaluated.min() >= day(29) and evaluated.max() <= day(42)
    assert len(result.evaluation) == result.eval_rows
    gbt, baseline = result.value("gbt"), result.value("genre_average")
    assert gbt < 0.8 * baseline, result.format_lines()
    assert result.value("gbt", "spearman") > result.value("genre_average", "spearman") + 0.2
    # the truth's latent popularity is the better feature still
    assert result.value("truth_ceiling") < gbt
    # the cast's past views are what the model learnt most from
    top = sorted(result.importances, key=result.importances.get, reverse=True)[:3]
    assert any(name.startswith("cast_") for name in top), result.importances
    assert set(result.metrics["region"]) == {"all", *REGIONS}


def test_titles_still_launching_are_predicted_and_written_once(spark, audience_run):
    config, result = audience_run
    # the 6 launches on days 50..80: known until the day before release or the last day
    upcoming = result.upcoming.drop_duplicates("title_id")
    assert [(r.release_date, r.known_until) for r in upcoming.itertuples()] == [
        (day(d), min(day(d - 1), END)) for d in (50, 55, 60, 66, 72, 80)
    ]
    assert (result.upcoming["predicted_views_28d"] > 0).all()
    for _ in range(2):  # a re-run of the same date replaces its partition
        count = write_audience(spark, config.lake, result.upcoming, as_of=END, model_version="7")
    written = lk.read_table(spark, output_path(config.lake, AUDIENCE))
    assert count == written.count() == len(result.upcoming)
    expected = spark.createDataFrame(
        result.upcoming.assign(model_version="7", as_of_date=END),
        "region string, title_id string, release_date date, known_until date, "
        "predicted_views_28d double, model_version string, as_of_date date",
    )
    assert_approx_df_equality(written, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_the_audience_evaluation_is_logged_to_mlflow(audience_run):
    config, result = audience_run
    configure_mlflow(config, "audience-test")
    with mlflow.start_run() as active:
        log_audience(result)
    logged = mlflow.MlflowClient().get_run(active.info.run_id)
    metrics = logged.data.metrics
    assert metrics["audience.gbt.wape"] == pytest.approx(result.value("gbt"))
    assert metrics["audience.genre_average.wape"] == pytest.approx(result.value("genre_average"))
    assert metrics["audience.truth_ceiling.spearman"] == pytest.approx(
        result.value("truth_ceiling", "spearman")
    )
    assert metrics["audience.gbt.spearman.gb"] == pytest.approx(
        result.value("gbt", "spearman", "gb")
    )
    assert metrics["audience.wape_improvement_vs_genre_average"] == pytest.approx(
        result.improvement()
    )
    assert metrics["audience.eval_titles"] == result.eval_titles
    assert logged.data.tags["data.audience_eval_releases"] == f"{day(29)},{day(42)}"
    artifacts = {
        a.path for a in mlflow.MlflowClient().list_artifacts(active.info.run_id, "audience")
    }
    assert {
        "audience/predicted_vs_actual.png",
        "audience/metrics.json",
        "audience/evaluation.json",
        "audience/importances.json",
    } <= artifacts
    # the final model is logged in the run and loads back
    model = mlflow.spark.load_model(f"runs:/{active.info.run_id}/new_title_audience")
    assert model.stages[2].getNumTrees == 20
    # reports read the evaluation back through the registered forecast version
    client = mlflow.MlflowClient()
    assert audience_report(client).startswith("new-title audience: no popularity_forecast")
    mlflow.register_model(f"runs:/{active.info.run_id}/new_title_audience", MODEL_NAME)
    text = audience_report(client)
    assert text.startswith(f"new-title audience ({MODEL_NAME} v1; first 28 days per region")
    assert f"WAPE gbt {result.value('gbt'):.3f}" in text
    assert f"truth ceiling {result.value('truth_ceiling'):.3f}" in text
    assert f"genre average {result.value('genre_average', 'spearman'):.2f}" in text


def test_every_leaf_holds_several_titles_rows():
    settings = AudienceSettings(min_leaf_titles=4, gbt=GBTParams(min_instances_per_node=5))
    # 22 launches over 266 region rows: 12.1 rows a title, so 49 rows a leaf
    assert leaf_params(settings, rows=266, titles=22).min_instances_per_node == 49
    assert leaf_params(settings, rows=6, titles=6).min_instances_per_node == 5  # the floor
    assert leaf_params(settings, rows=266, titles=22).max_iter == settings.gbt.max_iter


def test_forecast_settings_carry_the_audience_parameters():
    params = ForecastSettings(audience=SETTINGS).params()
    assert params["audience.eval_days"] == 14
    assert params["audience.gbt.max_iter"] == 20
    assert params["audience.launch_days"] == 28
    with pytest.raises(ValueError, match="eval_days must be at least 1"):
        AudienceSettings(eval_days=0)

"""The recommender on generated platform data (the shared model world): train, evaluate
against the next days' views and the ground truth, log and register in MLflow, load the
registered pyfunc, batch-score to Delta."""

from __future__ import annotations

import dataclasses

import mlflow
import pandas as pd
import pytest
from conftest import make_config
from pandas.testing import assert_frame_equal
from pyspark.sql import functions as F
from worlds import model_day

from feature_store import lake as lk
from feature_store.recs.data import RecsDataError
from feature_store.recs.steps import (
    _append_staging,
    score_profiles,
    similar_titles,
    train_recommender,
)
from feature_store.recs.tracking import EXPERIMENT, MODEL_NAME, log_recommender_run
from feature_store.synthetic.ceilings import recs_ceiling
from feature_store.tracking import configure_mlflow

# The shared model world (tests/worlds.py): 4,000 accounts over 47 days with features
# built as of days 29 and 32 (and 46); three days of views after AS_OF are the truth.
AS_OF = model_day(32)
SMALL = {"als_params": {"rank": 8, "iterations": 4}, "ease_grid": ({"lambda_": 50.0},)}


@pytest.fixture(scope="module")
def trained(spark, model_world, tmp_path_factory):
    state = tmp_path_factory.mktemp("recs-platform")
    model_world.copy(state)
    config = make_config(state)
    # the generators of the ranker's training window learn as of AS_OF - 3 days
    ceiling = recs_ceiling(spark, config)
    run = train_recommender(spark, config, AS_OF, label_days=3, k=10, ceiling=ceiling, **SMALL)
    return config, run


def test_every_model_is_evaluated_against_the_next_days(trained):
    _, run = trained
    names = set(run.evaluation)
    assert {"trending", "content", "als", "ease", "popularity", "ensemble"} <= names
    assert {"ensemble_calibrated", "ground_truth_ideal"} <= names
    for metrics in run.evaluation.values():
        for name in ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage"):
            assert 0.0 <= metrics[name] <= 1.0, (name, metrics)
    ndcg = {name: m["ndcg@10"] for name, m in run.evaluation.items()}
    # the hidden utilities know more than any model; the blend is no worse than
    # popularity, which does not personalise at all
    assert ndcg["ground_truth_ideal"] > ndcg["popularity"]
    assert ndcg["ensemble"] >= ndcg["popularity"] - 0.01
    # calibration widens the genre mix toward the history: miscalibration goes down
    assert (
        run.evaluation["ensemble_calibrated"]["miscalibration"]
        < run.evaluation["ensemble"]["miscalibration"]
    )
    # the ranker learnt from the sessions after its generators' data, with context
    report = run.ranker_report
    assert report["generators_as_of"] == model_day(29).isoformat()
    assert report["label_window"] == [model_day(30).isoformat(), AS_OF.isoformat()]
    assert 0 < report["positives"] < report["training_rows"]
    # the generators chose their settings on the ranker's days (no split, no refit), and
    # the final fit takes their EASE settings and blend: validated once
    assert run.trained.validation["on"] == "the later window"
    assert run.trained.validation["settings_reused"]
    chosen = run.trained.validation["blend"]["weights"]
    assert {n: w for n, w in run.trained.ensemble.weights.items() if w} == {
        n: w for n, w in chosen.items() if w
    }
    sessions = report["evaluation"]
    assert 0.0 <= sessions["ranker"]["ndcg@10"] <= 1.0
    assert 0.0 <= sessions["ensemble"]["ndcg@10"] <= 1.0
    # the same profiles get other lists on a phone at noon than on the TV at night
    assert sessions["context_list_overlap"] < 1.0
    data = run.data
    table = run.format_table(10)
    assert "ground_truth_ideal" in table.splitlines()[-2]
    assert table.splitlines()[-1].startswith("per session (")
    # the truth holds only titles the profile had not interacted with by the as-of date
    pairs = [zip(f["user_id"], f["item_id"], strict=True) for f in (data.interactions, data.truth)]
    assert not set(pairs[0]) & set(pairs[1])


def test_registered_model_loads_and_serves_known_and_new_profiles(spark, trained):
    config, run = trained
    configure_mlflow(config, EXPERIMENT)
    version = log_recommender_run(run, k=10)
    assert version == "1"
    client = mlflow.MlflowClient()
    tags = client.get_model_version(MODEL_NAME, version).tags
    assert tags["data.as_of"] == AS_OF.isoformat() and tags["data.label_days"] == "3"
    logged = client.get_run(tags["run_id"])
    assert logged.data.params["lineage.profile_title_interactions.version"] == str(
        run.feature_versions["profile_title_interactions"]
    )
    assert "ensemble.ndcg_at_10" in logged.data.metrics
    artifacts = {a.path for a in client.list_artifacts(tags["run_id"], "plots")}
    assert artifacts == {"plots/ndcg_by_k.png", "plots/coverage_and_popularity_bias.png"}

    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}")
    known = run.data.interactions["user_id"].iloc[0]
    out = model.predict(
        pd.DataFrame({"profile_id": [known, "never-seen"], "region": [None, "US"]}),
        params={"k": 5},
    )
    assert out.groupby("profile_id")["rank"].apply(list).to_dict() == {
        known: [1, 2, 3, 4, 5],
        "never-seen": [1, 2, 3, 4, 5],
    }
    in_context = model.predict(
        pd.DataFrame({"profile_id": [known], "device": ["mobile"], "local_hour": [12]}),
        params={"k": 5},
    )
    assert in_context["rank"].tolist() == [1, 2, 3, 4, 5]
    seen = set(run.data.interactions.loc[run.data.interactions["user_id"] == known, "item_id"])
    assert not seen & set(in_context["title_id"])
    assert not seen & set(out.loc[out["profile_id"] == known, "title_id"])
    new_list = out.loc[out["profile_id"] == "never-seen", "title_id"].tolist()
    assert new_list == run.serving.trending.top_for("US", None, 5)["item_id"].tolist()


def test_batch_scoring_writes_top_titles_and_similar_titles(spark, trained):
    config, run = trained
    run = dataclasses.replace(run, model_version="7")
    rows = score_profiles(spark, config, run, k=5)
    lake = lk.Lake(config.lake)
    top = lk.read_table(spark, lake.recs("top_titles")).filter(F.col("as_of_date") == AS_OF)
    profiles = lk.read_table(spark, lake.features("profile_daily")).filter(
        F.col("as_of_date") == AS_OF
    )
    assert top.count() == rows == 5 * profiles.count()
    assert top.select("model_version").distinct().collect()[0][0] == "7"
    per_profile = top.groupBy("profile_id").agg(F.sort_array(F.collect_list("rank")).alias("r"))
    assert {tuple(r.r) for r in per_profile.collect()} == {(1, 2, 3, 4, 5)}
    interactions = lk.read_table(spark, lake.features("profile_title_interactions")).filter(
        (F.col("as_of_date") == AS_OF) & (F.col("confidence") > 0)
    )
    assert top.join(interactions, ["profile_id", "title_id"]).count() == 0
    # the lists written are the served lists: threads and staging change nothing
    written = top.select("profile_id", "title_id", "rank").toPandas()
    known = run.serving.ensemble.data.user_index(written["profile_id"].unique())[0]
    served = pd.concat(run.serving.recommend_blocks(known, 5, block=7, workers=2))
    assert_frame_equal(
        served.rename(columns={"user_id": "profile_id", "item_id": "title_id"})[
            ["profile_id", "title_id", "rank"]
        ]
        .sort_values(["profile_id", "rank"])
        .reset_index(drop=True),
        written[written["profile_id"].isin(known)]
        .sort_values(["profile_id", "rank"])
        .reset_index(drop=True),
        check_dtype=False,
    )
    in_one_go = run.serving.recommend(known, 5)
    assert_frame_equal(
        served.sort_values(["user_id", "rank"]).reset_index(drop=True),
        in_one_go.sort_values(["user_id", "rank"]).reset_index(drop=True),
    )
    assert not lk.list_files(spark, lake.recs("_staging"))
    assert score_profiles(spark, config, run, k=5) == rows  # a re-run replaces the date
    assert lk.read_table(spark, lake.recs("top_titles")).count() == rows

    pairs = similar_titles(spark, config, run, k=3)
    similar = lk.read_table(spark, lake.recs("similar_titles")).toPandas()
    assert len(similar) == pairs > 0
    assert (similar["title_id"] != similar["similar_title_id"]).all()
    assert similar.groupby("title_id")["rank"].max().max() <= 3


def test_each_staging_flush_writes_one_file_per_core_whatever_the_arrow_batches(spark, tmp_path):
    # PySpark makes a partition of every Arrow batch: 2M rows were 200 files per flush
    recs = pd.DataFrame(
        {
            "user_id": [f"p{i // 5}" for i in range(60)],
            "item_id": [f"t{i % 5}" for i in range(60)],
            "score": [1.0 / (1 + i % 5) for i in range(60)],
            "rank": [1 + i % 5 for i in range(60)],
        }
    )
    staging = str(tmp_path / "staging")
    # 7-row batches, and no local relation (which small frames become instead)
    settings = {
        "spark.sql.execution.arrow.maxRecordsPerBatch": "7",
        "spark.sql.execution.arrow.localRelationThreshold": "0",
    }
    with lk.session_settings(spark, settings):
        _append_staging(spark, [recs.iloc[:25], recs.iloc[25:]], staging)
        _append_staging(spark, [], staging)  # an empty flush adds no rows
    files = [p for p, _ in lk.list_files(spark, staging) if p.endswith(".parquet")]
    assert 0 < len(files) <= 2 * spark.sparkContext.defaultParallelism
    written = spark.read.parquet(staging).toPandas().sort_values(["profile_id", "rank"])
    expected = recs.rename(columns={"user_id": "profile_id", "item_id": "title_id"})
    assert_frame_equal(
        written.reset_index(drop=True),
        expected.sort_values(["profile_id", "rank"]).reset_index(drop=True),
        check_dtype=False,
    )


def test_missing_features_name_the_problem(spark, tmp_path):
    config = make_config(tmp_path)
    with pytest.raises(RecsDataError, match="no profile_title_interactions table"):
        train_recommender(spark, config, AS_OF)


def test_an_unknown_validation_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="validation must be one of .* not 'k_fold'"):
        train_recommender(None, make_config(tmp_path), AS_OF, validation="k_fold")


def test_a_date_without_profiles_is_refused_rather_than_scored_empty(spark, model_world):
    from feature_store.recs.steps import profile_groups

    day = model_day(30)  # the world's profile_daily holds days 29, 32 and 46 only
    with pytest.raises(RecsDataError, match=f"profile_daily has no profile as of {day}"):
        profile_groups(spark, model_world.lake, day)

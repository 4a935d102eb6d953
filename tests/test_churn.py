"""Churn: labels and snapshots (point-in-time, no leakage), the hidden hazard's ceiling,
the metrics on hand-computed cases, snapshot choice, and the whole job on a generated
lake -- trained, beaten by nothing simpler, registered in MLflow, loaded back, and every
account scored to Delta with a band and reasons."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from conftest import make_config
from feature_world import bronze_frame
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.churn import evaluate as M
from feature_store.churn.data import (
    ChurnDataError,
    aggregate_profiles,
    load_snapshots,
    with_labels,
)
from feature_store.churn.model import ClassWeights
from feature_store.churn.steps import (
    SCORES_TABLE,
    choose_snapshots,
    score_accounts,
)
from feature_store.churn.tracking import MODEL_NAME
from feature_store.churn.train import train_register_and_score
from feature_store.features.definitions import AS_OF, WRITTEN_AT
from feature_store.features.tables import ACCOUNT_DAILY, PROFILE_DAILY
from feature_store.synthetic.ceilings import churn_ceiling


def d(day: int) -> dt.date:
    return dt.date(2026, 2, 1) + dt.timedelta(days=day)


# --- labels --------------------------------------------------------------------------


def test_a_cancel_counts_only_inside_the_window_after_the_snapshot(spark):
    spine = spark.createDataFrame(
        [("a", d(0)), ("b", d(0)), ("c", d(0)), ("d", d(0)), ("a", d(7))],
        "account_id string, snapshot_date date",
    )
    cancels = spark.createDataFrame(
        [
            ("a", d(30)),  # the window's last day for the d(0) snapshot, and in d(7)'s
            ("b", d(0)),  # on the snapshot day itself: before the window
            ("c", d(31)),  # one day after the window
            ("d", d(1)),  # the window's first day ...
            ("d", d(5)),  # ... and a second cancel: the first one is the date
        ],
        "account_id string, event_date date",
    )
    labelled = with_labels(spine, cancels, horizon_days=30)
    expected = spark.createDataFrame(
        [
            ("a", d(0), d(30), 1),
            ("a", d(7), d(30), 1),
            ("b", d(0), None, 0),
            ("c", d(0), None, 0),
            ("d", d(0), d(1), 1),
        ],
        "account_id string, snapshot_date date, cancel_date date, label int",
    )
    assert_df_equality(
        labelled.select("account_id", "snapshot_date", "cancel_date", "label"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    with pytest.raises(ValueError, match="horizon_days must be >= 1"):
        with_labels(spine, cancels, horizon_days=0)


def test_profile_rows_are_summed_averaged_and_minimised_per_account(spark):
    rows = spark.createDataFrame(
        [
            ("a", d(0), 4, 0.5, 1, 2, 0, -1.0, 3.0),
            ("a", d(0), 6, None, 3, 0, 1, 0.5, 0.0),
            ("b", d(0), 1, 1.0, 0, 0, 0, 0.0, 1.0),
        ],
        "account_id string, snapshot_date date, "
        + ", ".join(
            f"profile_daily__{c} {t}"
            for c, t in [
                ("count_distinct_titles_28d", "long"),
                ("completion_rate_28d", "double"),
                ("count_searches_28d", "long"),
                ("count_thumbs_up_28d", "long"),
                ("count_thumbs_down_28d", "long"),
                ("trend_watch_hours_per_day_7d_vs_prior_21d", "double"),
                ("sum_watch_hours_28d", "double"),
            ]
        ),
    )
    expected = spark.createDataFrame(
        [("a", d(0), 10, 0.5, 4, 2, 1, -1.0, 0.5), ("b", d(0), 1, 1.0, 0, 0, 0, 0.0, 0.0)],
        "account_id string, snapshot_date date, sum_profile_distinct_titles_28d long, "
        "mean_profile_completion_rate_28d double, sum_profile_searches_28d long, "
        "sum_profile_thumbs_up_28d long, sum_profile_thumbs_down_28d long, "
        "min_profile_trend_watch_hours_per_day double, share_idle_profiles_28d double",
    )
    assert_df_equality(
        aggregate_profiles(rows), expected, ignore_row_order=True, ignore_nullable=True
    )


# --- point in time: nothing after the snapshot reaches it -----------------------------------

_DEFAULTS = {"string": "x", "long": 0, "int": 0, "double": 0.0}


def _feature_frame(spark, table, rows):
    """Rows of a feature table with every declared column (unset ones: 0 / first value)."""
    full = []
    for row in rows:
        values = {}
        for column in table.columns:
            if column.allowed:
                values[column.name] = column.allowed[0]
            elif column.dtype == "timestamp":
                values[column.name] = dt.datetime.combine(row[AS_OF], dt.time(12))
            else:
                values[column.name] = None if column.nullable else _DEFAULTS[column.dtype]
        values[WRITTEN_AT] = dt.datetime.combine(row[AS_OF] + dt.timedelta(days=1), dt.time(1))
        values.update(row)
        full.append(tuple(values[f.name] for f in table.schema.fields))
    return spark.createDataFrame(full, table.schema)


@pytest.fixture(scope="module")
def tiny_lake(spark, tmp_path_factory):
    lake = lk.Lake(str(tmp_path_factory.mktemp("churn-pit") / "lake"))
    snapshot = d(10)
    later = d(11)
    accounts = [
        {"account_id": "a1", AS_OF: snapshot, "sum_watch_hours_7d": 1.0, "plan": "basic"},
        # the next day's row -- written at once, so only the as-of date keeps it out
        {"account_id": "a1", AS_OF: later, "sum_watch_hours_7d": 99.0, "plan": "premium"},
        {"account_id": "a2", AS_OF: later, "sum_watch_hours_7d": 5.0},  # joined after
    ]
    profiles = [
        {"profile_id": "p1", "account_id": "a1", AS_OF: snapshot, "count_searches_28d": 2},
        {"profile_id": "p2", "account_id": "a1", AS_OF: snapshot, "count_searches_28d": 3},
        {"profile_id": "p1", "account_id": "a1", AS_OF: later, "count_searches_28d": 50},
    ]
    for table, rows in ((ACCOUNT_DAILY, accounts), (PROFILE_DAILY, profiles)):
        lk.overwrite(
            _feature_frame(spark, table, rows), lake.features(table.name), partition_by=[AS_OF]
        )
    subscriptions = bronze_frame(
        spark,
        "subscriptions",
        [
            {
                "account_id": "a1",
                "event_type": "cancel",
                "plan": "basic",
                "event_ts": dt.datetime.combine(d(14), dt.time(9)),
            },
            {
                "account_id": "a2",
                "event_type": "plan_change",
                "plan": "basic",
                "event_ts": dt.datetime.combine(d(20), dt.time(9)),
            },
        ],
    )
    lk.overwrite(subscriptions, lake.bronze("subscriptions"), partition_by=["event_date"])
    return lake.root


def test_a_feature_dated_after_the_snapshot_never_reaches_training(spark, tiny_lake):
    data = load_snapshots(spark, tiny_lake, [d(10)], horizon_days=10)
    got = data.frame.select(
        "account_id",
        "snapshot_date",
        "plan",
        "sum_watch_hours_7d",
        "sum_profile_searches_28d",
        "label",
        "cancel_date",
    )
    expected = spark.createDataFrame(
        [("a1", d(10), "basic", 1.0, 5, 1, d(14))],
        "account_id string, snapshot_date date, plan string, sum_watch_hours_7d double, "
        "sum_profile_searches_28d long, label int, cancel_date date",
    )
    assert_df_equality(got, expected, ignore_nullable=True)
    assert data.table_versions == {
        "account_daily": 0,
        "profile_daily": 0,
        "bronze.subscriptions": 0,
    }
    assert data.labels_through == d(20)


def test_a_label_window_past_the_subscription_log_is_refused(spark, tiny_lake):
    with pytest.raises(ChurnDataError, match=r"through 2026-02-23 .* ends on 2026-02-21"):
        load_snapshots(spark, tiny_lake, [d(10)], horizon_days=12)
    with pytest.raises(ChurnDataError, match=r"no account_daily/profile_daily partition.*"):
        load_snapshots(spark, tiny_lake, [d(9)], horizon_days=5)


# --- metrics ---------------------------------------------------------------------------------


def test_ranking_metrics_on_hand_computed_cases():
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.4, 0.1])
    # pairs (pos, neg): 0.9 beats all 3; 0.4 beats 0.1, ties 0.4, loses to 0.8 -> 1.5
    assert M.roc_auc(labels, scores) == pytest.approx(4.5 / 6)
    # thresholds 0.9 (P 1, R .5), 0.8 (P .5, R .5), 0.4 (2 of 4, R 1): .5*1 + .5*.5
    assert M.average_precision(labels, scores) == pytest.approx(0.75)
    assert M.roc_auc(np.array([0, 0]), np.array([0.1, 0.2])) != M.roc_auc(
        np.array([0, 0]), np.array([0.1, 0.2])
    )  # NaN: one class only
    twenty = np.array([1] * 4 + [0] * 16)
    lifts = M.lift_by_decile(twenty, np.linspace(1, 0, 20))
    # the top tenth (2 rows) are both positives: rate 1 over the base 0.2
    assert lifts[:3] == pytest.approx([5.0, 5.0, 0.0])


def test_probability_metrics_on_hand_computed_cases():
    labels = np.array([1, 0, 0, 1])
    p = np.array([0.8, 0.2, 0.4, 0.6])
    assert M.log_loss(labels, p) == pytest.approx(
        -(math.log(0.8) + math.log(0.8) + math.log(0.6) + math.log(0.6)) / 4
    )
    assert M.brier(labels, p) == pytest.approx((0.04 + 0.04 + 0.16 + 0.16) / 4)
    bins = M.reliability(labels, p, bins=2)
    assert bins == [
        {"mean_predicted": pytest.approx(0.3), "observed_rate": 0.0, "rows": 2},
        {"mean_predicted": pytest.approx(0.7), "observed_rate": 1.0, "rows": 2},
    ]
    assert M.expected_calibration_error(labels, p) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        M.roc_auc(np.array([2, 0]), np.array([0.1, 0.2]))


def test_class_weights_balance_the_classes_and_their_odds_are_shifted_back(spark):
    weights = ClassWeights.balanced(positives=10, rows=100)
    assert (weights.positive, weights.negative) == pytest.approx((5.0, 100 / 180))
    # a model trained with these weights says 0.5 where the data's own odds are 1:9
    frame = spark.createDataFrame([(0.5,)], "p double")
    corrected = frame.select(weights.correct(F.col("p")).alias("p")).first()["p"]
    assert corrected == pytest.approx(0.1)
    with pytest.raises(ValueError, match="both classes: 0 cancels among 50 rows"):
        ClassWeights.balanced(positives=0, rows=50)


def test_snapshots_have_full_feature_windows_and_their_labels_before_the_as_of_date():
    daily = [d(i) for i in range(0, 80)]
    common = {"horizon_days": 30, "history_start": d(0)}
    # windows full from day 29 (30-day lookback), labels by day 79: day 49 is the last
    train, test = choose_snapshots(daily, as_of=d(79), labels_through=d(79), **common)
    assert (train, test) == ((d(35), d(42)), d(49))
    weekly = [d(i) for i in range(0, 80, 7)]
    train, test = choose_snapshots(
        weekly, as_of=d(79), labels_through=d(77), max_train=2, every_days=7, **common
    )
    assert (train, test) == ((d(35),), d(42))
    # built dates that start later than the data: the window counts from the data's start
    train, test = choose_snapshots(
        [d(30), d(37), d(44)], as_of=d(74), labels_through=d(74), **common
    )
    assert (train, test) == ((d(30), d(37)), d(44))
    with pytest.raises(ChurnDataError, match="training needs an earlier snapshot"):
        choose_snapshots(daily[:60], as_of=d(59), labels_through=d(59), **common)
    with pytest.raises(ChurnDataError, match="the data needs to reach 2026-04-08"):
        choose_snapshots(daily[:41], as_of=d(40), labels_through=d(40), **common)


def test_the_history_plan_builds_as_many_churn_snapshots_as_the_rows_need():
    """Four training snapshots where accounts are few, one at millions of accounts: the
    planned dates are the snapshots', the recommender's two and nothing else."""
    from feature_store.synthetic import GenerationSpec, demo

    assert [demo.churn_train_snapshots(n) for n in (5_000, 100_000, 300_000, 2_000_000)] == [
        4,
        4,
        2,
        1,
    ]

    def snapshot_dates(accounts: int) -> list[dt.date]:
        spec = GenerationSpec(
            seed=1, accounts=accounts, titles=100, days=70, start_date=d(0), history_days=68,
            dirty_share=0.0, late_share=0.0, sessions_per_day=1.0,
        )  # fmt: skip
        plan = dict(demo.history_plan(spec))
        return plan[("account_daily", "profile_daily")]

    recs = [d(65), d(67)]
    # full 30-day windows from day 29, labelled 30 days on by day 69: day 39 is the last
    assert snapshot_dates(100_000) == [d(30), d(33), d(36), d(39), *recs]
    assert snapshot_dates(2_000_000) == [d(36), d(39), *recs]


# --- the whole job on a generated lake -------------------------------------------------------

# The shared model world (tests/worlds.py): 47 days of 4,000 accounts with features built
# as of days 29, 32 and 46. A 14-day horizon and snapshots 3 days apart keep it short:
# windows full from day 29, the training snapshot on day 29, the evaluation snapshot on
# day 32 labelled through day 46.
HORIZON = 14
EVERY_DAYS = 3
AS_OF_DATE = d(46)


@pytest.fixture(scope="module")
def churn_run(spark, model_world, tmp_path_factory):
    state = tmp_path_factory.mktemp("churn-platform")
    model_world.copy(state)
    config = make_config(state)
    run = train_register_and_score(
        spark,
        config,
        AS_OF_DATE,
        horizon_days=HORIZON,
        every_days=EVERY_DAYS,
        ceiling=churn_ceiling(spark, config),
    )
    return config, run


def test_churn_is_trained_out_of_time_and_beats_chance_below_its_ceiling(churn_run):
    _, run = churn_run
    assert run.train_snapshots == (d(29),)
    assert run.test_snapshot == d(32)
    gbt, logistic, ceiling = (run.evaluation[n] for n in ("gbt", "logistic", "hidden_hazard"))
    for metrics in (gbt, logistic, ceiling):
        assert 0.0 < metrics["log_loss"] < 1.0
        assert 0.0 <= metrics["pr_auc"] <= 1.0
    # On 2,700 training rows both models rank clearly better than chance (payment
    # failures, falling viewing); the hidden hazard, which knows each account's drift and
    # failure days, ranks far better than either (bench/bench_models.py has the figures at
    # scale).
    assert gbt["roc_auc"] > 0.6 and logistic["roc_auc"] > 0.6
    assert gbt["pr_auc"] > 1.5 * gbt["positive_rate"]
    assert ceiling["roc_auc"] > max(gbt["roc_auc"], logistic["roc_auc"]) + 0.1
    # corrected for the class weights, the mean prediction is near the cancel rate
    assert gbt["mean_predicted"] == pytest.approx(gbt["positive_rate"], abs=0.05)
    assert run.rows["test_rows"] > 400 and 0 < run.rows["test_cancels"] < run.rows["test_rows"]
    assert set(run.importances) >= {"count_payment_failures_30d", "plan", "region"}
    assert math.isclose(sum(run.importances.values()), 1.0, rel_tol=1e-6)
    table = run.format_table()
    assert "ceiling: hidden hazard" in table and "scored" in table.splitlines()[-1]


def test_churn_is_registered_with_its_plots_and_lineage(churn_run, tmp_path):
    config, run = churn_run
    client = mlflow.MlflowClient()
    version = client.get_model_version(MODEL_NAME, run.model_version)
    assert version.tags["data.as_of"] == "2026-03-19"
    assert version.tags["data.test_snapshot"] == "2026-03-05"
    mlflow_run = client.get_run(version.run_id)
    assert mlflow_run.data.metrics["gbt.roc_auc"] == pytest.approx(run.evaluation["gbt"]["roc_auc"])
    assert "ceiling.roc_auc" in mlflow_run.data.metrics
    assert mlflow_run.data.params["lineage.account_daily.version"] == str(
        run.lineage["table_versions"]["account_daily"]
    )
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "plots")}
    assert artifacts == {"plots/reliability.png", "plots/lift.png", "plots/feature_importances.png"}
    # the held-out rows, for the promotion gate to score a champion on the same data
    assert version.tags["evaluation.data"].startswith("sha256:")
    rows = pd.read_parquet(
        client.download_artifacts(version.run_id, "evaluation/rows.parquet", str(tmp_path))
    )
    assert len(rows) == run.rows["test_rows"] and rows["label"].sum() == run.rows["test_cancels"]
    assert set(rows["snapshot_date"]) == {run.test_snapshot}


def test_every_account_gets_a_risk_band_and_reasons_and_the_registered_model_agrees(
    spark, churn_run, tmp_path
):
    config, run = churn_run
    path = lk.Lake(config.lake).predictions(SCORES_TABLE)
    scores = lk.read_table(spark, path).filter(F.col(AS_OF) == F.lit(AS_OF_DATE)).toPandas()
    accounts = lk.read_table(spark, lk.Lake(config.lake).features("account_daily")).filter(
        F.col(AS_OF) == F.lit(AS_OF_DATE)
    )
    assert sorted(scores["account_id"]) == sorted(
        r[0] for r in accounts.select("account_id").collect()
    )
    assert set(scores["risk_band"]) == {"high", "medium", "low"}
    assert (scores["model_version"] == run.model_version).all()
    high = scores[scores["risk_band"] == "high"]
    assert (high["churn_probability"] >= run.scorer.high_threshold).all()
    for reasons in high["reasons"]:
        effects = [r["effect"] for r in reasons]
        assert 1 <= len(effects) <= 3 and all(e > 0 for e in effects)
        assert effects == sorted(effects, reverse=True)
        assert all(r["feature"] in run.scorer.reason_features for r in reasons)

    # a re-run of the date replaces its rows
    assert score_accounts(spark, config, run, model_version=run.model_version) == len(scores)
    assert lk.read_table(spark, path).count() == len(scores)

    # the registered pyfunc gives the same probabilities for the same feature rows
    rows = load_snapshots(spark, config.lake, [AS_OF_DATE], horizon_days=None).frame
    sample = rows.orderBy("account_id").limit(20).toPandas()
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{run.model_version}")
    predicted = model.predict(sample.drop(columns=["snapshot_date"]))
    merged = pd.merge(predicted, scores, on="account_id", suffixes=("", "_batch"))
    assert len(merged) == 20
    np.testing.assert_allclose(merged["churn_probability"], merged["churn_probability_batch"])
    assert (merged["risk_band"] == merged["risk_band_batch"]).all()

    # loading put the model's code folder first on sys.path; every module of the package
    # must still import with that path -- as MLflow's requirement inference does when the
    # next model is logged in this process (a partial copy of the package broke it in CI)
    imports = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
            "import feature_store.recs.tracking, feature_store.synthetic.demo",
            json.dumps(sys.path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert imports.returncode == 0, imports.stderr

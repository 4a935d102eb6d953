"""The artwork job on a generated lake: every policy trained from the logged impressions and
judged off-policy on the held-out days beside its true play rate, the served policy
registered, loaded back and asked for artwork, its table written for every title and
context, and promoted only when its lower bound clears the champion."""

from __future__ import annotations

import datetime as dt

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import make_config
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.artwork.ope import ESTIMATORS
from feature_store.artwork.steps import POLICIES, POLICY_TABLE, ArtworkSettings
from feature_store.artwork.tracking import MODEL_NAME
from feature_store.artwork.train import train_register_and_publish
from feature_store.registry import store
from feature_store.registry.audit import AuditLog
from feature_store.registry.policy import load_policy
from feature_store.registry.promotion import promote
from feature_store.synthetic.artwork_truth import artwork_ceiling

# The shared model world (tests/worlds.py): profile_daily as of days 29, 32 and 46, so the
# impressions of days 30 to 39 have a segment (TTL 7). Trained on days 24 to 34, judged on
# 35 and 36.
AS_OF = dt.date(2026, 2, 1) + dt.timedelta(days=36)
SETTINGS = ArtworkSettings(train_days=11, holdout_days=2, draws=64)


@pytest.fixture(scope="module")
def artwork(spark, model_world, tmp_path_factory):
    state = tmp_path_factory.mktemp("artwork")
    model_world.copy(state)
    config = make_config(state)
    run = train_register_and_publish(
        spark, config, AS_OF, ceiling=artwork_ceiling(spark, config), settings=SETTINGS
    )
    return config, run


def test_every_policy_is_judged_by_every_estimator_beside_its_true_play_rate(artwork):
    _, run = artwork
    assert set(run.estimates) == set(POLICIES)
    for estimates in run.estimates.values():
        assert list(estimates) == list(ESTIMATORS)
        for e in estimates.values():
            assert e.low < e.value < e.high and 0 < e.value < 1
    assert set(run.truth) == {*POLICIES, "oracle"}
    assert all(run.truth[p] <= run.truth["oracle"] for p in POLICIES)
    # The log is uniform: what was played is a draw of the uniform policy's true rate.
    ips = run.estimates["uniform"]["ips"]
    assert run.estimates["uniform"]["ips"].value == pytest.approx(run.logged_play_rate)
    assert abs(run.logged_play_rate - run.truth["uniform"]) < 4 * ips.stderr
    assert run.holdout_impressions == len(run.evaluation_rows) > 1_000


def test_the_served_policy_is_registered_and_draws_only_among_a_title_s_variants(artwork):
    config, run = artwork
    client = store.client_for(config)
    version = client.get_model_version(MODEL_NAME, run.model_version)
    assert version.tags["policy.served"] == run.chosen
    assert (
        version.tags["data.holdout_window"] == f"{run.holdout_window[0]}..{run.holdout_window[1]}"
    )
    metrics = client.get_run(version.run_id).data.metrics
    served = run.estimates[run.chosen]["dr"]
    assert metrics["served.dr"] == pytest.approx(served.value)
    assert metrics["served.dr_low"] == pytest.approx(served.low)
    assert metrics["truth.served"] == pytest.approx(run.truth[run.chosen])
    assert metrics["truth.oracle"] == pytest.approx(run.truth["oracle"])
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{run.model_version}")
    requests = pd.DataFrame(
        {
            "title_id": ["t-new", "t-new"],
            "segment": ["kids", "unknown"],
            "device": ["tv", "mobile"],
            "local_hour": [8, 21],
            "artwork_ids": [["a", "b", "c"], ["x", "y", "z", "w"]],
            "artwork_styles": [
                ["bright", "dark", "minimal"],
                ["close_up", "ensemble", "dark", "bright"],
            ],
        }
    )
    out = model.predict(requests, params={"seed": 3})
    assert all(a in ids for a, ids in zip(out["artwork_id"], requests["artwork_ids"], strict=True))
    assert out["artwork_id"].isin(["a", "b", "c", "x", "y", "z", "w"]).all()
    assert ((out["probability"] > 0) & (out["probability"] <= 1)).all()


def test_the_policy_table_gives_every_title_a_distribution_in_every_context(spark, artwork):
    config, run = artwork
    rows = lk.read_table(spark, lk.Lake(config.lake).predictions(POLICY_TABLE)).filter(
        F.col("as_of_date") == AS_OF
    )
    sums = rows.groupBy("title_id", "segment", "device", "daypart").agg(
        F.sum("probability").alias("total"), F.min("probability").alias("least")
    )
    totals = sums.toPandas()
    assert len(totals) == totals["title_id"].nunique() * 7 * 4 * 4
    assert np.allclose(totals["total"], 1.0)
    assert (totals["least"] >= SETTINGS.explore / 6 - 1e-12).all()
    assert set(rows.select("model_version").distinct().toPandas()["model_version"]) == {
        run.model_version
    }


def test_a_challenger_whose_lower_bound_is_below_the_champion_is_refused(spark, artwork):
    """The first version is champion; a second run that explores everything (so serves the
    uniform policy) has a lower bound below the champion's estimate on its own log."""
    config, first = artwork
    client = store.client_for(config)
    policy = load_policy(config.paths.registry_policy).for_model(MODEL_NAME)
    audit = AuditLog(spark, lk.Lake(config.lake).registry_audit)
    assert promote(client, policy, first.model_version, audit=audit, actor="test").passed
    uniform = ArtworkSettings(train_days=11, holdout_days=2, draws=64, explore=1.0, epsilon=1.0)
    second = train_register_and_publish(spark, config, AS_OF, settings=uniform, write=False)
    decision = promote(client, policy, second.model_version, audit=audit, actor="test")
    assert not decision.passed
    (check,) = [c for c in decision.checks if c.name.startswith("improvement over champion")]
    assert not check.passed
    assert "on the same evaluation data" in check.reason  # the same days and lake versions
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) == first.model_version

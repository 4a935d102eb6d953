"""The ranker's trees read into NumPy score exactly like Spark; features are what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_store.recs.ensemble import Blend
from feature_store.recs.models import Popularity
from feature_store.recs.ranker import (
    LABEL,
    RankerContext,
    candidate_rows,
    feature_names,
    fit_ranker,
    sample_sessions,
    with_features,
)

ITEMS = pd.DataFrame(
    {
        "item_id": ["t1", "t2", "t3", "t4"],
        "title": ["t1 (2020)", "t2 (2021)", "t3 (2022)", "t4 (2023)"],
        "genres": [["comedy"], ["drama"], ["comedy", "drama"], ["horror"]],
        "kind": ["movie", "series", "movie", "series"],
        "release_date": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-03-05"]),
    }
)
TRAIN = pd.DataFrame(
    {
        "user_id": ["a", "a", "b", "c"],
        "item_id": ["t1", "t2", "t1", "t3"],
        "rating": [1.0, 2.0, 1.0, 1.0],
        "timestamp": [1_773_000_000, 1_773_050_000, 1_772_900_000, 1_773_000_000],
    }
)


def test_candidates_carry_component_scores_and_features():
    pop = Popularity().with_catalogue(ITEMS["item_id"]).fit(TRAIN)
    blend = Blend({"popularity": pop}, {"popularity": 1.0})
    cands = candidate_rows(blend, ["a", "b"], 2)
    # a has seen t1, t2: candidates t3 (1 user), t4 (0 users); b: t2, t3 (1 user each)
    assert cands.groupby("user_id")["item_id"].apply(list).to_dict() == {
        "a": ["t3", "t4"],
        "b": ["t2", "t3"],
    }
    assert cands.loc[cands["user_id"] == "a", "popularity_score"].tolist() == [1.0, 0.0]
    assert cands.loc[cands["user_id"] == "a", "blend_rank"].tolist() == [1.0, 2.0]

    context = RankerContext.build(ITEMS, TRAIN, pd.Timestamp("2026-03-08"))
    sessions = pd.DataFrame(
        {"session_id": ["s1", "s2"], "user_id": ["a", "a"], "device": ["tv", "mobile"],
         "local_hour": [21, 12]}
    )  # fmt: skip
    rows = with_features(cands, sessions, context, TRAIN[TRAIN["user_id"] == "a"])
    assert len(rows) == 4  # two sessions x two candidates of a
    t3 = rows[(rows["session_id"] == "s2") & (rows["item_id"] == "t3")].iloc[0]
    # a watched one comedy and one drama: t3 (comedy and drama) gets all of a's genre mass
    assert t3["genre_affinity"] == pytest.approx(1.0)
    assert t3["device_mobile"] == 1.0 and t3["device_tv"] == 0.0
    assert t3["daypart_midday"] == 1.0 and t3["local_hour"] == 12.0
    assert t3["kind_movie"] == 1.0 and t3["genre_comedy"] == 1.0 and t3["genre_horror"] == 0.0
    assert t3["days_since_release"] == 7.0
    assert t3["popularity"] == pytest.approx(0.25)
    assert set(feature_names(["popularity"])) <= set(rows.columns)


def test_numpy_trees_give_sparks_margins(spark):
    rng = np.random.default_rng(3)
    names = feature_names(["popularity"])
    rows = pd.DataFrame(rng.normal(size=(600, len(names))), columns=names)
    # watched when a series is offered on a phone, not otherwise
    rows["device_mobile"] = (rows["device_mobile"] > 0).astype(float)
    rows["kind_series"] = (rows["kind_series"] > 0).astype(float)
    rows[LABEL] = ((rows["device_mobile"] == 1) & (rows["kind_series"] == 1)).astype(float)
    ranker, model = fit_ranker(spark, rows, ["popularity"], max_iter=6, max_depth=3)
    from pyspark.ml.feature import VectorAssembler

    frame = VectorAssembler(inputCols=names, outputCol="features").transform(
        spark.createDataFrame(rows[[*names, LABEL]])
    )
    spark_margin = np.array(
        [r[0][1] for r in model.transform(frame).select("rawPrediction").collect()]
    )
    np.testing.assert_allclose(ranker.trees.score(rows), spark_margin, rtol=1e-12, atol=1e-12)
    # and the trees found the device x kind interaction (a quarter of the rows are 1)
    accuracy = ((ranker.trees.score(rows) > 0) == (rows[LABEL] == 1)).mean()
    assert accuracy > 0.97
    ranked = ranker.rank(
        rows.assign(session_id=np.arange(600) % 3, item_id=np.arange(600)), "session_id", 2
    )
    assert ranked.groupby("session_id")["rank"].apply(list).tolist() == [[1, 2]] * 3


def test_a_title_missing_from_the_catalogue_gets_defined_features():
    """Watched titles can be absent from the catalogue; the trees cannot take a null."""
    train = pd.concat(
        [TRAIN, pd.DataFrame({"user_id": ["b"], "item_id": ["t9"], "rating": [1.0],
                              "timestamp": [1_773_000_000]})],
        ignore_index=True,
    )  # fmt: skip
    pop = Popularity().with_catalogue(ITEMS["item_id"]).fit(train)
    cands = candidate_rows(Blend({"popularity": pop}, {"popularity": 1.0}), ["a"], 3)
    assert "t9" in set(cands["item_id"])
    context = RankerContext.build(ITEMS, train, pd.Timestamp("2026-03-08"))
    sessions = pd.DataFrame(
        {"session_id": ["s1"], "user_id": ["a"], "device": ["tv"], "local_hour": [21]}
    )
    rows = with_features(cands, sessions, context, train[train["user_id"] == "a"])
    t9 = rows[rows["item_id"] == "t9"].iloc[0]
    assert t9["days_since_release"] == -1.0
    assert t9["kind_movie"] == 0.0 and t9["genre_comedy"] == 0.0
    assert not rows[feature_names(["popularity"])].isna().any().any()


def test_a_session_sample_keeps_whole_sessions_and_the_same_ones_every_time():
    sessions = pd.DataFrame(
        {"session_id": np.repeat([f"s{i}" for i in range(10)], 3), "item_id": np.arange(30)}
    )
    sample = sample_sessions(sessions, n=4)
    assert sample["session_id"].nunique() == 4
    assert (sample.groupby("session_id").size() == 3).all()
    pd.testing.assert_frame_equal(sample, sample_sessions(sessions, n=4))
    assert sample_sessions(sessions, n=10) is sessions

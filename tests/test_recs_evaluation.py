"""The Recommenders evaluation protocol: the stratified split and the ranking metrics,
checked on tiny inputs against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from feature_store.recs.evaluate import (
    BENCHMARK_SPLIT,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    ranking_metrics_at,
    recall_at_k,
    split_ratios,
    stratified_split,
    top_k,
)


def ratings(pairs: list[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in pairs],
            "item_id": [i for _, i in pairs],
            "rating": [4.0] * len(pairs),
            "timestamp": list(range(len(pairs))),
        }
    )


def many_ratings(seed: int = 0, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(1, 60, n),
            "item_id": rng.integers(1, 150, n),
            "rating": rng.integers(1, 6, n).astype(float),
            "timestamp": rng.integers(0, 10**9, n),
        }
    )
    return frame.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)


# -- split -----------------------------------------------------------------------------------


def test_split_matches_the_seeded_draws_worked_by_hand():
    # np.random.seed(42); np.random.rand(6) =
    #   0.3745, 0.9507, 0.7320, 0.5987, 0.15602, 0.15599
    # item 7 (rows 0-3) in draw order: rows 0, 3, 2, 1 -> ranks 1/4..4/4 -> row 1 is test;
    # item 9 (rows 4-5): row 5 (0.15599) before row 4 -> rank 1/2 train, 2/2 test.
    data = ratings([(1, 7), (2, 7), (3, 7), (4, 7), (1, 9), (2, 9)])
    train, test = stratified_split(data, ratio=0.75, filter_by="item", seed=42)
    assert list(train.index) == [0, 3, 2, 5]
    assert list(test.index) == [1, 4]
    pdt.assert_frame_equal(train, data.loc[[0, 3, 2, 5]])


def test_split_keeps_each_items_share_and_loses_nothing():
    data = many_ratings()
    train, test = stratified_split(data, **BENCHMARK_SPLIT)
    assert not set(train.index) & set(test.index)
    assert sorted([*train.index, *test.index]) == list(data.index)
    sizes = data.groupby("item_id").size()
    in_train = train.groupby("item_id").size().reindex(sizes.index, fill_value=0)
    # the i-th of n rows is train while i / n <= 0.75
    expected = sizes.map(lambda n: sum(1 for i in range(1, n + 1) if i / n <= 0.75))
    pdt.assert_series_equal(in_train, expected, check_names=False)
    assert (sizes[sizes == 1].index.isin(test["item_id"])).all()  # single ratings -> test


def test_split_is_deterministic_per_seed_and_leaves_input_alone():
    data = many_ratings()
    before = data.copy()
    first = stratified_split(data, **BENCHMARK_SPLIT)
    again = stratified_split(data, **BENCHMARK_SPLIT)
    other = stratified_split(data, **{**BENCHMARK_SPLIT, "seed": 7})
    pdt.assert_frame_equal(first[0], again[0])
    pdt.assert_frame_equal(first[1], again[1])
    assert set(first[1].index) != set(other[1].index)
    pdt.assert_frame_equal(data, before)


def test_split_by_user_with_min_rating_and_three_parts():
    data = many_ratings()
    parts = stratified_split(data, ratio=[0.6, 0.2, 0.2], filter_by="user", min_rating=30)
    kept = data.groupby("user_id").filter(lambda g: len(g) >= 30)
    assert sum(len(p) for p in parts) == len(kept)
    shares = [p.groupby("user_id").size() / kept.groupby("user_id").size() for p in parts]
    for share, target in zip(shares, [0.6, 0.2, 0.2], strict=True):
        assert share.between(target - 0.05, target + 0.05).all()


def test_split_ratios_and_bad_arguments():
    assert split_ratios(0.75) == [0.75, 0.25]
    assert split_ratios([3.0, 1.0]) == [0.75, 0.25]
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_ratios(1.5)
    with pytest.raises(ValueError, match="filter_by"):
        stratified_split(many_ratings(), filter_by="title")
    with pytest.raises(ValueError, match="no column"):
        stratified_split(pd.DataFrame({"user_id": [1]}))


# -- metrics ---------------------------------------------------------------------------------

# Truth: user 1 rated a, b, c, f (4 relevant); user 2 rated d; user 3 rated e but gets no
# recommendation. Recommendations (k=3): user 1 -> a, x, b (c 4th, cut); user 2 -> y, d, z;
# user 4 is not in the truth and is ignored.
A, B, C, D, E, F, X, Y, Z = range(101, 110)
TRUTH = pd.DataFrame(
    {"user_id": [1, 1, 1, 1, 2, 3], "item_id": [A, B, C, F, D, E], "rating": [5.0, 4, 3, 2, 4, 5]}
)
RECS = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 1, 2, 2, 2, 4],
        "item_id": [C, B, X, A, Y, D, Z, A],
        "score": [0.6, 0.7, 0.8, 0.9, 0.9, 0.8, 0.7, 1.0],
    }
)


def test_metrics_against_hand_computed_values():
    ln = math.log
    got = ranking_metrics(TRUTH, RECS, k=3)
    # common users {1, 2}: hits user 1 at ranks 1 and 3, user 2 at rank 2
    assert got["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert got["recall@3"] == pytest.approx((2 / 4 + 1 / 1) / 2)
    ndcg_1 = (1 / ln(2) + 1 / ln(4)) / (1 / ln(2) + 1 / ln(3) + 1 / ln(4))
    ndcg_2 = (1 / ln(3)) / (1 / ln(2))
    # averaged over every truth user: user 3 (no recommendations) counts as 0
    assert got["ndcg@3"] == pytest.approx((ndcg_1 + ndcg_2 + 0.0) / 3)
    # average precision: user 1 (1/1 + 2/3) / min(4, 3); user 2 (1/2) / 1
    assert got["map@3"] == pytest.approx((5 / 3 / 3 + 1 / 2) / 2)
    # the older `map` divides by all 4 relevant items instead
    assert got["map"] == pytest.approx((5 / 3 / 4 + 1 / 2) / 2)
    assert precision_at_k(TRUTH, RECS, k=3) == got["precision@3"]
    assert recall_at_k(TRUTH, RECS, k=3) == got["recall@3"]
    assert ndcg_at_k(TRUTH, RECS, k=3) == got["ndcg@3"]
    assert map_at_k(TRUTH, RECS, k=3) == got["map@3"]


def test_metrics_at_several_cut_offs_from_one_ranking():
    ln = math.log
    got = ranking_metrics_at(TRUTH, RECS, (1, 3))
    assert got[3] == ranking_metrics(TRUTH, RECS, k=3)
    # at 1: user 1's first title is a hit, user 2's is not; user 3 has no list
    assert got[1] == ranking_metrics(TRUTH, RECS, k=1)
    assert got[1]["precision@1"] == pytest.approx((1 + 0) / 2)
    assert got[1]["ndcg@1"] == pytest.approx((1 / ln(2) / (1 / ln(2)) + 0 + 0) / 3)
    # ties are cut where a ranking at that cut-off alone cuts them
    tied = RECS.assign(score=1.0)
    for k in (1, 2, 3):
        assert ranking_metrics_at(TRUTH, tied, (1, 2, 3))[k] == ranking_metrics(TRUTH, tied, k=k)


def test_perfect_and_empty_recommendations():
    perfect = TRUTH.assign(score=1.0)
    got = ranking_metrics(perfect, perfect, k=10)
    assert got["ndcg@10"] == pytest.approx(1.0)
    assert got["recall@10"] == pytest.approx(1.0)
    assert got["map@10"] == pytest.approx(1.0)
    assert got["precision@10"] == pytest.approx(6 / 10 / 3)  # 4, 1, 1 hits out of 10 each
    misses = RECS.assign(item_id=RECS["item_id"] + 1000)
    assert set(ranking_metrics(TRUTH, misses, k=3).values()) == {0.0}


def test_top_k_keeps_input_order_on_ties_and_ranks_from_one():
    recs = pd.DataFrame(
        {"user_id": [2, 1, 1, 1, 2], "item_id": [5, 3, 1, 2, 6], "score": [1.0, 0.5, 0.5, 0.9, 2.0]}
    )
    expected = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2],
            "item_id": [2, 3, 6, 5],
            "score": [0.9, 0.5, 2.0, 1.0],
            "rank": [1, 2, 1, 2],
        }
    )
    pdt.assert_frame_equal(top_k(recs, 2), expected)


def test_the_evaluation_sample_keeps_whole_users_and_the_same_ones_every_time():
    from feature_store.recs.steps import _evaluation_sample

    truth = pd.DataFrame({"user_id": np.repeat(np.arange(10), 2), "item_id": np.arange(20)})
    sample = _evaluation_sample(truth, n=4)
    assert sample["user_id"].nunique() == 4
    assert (sample.groupby("user_id").size() == 2).all()
    pd.testing.assert_frame_equal(sample, _evaluation_sample(truth, n=4))
    assert _evaluation_sample(truth, n=10) is truth

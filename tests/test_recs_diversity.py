"""Calibrated re-ranking and the beyond-accuracy metrics, on hand-made lists."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from feature_store.recs.diversity import GenreSpace, beyond_accuracy, calibrated_rerank

ITEMS = pd.DataFrame(
    {
        "item_id": [1, 2, 3, 4, 5, 6],
        "genres": [
            ["Comedy"],
            ["Comedy"],
            ["Comedy"],
            ["Horror"],
            ["Horror"],
            ["Comedy", "Horror"],
        ],
    }
)
# user 10 watched 3 comedies and 1 horror: p = 0.75 comedy, 0.25 horror
HISTORY = pd.DataFrame({"user_id": [10, 10, 10, 10], "item_id": [1, 2, 3, 4]})


def candidates(user, scores):
    return pd.DataFrame({"user_id": user, "item_id": list(scores), "score": list(scores.values())})


def test_genre_space_shares_a_title_between_its_genres():
    space = GenreSpace(ITEMS)
    assert space.genres == ["Comedy", "Horror"]
    np.testing.assert_allclose(
        space.distributions(np.array([6, 4, 99])), [[0.5, 0.5], [0, 1], [0, 0]]
    )
    profiles = space.user_profiles(HISTORY)
    np.testing.assert_allclose(profiles.loc[10].to_numpy(), [0.75, 0.25])


def test_weight_zero_keeps_the_model_order_and_weight_one_matches_the_history_mix():
    # the model loves comedies: 7, 8 are new comedies, 5 a horror title, 9 a comedy
    items = pd.concat(
        [ITEMS, pd.DataFrame({"item_id": [7, 8, 9], "genres": [["Comedy"]] * 3})],
        ignore_index=True,
    )
    space = GenreSpace(items)
    cands = candidates(10, {7: 0.9, 8: 0.8, 9: 0.7, 5: 0.1})
    plain = calibrated_rerank(cands, HISTORY, space, k=4, weight=0.0)
    assert plain["item_id"].tolist() == [7, 8, 9, 5]
    assert plain["rank"].tolist() == [1, 2, 3, 4]
    calibrated = calibrated_rerank(cands, HISTORY, space, k=4, weight=0.99)
    # 3 comedies and 1 horror title = the history's 75/25: the horror title moves up
    # to where it helps most, first (the empty list's q is all horror or all comedy)
    assert set(calibrated["item_id"]) == {7, 8, 9, 5}
    assert calibrated["item_id"].tolist().index(5) < 3
    # with k=2 the calibrated list takes one horror title, the uncalibrated none
    assert 5 in calibrated_rerank(cands, HISTORY, space, k=2, weight=0.9)["item_id"].tolist()
    assert 5 not in calibrated_rerank(cands, HISTORY, space, k=2, weight=0.1)["item_id"].tolist()
    # the scores are the model's
    assert dict(zip(calibrated["item_id"], calibrated["score"], strict=True))[5] == 0.1


def test_a_user_without_history_keeps_the_model_order_and_short_lists_stay_short():
    space = GenreSpace(ITEMS)
    cands = pd.concat(
        [candidates(10, {5: 0.9, 6: 0.5}), candidates(11, {4: 0.3, 5: 0.2, 6: 0.9})],
        ignore_index=True,
    )
    out = calibrated_rerank(cands, HISTORY, space, k=3, weight=0.8)
    assert out[out["user_id"] == 11]["item_id"].tolist() == [6, 4, 5]
    assert out[out["user_id"] == 10]["rank"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="calibration weight must lie in"):
        calibrated_rerank(cands, HISTORY, space, k=3, weight=1.5)


def test_beyond_accuracy_metrics_by_hand():
    space = GenreSpace(ITEMS)
    train = pd.DataFrame(
        {"user_id": [10, 10, 11, 11, 12, 12, 12], "item_id": [1, 2, 1, 4, 1, 3, 5]}
    )
    recs = pd.DataFrame(
        {"user_id": [10, 10, 11, 11], "item_id": [4, 5, 2, 3], "rank": [1, 2, 1, 2]}
    )
    m = beyond_accuracy(recs, train, space)
    assert m["coverage"] == pytest.approx(4 / 5)  # items 2, 3, 4, 5 of catalogue 1..5
    # user 10: two horror titles (distance 0); user 11: two comedies (0)
    assert m["intra_list_diversity"] == pytest.approx(0.0)
    # users per title: 2:1, 3:1, 4:1, 5:1 of 3 users
    assert m["novelty"] == pytest.approx(-math.log2(1 / 3))
    assert m["popularity_arp"] == pytest.approx(1.0)
    # interactions 1:3 of 7 -> title 1 alone is the head (>= 20%); none recommended
    assert m["head_share"] == 0.0
    # user 10 history 100% comedy, list 100% horror; user 11 history 50/50, list comedy
    p10, q10 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    p11, q11 = np.array([0.5, 0.5]), np.array([1.0, 0.0])

    def kl(p, q):
        qs = 0.99 * q + 0.01 * p
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p, qs, strict=True) if pi > 0)

    assert m["miscalibration"] == pytest.approx((kl(p10, q10) + kl(p11, q11)) / 2)
    mixed = pd.DataFrame({"user_id": [10, 10], "item_id": [1, 4], "rank": [1, 2]})
    assert beyond_accuracy(mixed, train, space)["intra_list_diversity"] == pytest.approx(1.0)


def _greedy_by_the_definition(cands, history, space, k, weight):
    """Steck's greedy selection written out per user, the whole KL at every step."""
    p_all = space.user_profiles(history)
    lists = {}
    for user, rows in cands.groupby("user_id"):
        scores = dict(zip(rows["item_id"], rows["score"], strict=True))
        low, high = min(scores.values()), max(scores.values())
        relevance = {i: (s - low) / (high - low if high > low else 1.0) for i, s in scores.items()}
        p = p_all.loc[user].to_numpy()
        chosen = []
        while len(chosen) < min(k, len(scores)):
            rest = [i for i in scores if i not in chosen]
            chosen.append(
                max(rest, key=lambda item: _objective([*chosen, item], relevance, p, space, weight))
            )
        lists[user] = chosen
    return lists


def _objective(picked, relevance, p, space, weight, smoothing=0.01):
    q = space.distributions(np.array(picked)).mean(axis=0)
    q = (1 - smoothing) * q + smoothing * p
    kl = sum(pg * math.log(pg / qg) for pg, qg in zip(p, q, strict=True) if pg > 0)
    return (1 - weight) * sum(relevance[i] for i in picked) - weight * kl


@pytest.mark.parametrize("weight", [0.2, 0.6, 0.95])
def test_the_batched_greedy_picks_what_the_definition_picks(weight):
    rng = np.random.default_rng(7)
    genres = ["Action", "Comedy", "Drama", "Horror", "Kids", "Sci-Fi"]
    items = pd.DataFrame(
        {
            "item_id": np.arange(60),
            "genres": [
                list(rng.choice(genres, rng.integers(1, 4), replace=False)) for _ in range(60)
            ],
        }
    )
    space = GenreSpace(items)
    history = pd.DataFrame(
        {"user_id": np.repeat(np.arange(8), 6), "item_id": rng.integers(0, 60, 48)}
    )
    cands = pd.concat(
        [
            candidates(
                user, dict(zip(rng.choice(60, 25, replace=False), rng.random(25), strict=True))
            )
            for user in range(8)
        ],
        ignore_index=True,
    )
    out = calibrated_rerank(cands, history, space, k=10, weight=weight)
    expected = _greedy_by_the_definition(cands, history, space, 10, weight)
    for user, chosen in expected.items():
        assert out[out["user_id"] == user].sort_values("rank")["item_id"].tolist() == chosen

"""Trending per region and segment, on hand-made interactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_store.recs.models import TrendingPopularity
from feature_store.recs.serving import ServingRecommender

DAY = 86_400
GROUPS = pd.DataFrame(
    {
        "user_id": ["a", "b", "c", "d"],
        "region": ["US", "US", "FR", "FR"],
        "segment": ["kids", "drama", "kids", "kids"],
    }
)

# two views of "old" two weeks before three of "new" and "fr"
OLD_AND_NEW = pd.DataFrame(
    {
        "user_id": ["a", "b", "c", "d", "d"],
        "item_id": ["old", "old", "new", "new", "fr"],
        "timestamp": [0, 0, 14 * DAY, 14 * DAY, 14 * DAY],
    }
)


def test_recent_views_and_the_own_group_lead():
    train = OLD_AND_NEW
    model = TrendingPopularity(GROUPS, half_life_days=7).fit(train)
    # weights: "old" 2 x 0.25 (two half-lives old), "new" 2 x 1, "fr" 1
    total = 0.5 + 2 + 1
    np.testing.assert_allclose(
        model.overall, [1 / total, 2 / total, 0.5 / total]
    )  # item order: fr, new, old
    fr_kids = model.scores_for("FR", "kids")
    np.testing.assert_allclose(fr_kids, model.overall + 2 * np.array([1 / 3, 2 / 3, 0.0]))
    us_drama = model.scores_for("US", "drama")
    np.testing.assert_allclose(us_drama, model.overall + np.array([0, 0, 1.0]) + [0, 0, 1.0])
    # an unknown group gets the overall shares
    np.testing.assert_allclose(model.scores_for("JP", None), model.overall)
    assert model.top_for("US", "drama", 2)["item_id"].tolist() == ["old", "new"]
    assert model.top_for("FR", "kids", 3)["rank"].tolist() == [1, 2, 3]


def test_users_get_their_group_scores_and_seen_titles_are_excluded():
    train = pd.DataFrame(
        {"user_id": ["a", "b", "c"], "item_id": ["x", "y", "y"], "timestamp": [0, 0, 0]}
    )
    model = TrendingPopularity(GROUPS).fit(train)
    recs = model.recommend(["a", "b", "c"], k=2)
    assert recs.groupby("user_id")["item_id"].apply(list).to_dict() == {
        "a": ["y"],
        "b": ["x"],
        "c": ["x"],
    }
    with pytest.raises(ValueError, match="user_groups need columns"):
        TrendingPopularity(GROUPS.drop(columns="segment"))


def test_members_nobody_saw_get_their_region_and_segment_lists_in_their_order():
    train = OLD_AND_NEW
    trending = TrendingPopularity(GROUPS, half_life_days=7).fit(train)
    serving = ServingRecommender.__new__(ServingRecommender)  # the cold start needs no blend
    serving.trending = trending
    users = ["n1", "a", "n2", "n3", "n4"]
    lists = serving._cold_start(
        users, {"a"}, 2, ["FR", "US", "US", "FR", None], ["kids", "kids", "drama", "kids", None]
    )
    expected = pd.concat(
        [
            trending.top_for(region, segment, 2).assign(user_id=user)
            for user, region, segment in (
                ("n1", "FR", "kids"),
                ("n2", "US", "drama"),
                ("n3", "FR", "kids"),
                ("n4", None, None),
            )
        ],  # fmt: skip
        ignore_index=True,
    )[["user_id", "item_id", "score", "rank"]]
    pd.testing.assert_frame_equal(lists, expected, check_dtype=False)

"""Candidate models and the ensemble on tiny synthetic ratings where the answer is obvious."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
import scipy.sparse as sp

from feature_store.recs.ensemble import (
    Blend,
    ValidationScores,
    ndcg_from_indices,
    normalise,
    simplex_grid,
    tune_blend,
)
from feature_store.recs.evaluate import ranking_metrics
from feature_store.recs.models import (
    EASE,
    ContentSimilarity,
    ImplicitALS,
    ItemCooccurrence,
    Popularity,
    item_to_item,
    top_k_indices,
)
from feature_store.recs.models.base import Interactions, shared_interactions
from feature_store.recs.models.item import _dense_gram

# Two taste groups: users 1-6 rate items 10-14, users 7-12 rate items 20-24; each user
# skips exactly one item of their group (user u skips the ((u - 1) % 5)-th).
GROUP_A, GROUP_B = [10, 11, 12, 13, 14], [20, 21, 22, 23, 24]


def skipped(user: int) -> int:
    group = GROUP_A if user <= 6 else GROUP_B
    return group[(user - 1) % 5]


def two_groups() -> pd.DataFrame:
    rows = []
    for user in range(1, 13):
        group = GROUP_A if user <= 6 else GROUP_B
        rows += [(user, item, 4.0, 1000 + item) for item in group if item != skipped(user)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


ITEMS = pd.DataFrame(
    {
        "item_id": GROUP_A + GROUP_B,
        "title": [f"Comedy {i} (1995)" for i in GROUP_A] + [f"Horror {i} (2010)" for i in GROUP_B],
        "genres": [["Comedy"]] * 5 + [["Horror"]] * 5,
    }
)


def assert_well_formed(recs: pd.DataFrame, train: pd.DataFrame, k: int) -> None:
    assert list(recs.columns) == ["user_id", "item_id", "score", "rank"]
    seen = set(zip(train["user_id"], train["item_id"], strict=True))
    assert not {(u, i) for u, i in zip(recs["user_id"], recs["item_id"], strict=True)} & seen
    for _, group in recs.groupby("user_id"):
        assert list(group["rank"]) == list(range(1, len(group) + 1))
        assert len(group) <= k
        assert (np.diff(group["score"].to_numpy()) <= 0).all()


@pytest.mark.parametrize(
    "model",
    [EASE(lambda_=1.0), EASE(lambda_=1.0, user_weight=0.25), ItemCooccurrence(neighbours=3)],
    ids=["ease", "ease-weighted", "cooccurrence"],
)
def test_item_models_recommend_the_skipped_item_of_the_own_group(model):
    train = two_groups()
    recs = model.fit(train).recommend(range(1, 13), k=3)
    assert_well_formed(recs, train, 3)
    top = recs[recs["rank"] == 1].set_index("user_id")["item_id"]
    pdt.assert_series_equal(
        top, pd.Series({u: skipped(u) for u in range(1, 13)}), check_names=False
    )


def test_ease_matches_the_closed_form():
    train = two_groups()
    model = EASE(lambda_=2.0, dtype="float64").fit(train)
    x = model.data.binary().toarray()
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(x.shape[1]))
    expected = -p / np.diag(p)[np.newaxis, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.score_indices(np.array([0])), x[:1] @ expected)
    # the default, float32, within its precision
    single = EASE(lambda_=2.0).fit(train)
    assert single.weights.dtype == np.float32
    np.testing.assert_allclose(single.weights, expected, rtol=1e-4, atol=1e-6)


def test_ease_with_side_information_matches_the_closed_form():
    # genres and decades split ITEMS into the two groups, so the content cosine F F' is 1
    # within a group and 0 across: the Gram matrix gains side_weight on those blocks
    train = two_groups()
    model = EASE(lambda_=2.0, side_weight=3.0, items=ITEMS, dtype="float64").fit(train)
    x = model.data.binary().toarray()
    same_group = np.kron(np.eye(2), np.ones((5, 5)))
    p = np.linalg.inv(x.T @ x + 3.0 * same_group + 2.0 * np.eye(10))
    expected = -p / np.diag(p)[np.newaxis, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights, expected, rtol=1e-10, atol=1e-12)
    assert model.params()["side_weight"] == 3.0


def test_ease_side_information_reaches_titles_nobody_rated():
    # 15 (a comedy) and 25 (a horror title) are in the catalogue, unrated: plain EASE
    # gives them no weight at all, with metadata a comedy fan's 15 outranks 25
    items = pd.concat(
        [
            ITEMS,
            pd.DataFrame(
                {
                    "item_id": [15, 25],
                    "title": ["Comedy 15 (1995)", "Horror 25 (2010)"],
                    "genres": [["Comedy"], ["Horror"]],
                }
            ),
        ],
        ignore_index=True,
    )
    train = two_groups()
    catalogue = [*GROUP_A, 15, *GROUP_B, 25]
    plain = EASE(lambda_=2.0).with_catalogue(catalogue).fit(train)
    side = EASE(lambda_=2.0, side_weight=3.0, items=items).with_catalogue(catalogue).fit(train)
    cold = np.searchsorted(plain.data.item_ids, [15, 25])
    user_a, user_b = plain.data.user_index([1, 7])[1]
    np.testing.assert_array_equal(plain.score_indices(np.array([user_a]))[0, cold], [0.0, 0.0])
    scores = side.score_indices(np.array([user_a, user_b]))[:, cold]
    assert scores[0, 0] > 0 and scores[0, 0] > scores[0, 1]  # comedy fan: 15 over 25
    assert scores[1, 1] > 0 and scores[1, 1] > scores[1, 0]  # horror fan: 25 over 15
    with pytest.raises(ValueError, match="metadata"):
        EASE(side_weight=1.0)


def test_cooccurrence_similarity_is_cosine_of_counts():
    # items 1 and 2 share users 1, 2; item 1 has 3 users, item 2 has 2: cos = 2 / sqrt(6)
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 2, 1]})
    model = ItemCooccurrence(shrink=0.0).fit(train)
    np.testing.assert_allclose(
        model.similarity.toarray(), [[0.0, 2 / np.sqrt(6)], [2 / np.sqrt(6), 0.0]]
    )


def test_item_to_item_picks_ease_when_the_catalogue_fits():
    assert isinstance(item_to_item(100, max_dense_items=1000), EASE)
    assert isinstance(item_to_item(5000, max_dense_items=1000, neighbours=50), ItemCooccurrence)


def test_popularity_ranks_by_number_of_raters_and_skips_seen():
    train = pd.DataFrame({"user_id": [1, 2, 3, 1, 2, 3, 4], "item_id": [7, 7, 7, 8, 8, 9, 5]})
    recs = Popularity().fit(train).recommend([4, 1, 99], k=2)
    expected = pd.DataFrame(
        {
            "user_id": [4, 4, 1, 1],
            "item_id": [7, 8, 5, 9],  # 5 and 9 tie: lower item id first
            "score": [3.0, 2.0, 1.0, 1.0],
            "rank": [1, 2, 1, 2],
        }
    )
    pdt.assert_frame_equal(recs, expected)  # user 99 is unknown: no rows
    with_seen = Popularity().fit(train).recommend([1], k=1, exclude_seen=False)
    assert with_seen["item_id"].tolist() == [7]


def test_interactions_tell_which_pairs_were_trained_on():
    train = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"]})
    pairs = Interactions(train).contains(
        np.array(["a", "a", "b", "c", "b"]), np.array(["x", "z", "y", "x", "x"])
    )
    # unknown item z and unknown user c are simply not there
    assert pairs.tolist() == [True, False, False, False, True]


def test_recommend_returns_only_candidates_when_k_is_large():
    train = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 3]})
    recs = Popularity().fit(train).recommend([1], k=10)
    assert recs["item_id"].tolist() == [3]


def test_content_prefers_the_genre_the_user_watched():
    train = pd.DataFrame(
        {"user_id": [1, 1, 2, 2], "item_id": [10, 11, 20, 21], "rating": [4.0, 5, 4, 4]}
    )
    train = pd.concat([train, pd.DataFrame({"user_id": [3, 3], "item_id": [12, 22]})])
    model = ContentSimilarity(ITEMS, decade_weight=0.0).fit(train)
    recs = model.recommend([1, 2], k=2)
    assert_well_formed(recs, train, 2)
    first = recs[recs["rank"] == 1].set_index("user_id")["item_id"].to_dict()
    assert first == {1: 12, 2: 22}
    # sum of cosine similarities: two comedies seen, each with similarity 1 to item 12
    assert recs.loc[(recs["user_id"] == 1) & (recs["rank"] == 1), "score"].item() == pytest.approx(
        2.0
    )


def test_content_uses_only_tags_on_rated_pairs():
    items = ITEMS[ITEMS["item_id"].isin([10, 11, 12])].assign(genres=[[], [], []])
    train = pd.DataFrame({"user_id": [1, 2, 2, 3, 3], "item_id": [10, 10, 12, 11, 12]})
    tags = pd.DataFrame(
        {"user_id": [2, 3, 9, 9], "item_id": [10, 12, 11, 12], "tag": ["heist", "heist"] * 2}
    )
    model = ContentSimilarity(items, tags=tags, decade_weight=0.0).fit(train)
    sims = (model.features @ model.features.T).toarray()
    # "heist" on 10 (user 2 rated it) and 12 (user 3 rated it) count; user 9 rated nothing
    assert sims[0, 2] == pytest.approx(1.0)
    assert sims[0, 1] == pytest.approx(0.0)


def test_als_on_spark_separates_the_groups(spark):
    train = two_groups()
    model = ImplicitALS(spark, rank=4, reg=0.05, alpha=5.0, iterations=5, confidence="binary")
    recs = model.fit(train).recommend(range(1, 13), k=1)
    assert_well_formed(recs, train, 1)
    top = recs.set_index("user_id")["item_id"]
    pdt.assert_series_equal(
        top, pd.Series({u: skipped(u) for u in range(1, 13)}), check_names=False
    )
    assert model.params()["confidence"] == "binary"


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        Popularity().recommend([1])


def test_top_k_indices_breaks_ties_by_index():
    scores = np.array([[1.0, 3.0, 3.0, -np.inf], [0.0, 0.0, 0.0, 5.0]])
    np.testing.assert_array_equal(top_k_indices(scores, 2), [[1, 2], [3, 0]])


def test_top_k_indices_is_a_stable_sort_cut_at_k_even_with_ties_at_the_cut():
    rng = np.random.default_rng(11)
    scores = rng.integers(-2, 3, size=(200, 30)).astype(float)  # many ties everywhere
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[rng.random(scores.shape) < 0.05] = np.nan
    reference = np.argsort(-np.where(np.isnan(scores), -np.inf, scores), axis=1, kind="stable")
    for k in (1, 7, 29, 30, 31):
        np.testing.assert_array_equal(top_k_indices(scores, k), reference[:, :k])


# -- ensemble --------------------------------------------------------------------------------


def test_normalisations_by_hand():
    scores = np.array([[3.0, 1.0, -np.inf, 2.0]])
    np.testing.assert_allclose(
        normalise(scores, "zscore"), [[np.sqrt(1.5), -np.sqrt(1.5), -np.inf, 0.0]]
    )
    np.testing.assert_allclose(normalise(scores, "rank"), [[1.0, 1 / 3, -np.inf, 2 / 3]])
    np.testing.assert_allclose(normalise(scores, "rrf"), [[1 / 61, 1 / 63, -np.inf, 1 / 62]])
    with pytest.raises(ValueError, match="normalisation"):
        normalise(scores, "softmax")


def test_simplex_grid():
    grid = simplex_grid(3, 0.5)
    assert sorted(grid) == sorted(
        [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]
    )


def test_ndcg_from_indices_agrees_with_the_reference_metric():
    rng = np.random.default_rng(3)
    relevant = rng.random((20, 30)) < 0.2
    relevant[0] = False
    scores = rng.random((20, 30))
    best = top_k_indices(scores, 5)
    n_relevant = relevant.sum(axis=1) + 1  # one relevant item outside the catalogue each
    users, items = np.nonzero(relevant)
    truth = pd.DataFrame({"user_id": users, "item_id": items})
    truth = pd.concat([truth, pd.DataFrame({"user_id": range(20), "item_id": 999})])
    recs = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(20), 5),
            "item_id": best.ravel(),
            "score": np.take_along_axis(scores, best, axis=1).ravel(),
        }
    )
    assert ndcg_from_indices(best, relevant, n_relevant, 5) == pytest.approx(
        ranking_metrics(truth, recs, k=5)["ndcg@5"]
    )


def test_tune_blend_weights_the_informative_component():
    train = two_groups()
    components = {"noise": Popularity().fit(train), "ease": EASE(lambda_=1.0).fit(train)}
    validation = pd.DataFrame(
        {"user_id": list(range(1, 13)), "item_id": [skipped(u) for u in range(1, 13)]}
    )
    fold = ValidationScores.of(components, validation)
    trials = tune_blend([fold], k=1, step=0.5, refine=())
    # only the trials: no blend holding the fold's models comes back
    assert isinstance(trials, list) and all(isinstance(t, dict) for t in trials)
    assert len(trials) == 3 * 3  # weights (0, 1), (0.5, 0.5), (1, 0) x 3 normalisations
    assert trials[0]["ndcg"] == pytest.approx(1.0)
    assert trials[0]["fold_ndcg"] == [pytest.approx(1.0)]
    assert trials[0]["weights"]["ease"] > 0
    blend = Blend(components, trials[0]["weights"], normalisation=trials[0]["normalisation"])
    recs = blend.recommend(range(1, 13), k=1)
    assert recs.set_index("user_id")["item_id"].to_dict() == {u: skipped(u) for u in range(1, 13)}


def _rank_fold(relevant_item: int) -> ValidationScores:
    """One user, four items. Component a ranks them 0, 1, 2, 3 and b ranks them 3, 1, 2, 0:
    rank-normalised a = (1, .75, .5, .25) and b = (.25, .75, .5, 1), so item 1 tops the
    blend w a + (1 - w) b only for 1/3 < w < 2/3 (item 0 = .25 + .75 w, item 3 = 1 - .75 w)."""
    raw = {
        "a": np.array([[4.0, 3.0, 2.0, 1.0]], dtype=np.float32),
        "b": np.array([[1.0, 3.0, 2.0, 4.0]], dtype=np.float32),
    }
    relevant = np.zeros((1, 4), dtype=bool)
    relevant[0, relevant_item] = True
    return ValidationScores(raw, relevant, np.array([1]), 1.0)


def test_tune_blend_refines_the_best_coarse_trial():
    fold = _rank_fold(relevant_item=1)
    coarse = tune_blend([fold], k=1, step=1.0, refine=(), normalisations=("rank",))
    assert [(t["weights"], t["ndcg"]) for t in coarse] == [
        ({"a": 0.0, "b": 1.0}, 0.0),
        ({"a": 1.0, "b": 0.0}, 0.0),
    ]
    # a move of 0.5 from b to a reaches the half-half blend, where item 1 is first
    fine = tune_blend([fold], k=1, step=1.0, refine=(0.5,), normalisations=("rank",))
    assert fine[0] == {
        "normalisation": "rank",
        "weights": {"a": 0.5, "b": 0.5},
        "ndcg": 1.0,
        "fold_ndcg": [1.0],
    }
    assert len(fine) == 3  # the two coarse trials and the refined one
    with pytest.raises(ValueError, match="multiples"):
        tune_blend([fold], step=0.5, refine=(0.3,))


def test_tune_blend_chooses_on_the_mean_over_folds():
    # fold 1 wants item 1 (half-half), fold 2 item 0 (a alone)
    folds = [_rank_fold(relevant_item=1), _rank_fold(relevant_item=0)]
    trials = tune_blend(folds, k=1, step=1.0, refine=(0.5,), normalisations=("rank",))
    summary = [(t["weights"]["a"], t["fold_ndcg"], t["ndcg"]) for t in trials]
    assert summary == [(1.0, [0.0, 1.0], 0.5), (0.5, [1.0, 0.0], 0.5), (0.0, [0.0, 0.0], 0.0)]


class _Fixed(Popularity):
    """A fitted model whose scores are given (rows = users in index order)."""

    def __init__(self, data, scores: np.ndarray):
        self.data, self.scores = data, scores

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        return self.scores[user_idx].copy()


def test_blend_zscores_are_the_normalised_parts_weighted_exactly():
    train = two_groups()
    data = Popularity().fit(train).data
    rng = np.random.default_rng(5)
    shape = (data.n_users, data.n_items)
    smooth = rng.normal(size=shape)
    flat = np.full(shape, 2.5)  # no spread: every z-score 0
    gaps = rng.normal(size=shape)
    gaps[0, [0, 5]] = -np.inf  # titles this model cannot score: left out like seen ones
    components = {
        "smooth": _Fixed(data, smooth),
        "flat": _Fixed(data, flat),
        "gaps": _Fixed(data, gaps),
    }
    weights = {"smooth": 0.5, "flat": 0.2, "gaps": 0.3}
    users = np.arange(data.n_users)
    seen = data.seen.toarray()
    expected = np.zeros(shape)
    for name, scores in (("smooth", smooth), ("flat", flat), ("gaps", gaps)):
        part = normalise(np.where(seen, -np.inf, scores), "zscore")
        expected += weights[name] * np.where(seen, 0.0, part)
    total = Blend(components, weights, normalisation="zscore").score_indices(users)
    assert total.dtype == np.float32  # the blend works in single precision
    np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-6)
    assert np.isneginf(total[0, [0, 5]]).all() and np.isfinite(total[1]).all()


def test_recommendations_do_not_depend_on_the_block_of_users_scored_at_once():
    train = two_groups()
    blend = Blend(
        {"pop": Popularity().fit(train), "ease": EASE(lambda_=1.0).fit(train)},
        {"pop": 0.3, "ease": 0.7},
    )
    whole = blend.recommend(range(1, 13), k=3)
    blend.batch_size = 5  # the 12 users in blocks of 5, 5 and 2
    assert blend.block_rows() == 5
    pdt.assert_frame_equal(blend.recommend(range(1, 13), k=3), whole)


def test_models_fitted_on_the_same_rows_share_one_interactions_matrix():
    train = two_groups()
    apart = Blend({"pop": Popularity().fit(train), "ease": EASE(lambda_=1.0).fit(train)}, {})
    with shared_interactions(train):
        pop, ease = Popularity().fit(train), EASE(lambda_=1.0).fit(train)
        wider = Popularity().with_catalogue([10, 99]).fit(train)
        copied = Popularity().fit(train.copy())
    assert pop.data is ease.data
    assert wider.data is not pop.data and list(wider.data.item_ids)[-1] == 99
    assert copied.data is not pop.data
    assert Popularity().fit(train).data is not pop.data  # only within the block
    # several frames, and nested blocks: one matrix per frame, the outer ones still shared
    other = train[train["user_id"] != 1]
    with shared_interactions(train, other):
        first, on_other = Popularity().fit(train), Popularity().fit(other)
        with shared_interactions(train.copy()):
            again, on_other_again = Popularity().fit(train), Popularity().fit(other)
    assert first.data is again.data and on_other.data is on_other_again.data
    assert first.data is not on_other.data and on_other.data.n_users == first.data.n_users - 1
    weights = {"pop": 0.4, "ease": 0.6}
    pdt.assert_frame_equal(
        Blend({"pop": pop, "ease": ease}, weights).recommend(range(1, 13), k=3),
        Blend(apart.components, weights).recommend(range(1, 13), k=3),
    )


def test_blend_refuses_components_fitted_on_other_rows():
    train = two_groups()
    a = Popularity().fit(train)
    b = Popularity().fit(train[train["user_id"] != 1])
    with pytest.raises(ValueError, match="other training rows"):
        Blend({"a": a, "b": b}, {"a": 0.5, "b": 0.5})


def test_ease_gram_in_column_bands_equals_the_whole_product():
    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((40, 11)) < 0.3).astype(float))
    weighted = sp.diags(rng.random(40)) @ x
    gram = _dense_gram(weighted, x, block=3)
    np.testing.assert_allclose(gram, (x.T @ weighted).toarray(), rtol=1e-12)
    assert np.array_equal(gram, gram.T)  # the upper triangle computed, mirrored exactly
    # added in place, scaled
    out = np.ones((11, 11))
    _dense_gram(weighted, x, block=4, out=out, scale=2.5)
    np.testing.assert_allclose(out, 1.0 + 2.5 * (x.T @ weighted).toarray(), rtol=1e-12)

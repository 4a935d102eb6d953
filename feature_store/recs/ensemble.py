"""Score-level ensemble of fitted candidate models, with weights tuned on validation rows.

Each component scores a block of users against the shared catalogue; per user, its
scores over the candidate items (seen items excluded) are normalised so components on
different scales can be added:

- ``"zscore"``: (score - mean) / std over the user's candidates;
- ``"rank"``: 1 - (rank - 1) / n_candidates (a Borda count once summed);
- ``"rrf"``: 1 / (60 + rank), reciprocal-rank fusion (Cormack et al. 2009).

The blend is the weighted sum. :func:`tune_blend` picks the normalisation and the weights
(a grid over the simplex) that maximise nDCG@k on validation rows -- rows carved out of
the training data, never the test set.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feature_store.recs.models.base import ITEM, USER, Interactions, Recommender, top_k_indices

log = logging.getLogger(__name__)

NORMALISATIONS = ("zscore", "rank", "rrf")
RRF_OFFSET = 60.0


def normalise(scores: np.ndarray, method: str) -> np.ndarray:
    """Per-row normalisation of scores; -inf (excluded) entries stay -inf."""
    if method not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not {method!r}")
    valid = np.isfinite(scores)
    if method == "zscore":
        # masked sums rather than nanmean/nanstd: a batch is users x catalogue (40M
        # cells at 20,000 titles) and those make several copies of it
        n = valid.sum(axis=1, keepdims=True).clip(min=1)
        out = np.where(valid, scores, 0.0)
        mean = out.sum(axis=1, keepdims=True) / n
        out -= mean
        out[~valid] = 0.0
        std = np.sqrt(np.einsum("ij,ij->i", out, out)[:, np.newaxis] / n)
        std[~(std > 0)] = 1.0
        out /= std
    else:
        # rank 1 = best; ties broken by column order, like top-k selection
        order = np.argsort(-scores, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[np.newaxis, :], axis=1)
        n = valid.sum(axis=1, keepdims=True).clip(min=1)
        out = 1.0 - (ranks - 1) / n if method == "rank" else 1.0 / (RRF_OFFSET + ranks)
    return np.where(valid, out, -np.inf)


class Blend(Recommender):
    """Weighted sum of normalised component scores. The components must be fitted on the
    same training rows (they then share the catalogue and the seen items)."""

    name = "ensemble"

    def __init__(
        self,
        components: dict[str, Recommender],
        weights: dict[str, float],
        *,
        normalisation: str = "zscore",
    ):
        if not components:
            raise ValueError("a blend needs at least one component")
        unknown = set(weights) - set(components)
        if unknown:
            raise ValueError(f"weights for unknown components: {sorted(unknown)}")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}")
        self.components = components
        self.weights = {name: float(weights.get(name, 0.0)) for name in components}
        self.normalisation = normalisation
        first = next(iter(components.values()))
        for name, model in components.items():
            model._check_fitted()
            if not np.array_equal(model.data.item_ids, first.data.item_ids) or not np.array_equal(
                model.data.user_ids, first.data.user_ids
            ):
                raise ValueError(f"component {name!r} was fitted on other training rows")
        self.data = first.data

    def params(self) -> dict:
        return {"normalisation": self.normalisation, "weights": dict(self.weights)}

    def fit(self, train: pd.DataFrame) -> Blend:
        for model in self.components.values():
            model.fit(train)
        self.data = next(iter(self.components.values())).data
        return self

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        seen = self.data.seen[user_idx].nonzero()
        total = np.zeros((len(user_idx), self.data.n_items))
        for name, model in self.components.items():
            weight = self.weights[name]
            if weight == 0:
                continue
            scores = np.asarray(model.score_indices(user_idx), dtype=np.float64)
            scores[seen] = -np.inf
            part = normalise(scores, self.normalisation)
            part[seen] = 0.0
            total += weight * part
        return total


def simplex_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """All weight vectors of n non-negative multiples of ``step`` summing to 1."""
    units = round(1 / step)
    return [
        tuple(c / units for c in combo)
        for combo in itertools.product(range(units + 1), repeat=n)
        if sum(combo) == units
    ]


def ndcg_from_indices(
    best: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray, k: int
) -> float:
    """Mean nDCG@k (binary gains) of per-row top item indices ``best`` against a dense
    boolean users x catalogue array of relevant items; ``n_relevant`` counts each row's
    relevant items including those outside the catalogue (they count in the ideal DCG).
    Same definition as :func:`feature_store.recs.evaluation.ranking_metrics`, on arrays."""
    hits = np.take_along_axis(relevant, best, axis=1)
    discounts = 1.0 / np.log1p(np.arange(1, best.shape[1] + 1))
    dcg = (hits * discounts).sum(axis=1)
    ideal_discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log1p(np.arange(1, k + 1)))])
    idcg = ideal_discounts[np.minimum(n_relevant, k)]
    return float(np.mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)))


def tune_blend(
    components: dict[str, Recommender],
    validation: pd.DataFrame,
    *,
    k: int = 10,
    step: float = 0.1,
    normalisations: Sequence[str] = NORMALISATIONS,
) -> tuple[Blend, list[dict]]:
    """The blend of ``components`` (fitted on the rows without ``validation``) that scores
    the best validation nDCG@k over a simplex grid of weights and the normalisations.

    Returns the best blend and every trial (normalisation, weights, ndcg), best first.
    Every component's scores for every validation user are held at once (users x items
    floats each): on a large data set pass a sample of the validation users' rows.
    """
    names = list(components)
    data: Interactions = next(iter(components.values())).data
    n_truth = validation[USER].nunique()
    users, idx = data.user_index(validation[USER].unique())
    truth = validation[validation[USER].isin(users)]
    n_relevant = truth.groupby(USER).size().reindex(users).to_numpy()
    in_catalogue = truth[truth[ITEM].isin(data.item_ids)]
    relevant = sp.csr_matrix(
        (
            np.ones(len(in_catalogue), dtype=bool),
            (
                pd.Index(users).get_indexer(in_catalogue[USER]),
                np.searchsorted(data.item_ids, in_catalogue[ITEM].to_numpy()),
            ),
        ),
        shape=(len(users), data.n_items),
    ).toarray()
    seen = data.seen[idx].nonzero()
    raw = {}
    for name in names:
        scores = np.asarray(components[name].score_indices(idx), dtype=np.float64)
        scores[seen] = -np.inf
        raw[name] = scores
    trials = []
    grid = simplex_grid(len(names), step)
    for method in normalisations:
        parts = {}
        for name in names:
            part = normalise(raw[name], method)
            part[seen] = 0.0
            parts[name] = part
        for weights in grid:
            total = sum(w * parts[n] for n, w in zip(names, weights, strict=True) if w > 0)
            total = np.where(np.isfinite(raw[names[0]]), total, -np.inf)
            best = top_k_indices(total, k)
            # validation users the components do not know count 0, as in ranking_metrics
            score = ndcg_from_indices(best, relevant, n_relevant, k) * len(users) / n_truth
            trials.append(
                {
                    "normalisation": method,
                    "weights": dict(zip(names, weights, strict=True)),
                    "ndcg": score,
                }
            )
    trials.sort(key=lambda t: -t["ndcg"])
    top = trials[0]
    log.info("blend: best validation nDCG@%d %.4f with %s", k, top["ndcg"], top)
    return Blend(components, top["weights"], normalisation=top["normalisation"]), trials

"""Score-level ensemble of fitted candidate models, with weights tuned on validation rows.

Per user, each component's scores over the candidate items (seen items excluded) are
normalised (``"zscore"``, ``"rank"`` or ``"rrf"``) and the blend is their weighted sum.
:func:`tune_blend` picks the normalisation and the weights that maximise the mean nDCG@k
over validation folds, never the test set. Each fold enters as :class:`ValidationScores`,
so its models can be freed before the next fold is fitted; the caller builds the
:class:`Blend` from the best trial. The normalisations and the search: docs/models.md.
"""

from __future__ import annotations

import dataclasses
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
        """The normalisation and the weights, for a run's params."""
        return {"normalisation": self.normalisation, "weights": dict(self.weights)}

    def fit(self, train: pd.DataFrame) -> Blend:
        """Refit every component on `train`; returns the blend."""
        for model in self.components.values():
            model.fit(train)
        self.data = next(iter(self.components.values())).data
        return self

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """The weighted sum of the components' normalised scores (0 on seen items)."""
        weighted = [name for name, weight in self.weights.items() if weight != 0]
        return self.combine(self.component_scores(user_idx, weighted), user_idx)

    def component_scores(
        self, user_idx: np.ndarray, names: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Each component's own scores (float32, users x catalogue; all components
        without ``names``). Single precision halves the memory the blend streams through
        (serving at 20,000 titles is bound by it) and orders titles the same but for
        scores within a ten-millionth of each other."""
        return {
            name: np.asarray(self.components[name].score_indices(user_idx), dtype=np.float32)
            for name in (self.components if names is None else names)
        }

    def combine(self, scores: dict[str, np.ndarray], user_idx: np.ndarray) -> np.ndarray:
        """The blend of components' ``scores`` (as :meth:`component_scores` gives them,
        overwritten here) for the users ``user_idx``: 0 on seen items."""
        seen = self.data.seen[user_idx].nonzero()
        total = np.zeros((len(user_idx), self.data.n_items), dtype=np.float32)
        for name, part in scores.items():
            weight = self.weights[name]
            if weight == 0:
                continue
            if self.normalisation != "zscore" or not _add_zscores(total, part, seen, weight):
                part[seen] = -np.inf
                part = normalise(part, self.normalisation)
                part[seen] = 0.0
                total += weight * part
        return total


def _add_zscores(total: np.ndarray, scores: np.ndarray, seen: tuple, weight: float) -> bool:
    """``total += weight x`` the z-scores of ``scores`` with the ``seen`` cells left out
    (0), the same numbers as :func:`normalise` gives, in place and without its masks and
    copies (the blend's largest cost in serving). False, ``total`` untouched, when the
    scores are not all finite: :func:`normalise` then treats the others as excluded."""
    rows = scores.shape[0]
    scores[seen] = 0.0
    sums = scores.sum(axis=1)
    if not np.isfinite(sums).all():
        return False
    n = (scores.shape[1] - np.bincount(seen[0], minlength=rows)).clip(min=1)[:, np.newaxis]
    scores -= sums[:, np.newaxis] / n
    scores[seen] = 0.0
    std = np.sqrt(np.einsum("ij,ij->i", scores, scores)[:, np.newaxis] / n)
    std[~(std > 0)] = 1.0
    scores *= (weight / std).astype(scores.dtype)  # one pass over the block, not two
    total += scores
    return True


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
    Same definition as :func:`feature_store.recs.evaluate.ranking_metrics`, on arrays."""
    hits = np.take_along_axis(relevant, best, axis=1)
    discounts = 1.0 / np.log1p(np.arange(1, best.shape[1] + 1))
    dcg = (hits * discounts).sum(axis=1)
    ideal_discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log1p(np.arange(1, k + 1)))])
    idcg = ideal_discounts[np.minimum(n_relevant, k)]
    return float(np.mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)))


@dataclasses.dataclass
class ValidationScores:
    """One validation fold made ready for blend trials, without the models: every
    component's scores for the fold's validation users (float32, seen items -inf) and the
    truth as arrays. Holding these rather than the fitted models lets a fold's models be
    freed (3 GB of EASE weights at 20,000 titles) before the next fold is fitted; it costs
    components x users x catalogue x 4 bytes."""

    raw: dict[str, np.ndarray]
    relevant: np.ndarray  # bool users x catalogue
    n_relevant: np.ndarray  # per user, relevant items inside and outside the catalogue
    share: float  # known validation users / all validation users (unknown ones score 0)

    @classmethod
    def of(cls, components: dict[str, Recommender], validation: pd.DataFrame) -> ValidationScores:
        """Score ``validation``'s users with ``components`` (all fitted on the same rows,
        which exclude ``validation``)."""
        if not components:
            raise ValueError("blend trials need at least one component")
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
        for name, model in components.items():
            scores = np.asarray(model.score_indices(idx), dtype=np.float32)
            scores[seen] = -np.inf
            raw[name] = scores
        return cls(raw, relevant, n_relevant, len(users) / max(n_truth, 1))

    def parts(self, method: str) -> dict[str, np.ndarray]:
        """Every component's normalised scores, seen items 0."""
        out = {}
        for name, scores in self.raw.items():
            part = normalise(scores, method).astype(np.float32)
            part[~np.isfinite(scores)] = 0.0
            out[name] = part
        return out

    def ndcg(self, parts: dict[str, np.ndarray], weights: dict[str, float], k: int) -> float:
        """Validation nDCG@k of the blend with ``weights`` over normalised ``parts``."""
        first = next(iter(self.raw.values()))
        total = np.zeros(first.shape, dtype=np.float32)
        for name, weight in weights.items():
            if weight > 0:
                total += np.float32(weight) * parts[name]
        total[~np.isfinite(first)] = -np.inf
        best = top_k_indices(total, k)
        return ndcg_from_indices(best, self.relevant, self.n_relevant, k) * self.share


def tune_blend(
    folds: Sequence[ValidationScores],
    *,
    k: int = 10,
    step: float = 0.2,
    refine: Sequence[float] = (0.1, 0.05),
    normalisations: Sequence[str] = NORMALISATIONS,
) -> list[dict]:
    """Blend trials on the mean validation nDCG@k over ``folds``, coarse then fine.

    1. Coarse: every normalisation with every weight vector of the simplex grid of
       ``step``.
    2. Fine: from the best coarse trial, a local search in the best normalisation --
       move ``refine[0]`` of weight from one component to another while that raises the
       mean nDCG (the best such move first), then the same with ``refine[1]``, ...

    Returns every trial (normalisation, weights, ndcg = the mean, fold_ndcg), best first;
    build the :class:`Blend` from the first one's normalisation and weights with the
    models refitted on all the rows (the folds hold scores, not models).
    """
    if not folds:
        raise ValueError("blend trials need at least one validation fold")
    trials = _Trials(folds, k, units=_units(step, refine))
    simplex = simplex_grid(len(trials.names), step)
    grid = [tuple(round(w * trials.units) for w in ws) for ws in simplex]
    method, best, combo = _coarse_search(trials, grid, normalisations)
    log.info("blend: %d coarse trials (step %s)", len(trials.done), step)
    parts = [f.parts(method) for f in folds]
    for size in refine:
        best, combo = _local_search(trials, method, parts, best, combo, round(size * trials.units))
    ordered = sorted(trials.done.values(), key=lambda t: -t["ndcg"])
    log.info(
        "blend: best mean validation nDCG@%d %.4f with %s (%d trials, %d coarse at step %s)",
        k,
        ordered[0]["ndcg"],
        {"normalisation": ordered[0]["normalisation"], "weights": ordered[0]["weights"]},
        len(ordered),
        len(grid) * len(normalisations),
        step,
    )
    return ordered


def _units(step: float, refine: Sequence[float]) -> int:
    """Weights count in units of the finest step, which every step must be a multiple of."""
    finest = min([step, *refine])
    units = round(1 / finest)
    for size in (step, *refine):
        if abs(size * units - round(size * units)) > 1e-9 or round(size * units) < 1:
            raise ValueError(f"blend steps must be multiples of the finest one ({finest})")
    return units


class _Trials:
    """Every blend tried, by (normalisation, weights in units): each is scored once."""

    def __init__(self, folds: Sequence[ValidationScores], k: int, *, units: int):
        self.folds, self.k, self.units = folds, k, units
        self.names = list(folds[0].raw)
        self.done: dict[tuple, dict] = {}

    def score(self, method: str, parts: list[dict], combo: tuple[int, ...]) -> dict:
        key = (method, combo)
        if key not in self.done:
            weights = {n: c / self.units for n, c in zip(self.names, combo, strict=True)}
            scores = [f.ndcg(p, weights, self.k) for f, p in zip(self.folds, parts, strict=True)]
            self.done[key] = {
                "normalisation": method,
                "weights": weights,
                "ndcg": float(np.mean(scores)),
                "fold_ndcg": scores,
            }
        return self.done[key]


def _coarse_search(trials: _Trials, grid: list[tuple], normalisations: Sequence[str]):
    """(normalisation, trial, weights) of the best point of the grid over every
    normalisation."""
    best_of: dict[str, tuple[dict, tuple]] = {}
    for method in normalisations:
        parts = [f.parts(method) for f in trials.folds]
        for combo in grid:
            t = trials.score(method, parts, combo)
            if method not in best_of or t["ndcg"] > best_of[method][0]["ndcg"]:
                best_of[method] = (t, combo)
        del parts
    method = max(best_of, key=lambda m: best_of[m][0]["ndcg"])
    return method, *best_of[method]


def _local_search(trials: _Trials, method: str, parts, best: dict, combo: tuple, move: int):
    """Move ``move`` units of weight from one component to another, the best move first,
    while that raises the mean nDCG; returns the best trial and its weights."""
    n = len(combo)
    while True:
        moves = [
            tuple(c - move if i == a else c + move if i == b else c for i, c in enumerate(combo))
            for a in range(n)
            for b in range(n)
            if a != b and combo[a] >= move
        ]
        candidates = [(trials.score(method, parts, m), m) for m in moves]
        if not candidates:
            return best, combo
        top, top_combo = max(candidates, key=lambda c: c[0]["ndcg"])
        if top["ndcg"] <= best["ndcg"]:
            return best, combo
        best, combo = top, top_combo

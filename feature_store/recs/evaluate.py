"""The Microsoft Recommenders MovieLens evaluation protocol, re-implemented.

Reproduces, number for number, what ``recommenders-team/recommenders`` computes in its
MovieLens benchmark: ``python_stratified_split(df, ratio=0.75, min_rating=1,
filter_by="item")`` with ``seed=42`` (one ``np.random.rand`` draw per row in the order the
rows were loaded, so the loader must keep the file order), then precision, recall, nDCG and
MAP at k = 10 with ``relevancy_method="top_k"`` and every test row relevant. Each metric
returns 0.0 when there is no hit at all, as the reference does. The reference's split and
metrics, rule by rule: docs/models.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

USER, ITEM, SCORE, RANK = "user_id", "item_id", "score", "rank"

# The benchmark's split and cut-off (benchmark notebook and recommenders.utils.constants).
BENCHMARK_SPLIT = {"ratio": 0.75, "min_rating": 1, "filter_by": "item", "seed": 42}
DEFAULT_K = 10
# Validation folds for a ratings file (the MovieLens benchmark, `marquee recs recommend`):
# on ml-latest-small the best blend weights of one split beat the next by 0.0005 nDCG,
# far inside that split's own noise. The fits take seconds there; the platform at 3M
# profiles keeps one fold (each fold is a full ALS and EASE fit).
MOVIELENS_VALIDATION_FOLDS = 3


def split_ratios(ratio: float | Sequence[float]) -> list[float]:
    """Normalize a ratio like ``process_split_ratio`` + ``_do_stratification`` do."""
    if isinstance(ratio, float):
        if not 0 < ratio < 1:
            raise ValueError("split ratio has to be between 0 and 1")
        return [ratio, 1 - ratio]
    if isinstance(ratio, Sequence) and not isinstance(ratio, str):
        ratios = [float(x) for x in ratio]
        if len(ratios) < 2 or any(x <= 0 for x in ratios):
            raise ValueError("a list of split ratios needs at least two ratios, all above 0")
        total = math.fsum(ratios)
        return ratios if total == 1.0 else [x / total for x in ratios]
    raise TypeError("split ratio should be a float or a list of floats")


def stratified_split(
    data: pd.DataFrame,
    *,
    ratio: float | Sequence[float] = 0.75,
    min_rating: int = 1,
    filter_by: str = "user",
    seed: int = 42,
    col_user: str = USER,
    col_item: str = ITEM,
) -> list[pd.DataFrame]:
    """Random split stratified per user or per item, as Recommenders'
    ``python_stratified_split`` (same draws, same rows in each part, same row order).

    Each user's (``filter_by="user"``) or item's (``"item"``) rows are shuffled with a
    seeded uniform draw and the first ``ratio`` share of them goes to the first part.
    The benchmark uses :data:`BENCHMARK_SPLIT` (per item, 0.75, seed 42). The input frame is
    not modified; the parts keep its index labels.
    """
    if filter_by not in ("user", "item"):
        raise ValueError("filter_by should be either 'user' or 'item'")
    if min_rating < 1:
        raise ValueError("min_rating should be an integer >= 1")
    for col in (col_user, col_item):
        if col not in data.columns:
            raise ValueError(f"the data has no column {col!r}")
    ratios = split_ratios(ratio)
    by = col_user if filter_by == "user" else col_item
    if min_rating > 1:
        sizes = data.groupby(by)[by].transform("size")
        data = data[sizes >= min_rating]
    draw = np.random.RandomState(seed).rand(len(data))  # == np.random.seed(seed); rand(n)
    order = pd.DataFrame({by: data[by].to_numpy(), "_draw": draw}, index=data.index)
    order = order.sort_values([by, "_draw"])
    groups = order.groupby(by)
    rank = (groups.cumcount() + 1) / groups[by].transform("count")
    ordered = data.loc[order.index]
    parts = []
    previous = None
    for threshold in np.cumsum(ratios):
        keep = rank <= threshold
        if previous is not None:
            keep &= rank > previous
        parts.append(ordered[keep.to_numpy()])
        previous = threshold
    return parts


def top_k(
    recs: pd.DataFrame, k: int, *, col_user: str = USER, col_score: str = SCORE
) -> pd.DataFrame:
    """Each user's k best rows by score (ties keep input order) with ``rank`` 1..k."""
    best = (
        recs.sort_values([col_user, col_score], ascending=[True, False], kind="stable")
        .groupby(col_user, sort=False)
        .head(k)
        .reset_index(drop=True)
    )
    best[RANK] = best.groupby(col_user, sort=False).cumcount() + 1
    return best


def ranking_metrics(
    truth: pd.DataFrame,
    recs: pd.DataFrame,
    *,
    k: int = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_score: str = SCORE,
) -> dict[str, float]:
    """precision@k, recall@k, nDCG@k, MAP@k (and the older ``map``) of ``recs`` against the
    held-out ``truth`` rows, as Recommenders' ``python_evaluation`` computes them (see the
    module docstring). ``recs`` needs user, item and score columns; ``truth`` user and item,
    one row per relevant (user, item)."""
    columns = {"col_user": col_user, "col_item": col_item, "col_score": col_score}
    return ranking_metrics_at(truth, recs, (k,), **columns)[k]


def ranking_metrics_at(
    truth: pd.DataFrame,
    recs: pd.DataFrame,
    ks: Sequence[int],
    *,
    col_user: str = USER,
    col_item: str = ITEM,
    col_score: str = SCORE,
) -> dict[int, dict[str, float]]:
    """`ranking_metrics` at each cut-off in ``ks``, from one ranking and one join of the
    hits: the lists of the largest cut-off hold every smaller one's (a stable sort)."""
    truth = truth[[col_user, col_item]]
    common = np.intersect1d(truth[col_user].unique(), recs[col_user].unique())
    truth_common = truth[truth[col_user].isin(common)]
    best = top_k(recs[recs[col_user].isin(common)], max(ks), col_user=col_user, col_score=col_score)
    hits = best.merge(truth_common, on=[col_user, col_item])[[col_user, RANK]]
    hits = hits.sort_values([col_user, RANK], kind="stable")
    relevant = truth.groupby(col_user).size()
    return {k: _metrics(hits[hits[RANK] <= k], relevant, len(common), k, col_user) for k in ks}


def _metrics(hits: pd.DataFrame, relevant: pd.Series, n_users: int, k: int, col_user: str):
    """The metrics at ``k`` from the hits of rank <= k, sorted by user and rank."""
    names = (f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", "map")
    if hits.empty:
        return dict.fromkeys(names, 0.0)
    by_user = hits.groupby(col_user)
    per_user = pd.DataFrame(
        {
            "hits": by_user.size(),
            "dcg": (1.0 / np.log1p(hits[RANK])).groupby(hits[col_user]).sum(),
            "rr": ((by_user.cumcount() + 1) / hits[RANK]).groupby(hits[col_user]).sum(),
        }
    )
    per_user["relevant"] = relevant.reindex(per_user.index)
    ideal = relevant.clip(upper=k).map(_ideal_dcg)
    return {
        names[0]: float((per_user["hits"] / k).sum() / n_users),
        names[1]: float((per_user["hits"] / per_user["relevant"]).sum() / n_users),
        names[2]: float(per_user["dcg"].reindex(relevant.index, fill_value=0.0).div(ideal).mean()),
        names[3]: float((per_user["rr"] / per_user["relevant"].clip(upper=k)).sum() / n_users),
        names[4]: float((per_user["rr"] / per_user["relevant"]).sum() / n_users),
    }


def _ideal_dcg(n: int) -> float:
    return float((1.0 / np.log1p(np.arange(1, n + 1))).sum())


def precision_at_k(truth: pd.DataFrame, recs: pd.DataFrame, k: int = DEFAULT_K) -> float:
    """precision@k of `recs` against `truth`, as `ranking_metrics` computes it."""
    return ranking_metrics(truth, recs, k=k)[f"precision@{k}"]


def recall_at_k(truth: pd.DataFrame, recs: pd.DataFrame, k: int = DEFAULT_K) -> float:
    """recall@k of `recs` against `truth`, as `ranking_metrics` computes it."""
    return ranking_metrics(truth, recs, k=k)[f"recall@{k}"]


def ndcg_at_k(truth: pd.DataFrame, recs: pd.DataFrame, k: int = DEFAULT_K) -> float:
    """nDCG@k of `recs` against `truth`, as `ranking_metrics` computes it."""
    return ranking_metrics(truth, recs, k=k)[f"ndcg@{k}"]


def map_at_k(truth: pd.DataFrame, recs: pd.DataFrame, k: int = DEFAULT_K) -> float:
    """MAP@k of `recs` against `truth`, as `ranking_metrics` computes it."""
    return ranking_metrics(truth, recs, k=k)[f"map@{k}"]

"""Titles as content vectors from their metadata: genres, release decade, kind, cast and
(when a data set has them) user tags, each block one-hot (tags TF-IDF), scaled to unit
length and by its weight, the whole vector then L2-normalised, so F F' holds the
title-title cosine similarities. Shared by the models that compare titles by what they
are rather than who watched them (the recommender's content and item models, the
forecast's audience model for launches).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

_YEAR = re.compile(r"\((\d{4})\)\s*$")


def item_features(
    items: pd.DataFrame,
    item_ids: np.ndarray,
    *,
    tags: pd.DataFrame | None = None,
    genre_weight: float = 1.0,
    decade_weight: float = 0.5,
    tag_weight: float = 0.5,
    attribute_weight: float = 0.5,
    min_tag_items: int = 2,
) -> sp.csr_matrix:
    """Row-normalised feature matrix (one row per id in ``item_ids``, zero if unknown).
    Items may carry ``kind`` (a string) and ``cast`` (a list): each becomes a one-hot block
    of ``attribute_weight``."""
    meta = items.drop_duplicates("item_id").set_index("item_id").reindex(item_ids)
    genres = meta["genres"].apply(lambda g: g if isinstance(g, list) else [])
    decades = meta["title"].apply(_decade)
    blocks = [
        genre_weight * _normalise_rows(_one_hot(genres)),
        decade_weight
        * _normalise_rows(_one_hot(decades.apply(lambda d: [] if d is None else [d]))),
    ]
    for column in ("kind", "cast"):
        if column in meta.columns and attribute_weight > 0:
            values = meta[column].apply(_as_list)
            blocks.append(attribute_weight * _normalise_rows(_one_hot(values)))
    if tags is not None and tag_weight > 0:
        blocks.append(tag_weight * _tag_tfidf(tags, item_ids, min_items=min_tag_items))
    return _normalise_rows(sp.hstack(blocks).tocsr())


def _as_list(value) -> list:
    if isinstance(value, list | tuple | np.ndarray):
        return list(value)
    return [] if value is None or (isinstance(value, float) and np.isnan(value)) else [value]


def _decade(title) -> str | None:
    match = _YEAR.search(str(title)) if isinstance(title, str) else None
    return f"{int(match.group(1)) // 10 * 10}s" if match else None


def _one_hot(values: pd.Series) -> sp.csr_matrix:
    vocab = sorted({v for vs in values for v in vs})
    index = {v: i for i, v in enumerate(vocab)}
    rows = [r for r, vs in enumerate(values) for _ in vs]
    cols = [index[v] for vs in values for v in vs]
    return sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(values), max(len(vocab), 1))
    )


def _tag_tfidf(tags: pd.DataFrame, item_ids: np.ndarray, *, min_items: int) -> sp.csr_matrix:
    t = tags.assign(tag=tags["tag"].astype(str).str.strip().str.lower())
    t = t[t["item_id"].isin(item_ids) & (t["tag"] != "")]
    counts = t.groupby(["item_id", "tag"]).size().rename("n").reset_index()
    spread = counts.groupby("tag")["item_id"].transform("size")
    counts = counts[spread >= min_items]
    if counts.empty:
        return sp.csr_matrix((len(item_ids), 1))
    vocab = np.sort(counts["tag"].unique())
    rows = np.searchsorted(item_ids, counts["item_id"].to_numpy())
    cols = np.searchsorted(vocab, counts["tag"].to_numpy())
    n_items_with = counts.groupby("tag").size().reindex(vocab).to_numpy()
    idf = np.log(len(item_ids) / n_items_with)
    tfidf = np.log1p(counts["n"].to_numpy()) * idf[cols]
    return _normalise_rows(sp.csr_matrix((tfidf, (rows, cols)), shape=(len(item_ids), len(vocab))))


def _normalise_rows(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms) @ m

"""Item-to-item models: EASE where the catalogue fits in memory, else item co-occurrence.

EASE (Steck, WWW 2019) learns an items x items weight matrix B with a zero diagonal, in
closed form; a user's scores are their history row times B. ``user_weight`` keeps users
with thousands of ratings from dominating; ``side_weight`` adds the titles' metadata as
extra rows (Jeunen, Van Balen & Goethals, RecSys 2020). EASE needs dense items x items
float arrays, so it is used up to :data:`MAX_DENSE_ITEMS` items; beyond that
:class:`ItemCooccurrence` keeps each item's top neighbours by cosine similarity of the
co-occurrence counts, in sparse form. The formulas: docs/models.md.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from feature_store.features.content import item_features
from feature_store.recs.models.base import Recommender
from feature_store.recs.models.content import tags_seen_in

log = logging.getLogger(__name__)

MAX_DENSE_ITEMS = 15_000  # 15k x 15k float64 = 1.8 GB per copy


class EASE(Recommender):
    """EASE on the binary user x item matrix (who rated what).

    In float32 by default: on ml-latest-small's benchmark split it gives the very same
    top-10 lists as float64 (two settings, every row equal) in a third of the time, and
    at 20,000 titles the matrix (1.5 GiB instead of 3) still factorises on every core.

    ``lambda_`` is the L2 penalty on B (a few hundred suits MovieLens at 100k ratings);
    ``user_weight`` the exponent a of the per-user weights n_u^(-2a) (0: plain EASE);
    ``side_weight`` the weight s of the metadata rows, which needs ``items`` (item_id,
    title, genres[, kind, cast]) and takes ``tags`` as the content model does (only those
    on (user, title) pairs of the training rows).
    """

    name = "ease"

    def __init__(
        self,
        *,
        lambda_: float = 400.0,
        user_weight: float = 0.0,
        side_weight: float = 0.0,
        items: pd.DataFrame | None = None,
        tags: pd.DataFrame | None = None,
        dtype: str = "float32",
    ):
        if lambda_ <= 0:
            raise ValueError("lambda_ must be > 0")
        if user_weight < 0:
            raise ValueError("user_weight must be >= 0")
        if side_weight < 0:
            raise ValueError("side_weight must be >= 0")
        if side_weight > 0 and items is None:
            raise ValueError("side_weight > 0 needs the items' metadata (items=...)")
        self.lambda_ = float(lambda_)
        self.user_weight = float(user_weight)
        self.side_weight = float(side_weight)
        self.items, self.tags = items, tags
        self.dtype = np.dtype(dtype)

    def params(self) -> dict:
        """The settings for a run's params: lambda, user and side weights, dtype."""
        return {
            "lambda": self.lambda_,
            "user_weight": self.user_weight,
            "side_weight": self.side_weight,
            "dtype": self.dtype.name,
        }

    def fit(self, train: pd.DataFrame) -> EASE:
        """Solve for the item weights B (with metadata rows if `side_weight`); returns the model."""
        self.data = self._interactions(train)
        x = self.data.binary().astype(self.dtype)
        n = self.data.n_items
        if n > MAX_DENSE_ITEMS:
            log.warning(
                "EASE on %d items needs %.1f GB per copy", n, n * n * self.dtype.itemsize / 1e9
            )
        weighted = x
        if self.user_weight > 0:
            # Rows weighted by n_u^-2a, rescaled to average 1 per rating so that lambda
            # keeps its meaning.
            per_user = np.asarray(x.sum(axis=1)).ravel()
            w = per_user ** (-2 * self.user_weight)
            w *= per_user.sum() / (w * per_user).sum()
            weighted = sp.diags(w.astype(self.dtype)) @ x
        gram = _dense_gram(weighted, x)
        if self.side_weight > 0:
            features = item_features(
                self.items, self.data.item_ids, tags=tags_seen_in(self.tags, train)
            ).T.astype(self.dtype)  # features x items: the metadata's pseudo-users
            _dense_gram(features, features, out=gram, scale=self.side_weight)
        gram[np.diag_indices(n)] += self.lambda_
        self.weights = _ease_weights(gram)
        self._x = x.tocsr()
        return self

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """Each user's history row times the item weights B."""
        return np.asarray(self._x[user_idx] @ self.weights)


def _dense_gram(
    left: sp.spmatrix,
    right: sp.spmatrix,
    block: int = 2048,
    *,
    out: np.ndarray | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """``scale`` x left' right as a dense array, a band of columns at a time; with
    ``out`` (symmetric) it is added to ``out`` in place instead (and ``out`` returned).
    The product must be symmetric (``left`` = a diagonal x ``right``, as EASE's are):
    only the upper triangle is multiplied (half the sparse products), then mirrored.

    The sparse product in one go holds nearly every item pair as a stored entry (12 bytes
    each against a dense array's 8) before its dense copy: at 19,390 titles and 29M
    ratings that was ~4.5 GB of sparse product plus the 3 GB array, and the refit died of
    it. Per band the sparse part is at most items x ``block``.
    """
    n = right.shape[1]
    gram = out
    if gram is None:
        gram = np.empty((left.shape[1], n), dtype=np.result_type(left.dtype, right.dtype))
    left_t = left.T.tocsr()
    right = right.tocsc()
    for start in range(0, n, block):
        stop = min(n, start + block)
        band = (left_t[:stop] @ right[:, start:stop]).toarray()  # rows above and in the band
        if scale != 1.0:
            band *= scale
        if out is None:
            gram[:stop, start:stop] = band
        else:
            gram[:stop, start:stop] += band
    _mirror_lower(gram.T)  # the transpose's lower triangle is the upper one computed
    return gram


# SciPy's bundled OpenBLAS (32-bit indices) dies with a segmentation fault in its
# multithreaded Cholesky once the matrix nears 2 GiB: 16,300 and 19,390 titles in
# float64 crashed here, 14,500 ran, and 17,000 ran on one thread. Above this size the
# factorisation runs on one thread (19,390 titles: ~2.5 minutes instead of a crash).
THREADED_FACTORISATION_MAX_BYTES = 1.5 * 2**30


def _ease_weights(gram: np.ndarray) -> np.ndarray:
    """B = -P / diag(P) with a zero diagonal, P = gram^-1 (gram is overwritten).

    LAPACK works on column-major arrays; the symmetric gram's transpose is one without a
    copy (3 GB at 20,000 titles). B comes back row-major: scoring multiplies a sparse
    users x titles block by it, and scipy copies a column-major operand on every call.
    """
    lapack_order = gram.T if gram.flags.c_contiguous else gram  # the same symmetric matrix
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (lapack_order,))
    threads = (
        threadpool_limits(1, "blas")
        if gram.nbytes > THREADED_FACTORISATION_MAX_BYTES
        else contextlib.nullcontext()
    )
    with threads:
        chol, info = potrf(lapack_order, lower=True, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: X'X + lambda I is not positive definite ({info})")
        inv, info = potri(chol, lower=True, overwrite_c=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: inverting the Cholesky factor failed ({info})")
    _mirror_lower(inv)
    weights = inv.T if inv.flags.f_contiguous else inv  # symmetric: the transpose is P
    diag = np.diag(weights).copy()
    weights /= -diag[np.newaxis, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def _mirror_lower(matrix: np.ndarray, block: int = 2048) -> None:
    """Copy the lower triangle onto the upper one in place, a band of rows at a time: index
    arrays over the whole upper triangle would cost three times the matrix (20,000 titles:
    9 GB on top of the 3 GB matrix)."""
    n = matrix.shape[0]
    for start in range(0, n, block):
        stop = min(n, start + block)
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T
        square = matrix[start:stop, start:stop]
        upper = np.triu_indices(stop - start, k=1)
        square[upper] = square.T[upper]


class ItemCooccurrence(Recommender):
    """Item-item cosine similarity of co-occurrence counts, top ``neighbours`` per item;
    a user's score for an item is the sum of its similarities to the items they rated."""

    name = "cooccurrence"

    def __init__(
        self, *, neighbours: int = 200, shrink: float = 10.0, chunk_cells: int = 20_000_000
    ):
        self.neighbours = neighbours
        self.shrink = shrink
        self.chunk_cells = chunk_cells

    def params(self) -> dict:
        """The settings for a run's params: `neighbours` and `shrink`."""
        return {"neighbours": self.neighbours, "shrink": self.shrink}

    def fit(self, train: pd.DataFrame) -> ItemCooccurrence:
        """Keep each item's top `neighbours` by shrunk co-occurrence cosine; returns the model."""
        self.data = self._interactions(train)
        x = self.data.binary().tocsc()
        n = self.data.n_items
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        xt = x.T.tocsr()
        keep = min(self.neighbours, max(n - 1, 1))
        step = max(1, self.chunk_cells // max(n, 1))
        blocks = []
        for start in range(0, n, step):
            stop = min(n, start + step)
            counts = (xt @ x[:, start:stop]).toarray()  # n x chunk
            sim = counts / (np.outer(norms, norms[start:stop]) + self.shrink)
            sim[np.arange(start, stop), np.arange(stop - start)] = 0.0  # no self-similarity
            if keep < n:
                cut = np.argpartition(-sim, keep - 1, axis=0)[:keep]
                mask = np.zeros_like(sim, dtype=bool)
                np.put_along_axis(mask, cut, True, axis=0)
                sim[~mask] = 0.0
            blocks.append(sp.csc_matrix(sim))
        self.similarity = sp.hstack(blocks).tocsr() if blocks else sp.csr_matrix((n, n))
        self._x = x.tocsr()
        return self

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """Each user's sum of similarities from the items they rated."""
        return (self._x[user_idx] @ self.similarity).toarray()


def item_to_item(
    n_items: int,
    *,
    max_dense_items: int = MAX_DENSE_ITEMS,
    lambda_: float = 400.0,
    user_weight: float = 0.0,
    **kwargs: Any,
) -> Recommender:
    """EASE when ``n_items`` fits in memory (<= ``max_dense_items``), else co-occurrence
    (``kwargs`` go to :class:`ItemCooccurrence`)."""
    if n_items <= max_dense_items:
        return EASE(lambda_=lambda_, user_weight=user_weight)
    return ItemCooccurrence(**kwargs)

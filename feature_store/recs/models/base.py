"""What every candidate model shares: id <-> index maps, the training matrix, scoring in
batches and top-k selection with seen items excluded.

A model learns from a pandas frame of (user_id, item_id, rating[, timestamp]) rows and
scores a block of known users against its catalogue (the items seen in training) as a
dense ``users x items`` NumPy array; :meth:`Recommender.recommend` turns those scores into
the top k (user_id, item_id, score, rank) rows, one block of users at a time (see
:meth:`Recommender.block_rows`). Users unknown to the model get no rows.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

T = TypeVar("T")

USER, ITEM, RATING, SCORE, RANK = "user_id", "item_id", "rating", "score", "rank"
RECS_COLUMNS = [USER, ITEM, SCORE, RANK]
# A block of users x catalogue float64 scores no bigger than this stays in the L3 cache
# while the blend passes over it several times (score, normalise, add, select). Serving
# the 2M-account benchmark's 19,390 titles (synthetic factors, one thread), blocks of
# 32-64 users gave 891-936 profiles per second against 471 with blocks of 2,048 (318 MB).
BLOCK_BYTES = 8 * 2**20


class Interactions:
    """Training rows as a sparse users x items matrix, with the id <-> index maps (ids
    sorted ascending; row / column i is the i-th smallest id). The items are those of the
    training rows plus, when given, a ``catalogue`` of titles nobody interacted with yet."""

    def __init__(self, train: pd.DataFrame, catalogue: Iterable | None = None):
        missing = {USER, ITEM} - set(train.columns)
        if missing:
            raise ValueError(f"training rows need columns {sorted(missing)}")
        if train.empty:
            raise ValueError("no training rows")
        self.user_ids = np.sort(train[USER].unique())
        items = train[ITEM].unique()
        if catalogue is not None:
            items = pd.unique(np.concatenate([items, np.asarray(list(catalogue), items.dtype)]))
        self.item_ids = np.sort(items)
        # Hash lookups, not np.searchsorted: a binary search over millions of string ids
        # compares Python objects ~20 times per row (minutes at 30M rows, seconds here).
        self._user_lookup = pd.Index(self.user_ids)
        self.rows = self._user_lookup.get_indexer(train[USER])
        self.cols = pd.Index(self.item_ids).get_indexer(train[ITEM])
        # number of rows per (user, item): 1 unless the training rows repeat a pair
        self.matrix = sp.csr_matrix(
            (np.ones(len(train)), (self.rows, self.cols)),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        self.matrix.sum_duplicates()
        self.seen = sp.csr_matrix(
            (np.ones(len(train), dtype=bool), (self.rows, self.cols)), shape=self.matrix.shape
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def binary(self) -> sp.csr_matrix:
        """The matrix with every stored entry set to 1: who interacted with what."""
        out = self.matrix.copy()
        out.data = np.ones_like(out.data)
        return out

    def user_index(self, users: Iterable) -> tuple[np.ndarray, np.ndarray]:
        """(known user ids, their row indices), in the order given, unknown ones dropped."""
        users = np.asarray(list(users) if not isinstance(users, np.ndarray) else users)
        pos = self._user_lookup.get_indexer(users)
        known = pos >= 0
        return users[known], pos[known]

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (users[i], items[i]) pair is among the training rows (False for
        unknown ids): a look-up in the matrix, not a set of 30M Python pairs (GBs at 2M)."""
        rows = self._user_lookup.get_indexer(users)
        cols = pd.Index(self.item_ids).get_indexer(items)
        out = np.zeros(len(rows), dtype=bool)
        both = (rows >= 0) & (cols >= 0)
        out[both] = np.asarray(self.seen[rows[both], cols[both]]).ravel()
        return out


_SHARED: contextvars.ContextVar[tuple[tuple[pd.DataFrame, dict], ...]] = contextvars.ContextVar(
    "shared_interactions", default=()
)


@contextlib.contextmanager
def shared_interactions(*frames: pd.DataFrame) -> Iterator[None]:
    """Within: models fitted on one of ``frames`` itself (the same frame object) with the
    same catalogue share one :class:`Interactions` instead of building one each. At 3M
    profiles each one holds index arrays, two sparse matrices and an id lookup for 30M
    rows, and the ensemble's refit kept one per component: the 2M benchmark's refit ran
    out of memory at its fourth component (EASE, after ALS). Nested blocks add frames."""
    token = _SHARED.set(_SHARED.get() + tuple((frame, {}) for frame in frames))
    try:
        yield
    finally:
        _SHARED.reset(token)


def sample_groups(rows: pd.DataFrame, column: str, n: int, seed: int = 42) -> pd.DataFrame:
    """The rows of at most ``n`` values of ``column`` (all rows of each), drawn with a
    fixed seed; ``rows`` itself when it holds no more."""
    values = rows[column].unique()
    if len(values) <= n:
        return rows
    chosen = np.random.default_rng(seed).choice(values, n, replace=False)
    return rows[rows[column].isin(chosen)]


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k highest scores, best first (ties: lower index first;
    NaN counts as -inf)."""
    rows, n = scores.shape
    k = min(k, n)
    if k == 0:
        return np.empty((rows, 0), dtype=np.int64)
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    part = _top_k_unordered(scores, k) if k < n else np.tile(np.arange(n), (rows, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _top_k_unordered(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's k highest columns, ascending (ties at the k-th value: lower index first).
    The k-th value by np.partition, then one comparison: at 20,000 titles several times
    faster than np.argpartition, which served lists spent a quarter of their time in."""
    rows, n = scores.shape
    kth = np.partition(scores, n - k, axis=1)[:, n - k, np.newaxis]
    chosen = scores >= kth
    crowded = np.flatnonzero(chosen.sum(axis=1) > k)  # more than k at or above the k-th
    if len(crowded):
        sub, at = scores[crowded], kth[crowded]
        ties = sub == at
        room = k - (sub > at).sum(axis=1, keepdims=True)
        chosen[crowded] = (sub > at) | (ties & (np.cumsum(ties, axis=1) <= room))
    return np.nonzero(chosen)[1].reshape(rows, k)


def in_threads(
    work: Callable[[slice], T], n: int, block: int, workers: int | None = None
) -> Iterator[T]:
    """``work(rows)`` for consecutive blocks of ``n`` rows on ``workers`` threads (default
    one per core), yielded in row order.

    Threads rather than processes: NumPy and SciPy let go of the GIL in the heavy parts
    (matrix products, sums, selections), and fitted models (3 GB of EASE weights at
    20,000 titles) are shared rather than copied. At most two blocks per thread are in
    flight, so memory stays flat however many rows there are.
    """
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        pending: collections.deque = collections.deque()
        for start in range(0, n, block):
            pending.append(pool.submit(work, slice(start, min(n, start + block))))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def top_k_rows(
    scores: np.ndarray, user_ids: np.ndarray, item_ids: np.ndarray, k: int
) -> pd.DataFrame:
    """(user_id, item_id, score, rank) of each row's k best finite scores; row i of
    ``scores`` belongs to ``user_ids[i]``, column j to ``item_ids[j]``."""
    best = top_k_indices(scores, k)
    best_scores = np.take_along_axis(scores, best, axis=1)
    keep = np.isfinite(best_scores).ravel()
    n = best.shape[1]
    return pd.DataFrame(
        {
            USER: np.repeat(user_ids, n)[keep],
            ITEM: item_ids[best.ravel()][keep],
            SCORE: best_scores.ravel()[keep].astype(np.float64),
            RANK: np.tile(np.arange(1, n + 1), len(user_ids))[keep],
        }
    )


class Recommender:
    """Base class: subclasses implement :meth:`fit` (setting ``self.data``) and
    :meth:`score_indices`."""

    name = "base"
    data: Interactions
    batch_size = 2048  # users per block at most; see block_rows
    catalogue: np.ndarray | None = None  # items to score beyond those seen in training

    def with_catalogue(self, item_ids: Iterable) -> Recommender:
        """Score these items too (titles nobody watched yet); call before :meth:`fit`."""
        self.catalogue = np.asarray(list(item_ids))
        return self

    def _interactions(self, train: pd.DataFrame) -> Interactions:
        built = next((cache for frame, cache in _SHARED.get() if frame is train), None)
        if built is None:
            return Interactions(train, self.catalogue)
        key = None if self.catalogue is None else tuple(self.catalogue.tolist())
        if key not in built:
            built[key] = Interactions(train, self.catalogue)
        return built[key]

    def fit(self, train: pd.DataFrame) -> Recommender:
        """Learn from `train` rows (user_id, item_id[, rating, timestamp]); returns the model."""
        raise NotImplementedError

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of the given user rows against every catalogue item (float array)."""
        raise NotImplementedError

    def params(self) -> dict:
        """The model's settings, for a run's params (none here)."""
        return {}

    def _check_fitted(self) -> None:
        if getattr(self, "data", None) is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train) first")

    def block_rows(self) -> int:
        """Users scored at once: ``batch_size``, fewer when their scores would not fit
        :data:`BLOCK_BYTES` (at least 16, so per-block overhead stays small)."""
        fitting = BLOCK_BYTES // (8 * max(self.data.n_items, 1))
        return int(min(self.batch_size, max(16, fitting)))

    def recommend(self, users: Iterable, k: int = 10, *, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k rows (user_id, item_id, score, rank) for each known user, rank 1 = best."""
        self._check_fitted()
        ids, idx = self.data.user_index(users)
        frames = []
        rows = self.block_rows()
        for start in range(0, len(idx), rows):
            block = idx[start : start + rows]
            scores = self.score_indices(block)
            # float32 stays float32 (the blend's); anything else becomes float64
            scores = np.asarray(scores, dtype=np.result_type(scores.dtype, np.float32))
            if exclude_seen:
                scores[self.data.seen[block].nonzero()] = -np.inf
            frames.append(
                top_k_rows(scores, ids[start : start + len(block)], self.data.item_ids, k)
            )
        if not frames:
            return pd.DataFrame(
                {
                    USER: pd.Series(dtype="int64"),
                    ITEM: pd.Series(dtype="int64"),
                    SCORE: pd.Series(dtype="float64"),
                    RANK: pd.Series(dtype="int64"),
                }
            )
        return pd.concat(frames, ignore_index=True)

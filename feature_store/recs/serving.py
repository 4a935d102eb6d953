"""The trained recommender as one object: what batch scoring and the registered model run.

``ServingRecommender`` holds the fitted ensemble, the trending model for members without
history, the titles' genre space and the calibration weight. ``recommend`` takes profile
ids (and, for profiles the models never saw, their region and segment), scores the
ensemble's top candidates, re-ranks them for calibration and returns the top k. It
pickles without a Spark session, so the MLflow pyfunc can load it anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from feature_store.recs.diversity import GenreSpace, calibrated_rerank
from feature_store.recs.ensemble import Blend
from feature_store.recs.models.base import ITEM, RANK, SCORE, USER, in_threads
from feature_store.recs.models.trending import TrendingPopularity
from feature_store.recs.ranker import SESSION, Ranker, RankerContext, candidate_rows, with_features

CANDIDATES_PER_USER = 100  # the ensemble's top n the calibration chooses from
SCORING_BLOCK = 4096  # profiles per block in batch scoring (a few users x catalogue arrays)


class ServingRecommender:
    def __init__(
        self,
        ensemble: Blend,
        trending: TrendingPopularity,
        space: GenreSpace,
        *,
        calibration_weight: float,
        candidates: int = CANDIDATES_PER_USER,
        ranker: Ranker | None = None,
        ranker_context: RankerContext | None = None,
    ):
        if not 0.0 <= calibration_weight <= 1.0:
            raise ValueError(f"calibration weight must lie in [0, 1], not {calibration_weight}")
        self.ensemble, self.trending, self.space = ensemble, trending, space
        self.calibration_weight, self.candidates = calibration_weight, candidates
        if (ranker is None) != (ranker_context is None):
            raise ValueError("a ranker needs its RankerContext, and the other way round")
        self.ranker, self.ranker_context = ranker, ranker_context

    @property
    def item_ids(self) -> np.ndarray:
        return self.ensemble.data.item_ids

    def history(self, users: np.ndarray) -> pd.DataFrame:
        """(user_id, item_id) of the training interactions of ``users``."""
        ids, idx = self.ensemble.data.user_index(users)
        rows, cols = self.ensemble.data.seen[idx].nonzero()
        return pd.DataFrame({USER: ids[rows], ITEM: self.item_ids[cols]})

    def recommend(
        self,
        users: Iterable,
        k: int,
        *,
        regions: Iterable[str] | None = None,
        segments: Iterable[str] | None = None,
        devices: Iterable[str] | None = None,
        hours: Iterable[int] | None = None,
        calibrate: bool = True,
    ) -> pd.DataFrame:
        """Top k (user_id, item_id, score, rank) per user; seen titles excluded. With the
        session context (``devices`` and local ``hours``, one per user) the ranker orders
        the ensemble's candidates. Users the ensemble does not know get their region and
        segment's trending titles."""
        users = np.asarray(list(users), dtype=object)
        known_ids, _ = self.ensemble.data.user_index(users)
        if self.ranker is not None and devices is not None and hours is not None:
            context = pd.DataFrame(
                {USER: users, "device": list(devices), "local_hour": list(hours)}
            )
            candidates = self.ranked(context[context[USER].isin(set(known_ids))])
        else:
            candidates = self.ensemble.recommend(known_ids, max(k, self.candidates))
        if calibrate and self.calibration_weight > 0 and len(candidates):
            known = calibrated_rerank(
                candidates,
                self.history(known_ids),
                self.space,
                k=k,
                weight=self.calibration_weight,
            )
        else:
            known = candidates[candidates[RANK] <= k]
        cold = self._cold_start(users, set(known_ids), k, regions, segments)
        parts = [part for part in (known, cold) if len(part)]
        return pd.concat(parts, ignore_index=True) if parts else known

    def recommend_blocks(
        self,
        users: Iterable,
        k: int,
        *,
        regions: Iterable[str] | None = None,
        segments: Iterable[str] | None = None,
        block: int = SCORING_BLOCK,
        workers: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """:meth:`recommend` over blocks of ``users`` on ``workers`` threads (default one
        per core, see :func:`~feature_store.recs.models.base.in_threads`), yielding each
        block's lists in the order of ``users``."""
        users = np.asarray(list(users), dtype=object)
        regions = None if regions is None else np.asarray(list(regions), dtype=object)
        segments = None if segments is None else np.asarray(list(segments), dtype=object)

        def one(rows: slice) -> pd.DataFrame:
            return self.recommend(
                users[rows],
                k,
                regions=None if regions is None else regions[rows],
                segments=None if segments is None else segments[rows],
            )

        return in_threads(one, len(users), block, workers)

    def ranked(
        self, sessions: pd.DataFrame, candidates: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """The ranker's order of each session's candidates (sessions: user_id, device,
        local_hour and optionally session_id); one list per session, named by user_id
        when there is no session_id. ``candidates``: :func:`candidate_rows` of the
        sessions' users when the caller has them already."""
        if SESSION not in sessions.columns:
            sessions = sessions.assign(**{SESSION: sessions[USER]})
        users = sessions[USER].unique()
        if candidates is None:
            candidates = candidate_rows(self.ensemble, users, self.candidates)
        rows = with_features(candidates, sessions, self.ranker_context, self.history(users))
        ranked = self.ranker.rank(rows, SESSION, self.candidates)
        owner = sessions.drop_duplicates(SESSION).set_index(SESSION)[USER]
        if (sessions[SESSION] == sessions[USER]).all():
            return ranked.rename(columns={SESSION: USER})
        return ranked.assign(**{USER: owner.reindex(ranked[SESSION]).to_numpy()})

    def _cold_start(self, users, known: set, k: int, regions, segments) -> pd.DataFrame:
        """Each unknown user's region and segment trending list: one frame per group of
        users sharing both, not one per user (a fifth of the profiles at 2M accounts)."""
        cold = pd.DataFrame(
            {
                USER: users,
                "region": [None] * len(users) if regions is None else list(regions),
                "segment": [None] * len(users) if segments is None else list(segments),
            }
        )
        cold = cold[~cold[USER].isin(known)].assign(_order=lambda f: np.arange(len(f)))
        frames = []
        for (region, segment), group in cold.groupby(["region", "segment"], dropna=False):
            top = self.trending.top_for(_present(region), _present(segment), k)
            repeat = {c: np.repeat(group[c].to_numpy(), len(top)) for c in (USER, "_order")}
            tiled = {c: np.tile(top[c].to_numpy(), len(group)) for c in (ITEM, SCORE, RANK)}
            frames.append(pd.DataFrame({**repeat, **tiled}))
        if not frames:
            return pd.DataFrame(columns=[USER, ITEM, SCORE, RANK])
        lists = pd.concat(frames, ignore_index=True).sort_values("_order", kind="stable")
        return lists[[USER, ITEM, SCORE, RANK]].reset_index(drop=True)


def _present(value):
    """A group key as `top_for` takes it: None for a missing region or segment."""
    return None if pd.isna(value) else value

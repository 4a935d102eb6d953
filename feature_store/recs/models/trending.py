"""Popularity and trending per region and segment: the answer for a member with no history.

An interaction counts ``0.5 ** (age_days / half_life_days)``, its age taken from the
newest training timestamp, so titles gaining viewers now outrank those that were big
weeks ago. Shares are taken within each grouping level (everyone, the region, the region
and segment) and added, so a group's own taste leads where it has data and the wider
levels fill in where it has little. A user's group comes from ``user_groups``; users or
groups not there fall back to the wider levels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_store.recs.models.base import ITEM, USER, Recommender

SECONDS_PER_DAY = 86_400.0
LEVELS = ("region", "segment")  # grouping columns, widest first


class TrendingPopularity(Recommender):
    """Score = decayed share of interactions overall + within the region + within the
    region and segment of the user."""

    name = "trending"

    def __init__(self, user_groups: pd.DataFrame, *, half_life_days: float = 7.0):
        missing = {USER, *LEVELS} - set(user_groups.columns)
        if missing:
            raise ValueError(f"user_groups need columns {sorted(missing)}")
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, not {half_life_days}")
        self.user_groups = user_groups.drop_duplicates(USER).set_index(USER)[list(LEVELS)]
        self.half_life_days = half_life_days

    def params(self) -> dict:
        """The settings for a run's params: `half_life_days`."""
        return {"half_life_days": self.half_life_days}

    def fit(self, train: pd.DataFrame) -> TrendingPopularity:
        """Decayed shares overall, per region and per region and segment; returns the model."""
        self.data = self._interactions(train)
        if "timestamp" in train.columns:
            age_days = (train["timestamp"].max() - train["timestamp"]) / SECONDS_PER_DAY
            weight = np.power(0.5, age_days.to_numpy() / self.half_life_days)
        else:
            weight = np.ones(len(train))
        rows = pd.DataFrame(
            {
                "col": self.data.cols,
                "weight": weight,
                **{
                    level: self.user_groups[level].reindex(train[USER]).to_numpy()
                    for level in LEVELS
                },
            }
        )
        self.overall = _shares(rows.groupby("col")["weight"].sum(), self.data.n_items)
        self.by_group: dict[tuple, np.ndarray] = {}
        for depth in range(1, len(LEVELS) + 1):
            keys = list(LEVELS[:depth])
            for group, part in rows.dropna(subset=keys).groupby(keys):
                group = group if isinstance(group, tuple) else (group,)
                totals = part.groupby("col")["weight"].sum()
                self.by_group[group] = _shares(totals, self.data.n_items)
        # one score row per (region, segment) combination the users have
        groups = self.user_groups.reindex(self.data.user_ids).astype(object)
        groups = groups.where(groups.notna(), None)
        combos = pd.MultiIndex.from_frame(groups).unique()
        self._combo_scores = np.stack([self.scores_for(r, s) for r, s in combos])
        self._user_combo = combos.get_indexer(pd.MultiIndex.from_frame(groups))
        return self

    def scores_for(self, region: str | None, segment: str | None) -> np.ndarray:
        """Scores of every catalogue item for a member of this region and segment."""
        zero = np.zeros(self.data.n_items)
        region_part = self.by_group.get((region,), zero)
        segment_part = self.by_group.get((region, segment), zero)
        return self.overall + region_part + segment_part

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """Each user's row of `scores_for` their region and segment."""
        return self._combo_scores[self._user_combo[user_idx]]

    def top_for(self, region: str | None, segment: str | None, k: int) -> pd.DataFrame:
        """The top k items (item_id, score, rank) for a member with no history."""
        scores = self.scores_for(region, segment)
        best = np.argsort(-scores, kind="stable")[:k]
        return pd.DataFrame(
            {
                ITEM: self.data.item_ids[best],
                "score": scores[best],
                "rank": np.arange(1, len(best) + 1),
            }
        )


def _shares(totals: pd.Series, n_items: int) -> np.ndarray:
    out = np.zeros(n_items)
    out[totals.index.to_numpy()] = totals.to_numpy()
    total = out.sum()
    return out / total if total > 0 else out

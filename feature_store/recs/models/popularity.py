"""Most-popular baseline: every user gets the items rated by the most users in training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_store.recs.models.base import Recommender


class Popularity(Recommender):
    """Score = number of training users who rated the item (ties: lower item id first)."""

    name = "popularity"

    def fit(self, train: pd.DataFrame) -> Popularity:
        """Count each item's training users; returns the model."""
        self.data = self._interactions(train)
        self.counts = np.asarray(self.data.binary().sum(axis=0), dtype=np.float64).ravel()
        return self

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """Each item's count of training users, the same row for every user."""
        return np.broadcast_to(self.counts, (len(user_idx), len(self.counts))).copy()

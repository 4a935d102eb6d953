"""Content-based similarity from title metadata (the content vectors of
:mod:`feature_store.features.content`), with user tags only where a user put them on a
title they rated in training. A user's score for an item is the sum of its similarities
to the items in their history, (X F) F', computed without the items x items matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_store.features.content import item_features
from feature_store.recs.models.base import Recommender


def tags_seen_in(tags: pd.DataFrame | None, train: pd.DataFrame) -> pd.DataFrame | None:
    """Only the tags a user put on a title they rated in training: a tag on a held-out
    (user, title) pair would tell the model about that rating."""
    if tags is None or "user_id" not in tags.columns:
        return tags
    pairs = train[["user_id", "item_id"]].drop_duplicates()
    return tags.merge(pairs, on=["user_id", "item_id"], how="inner")


class ContentSimilarity(Recommender):
    """Score = sum over the user's rated items of the cosine similarity of item features."""

    name = "content"

    def __init__(
        self,
        items: pd.DataFrame,
        *,
        tags: pd.DataFrame | None = None,
        genre_weight: float = 1.0,
        decade_weight: float = 0.5,
        tag_weight: float = 0.5,
        attribute_weight: float = 0.5,
    ):
        missing = {"item_id", "title", "genres"} - set(items.columns)
        if missing:
            raise ValueError(f"items need columns {sorted(missing)}")
        self.items, self.tags = items, tags
        self.genre_weight, self.decade_weight = genre_weight, decade_weight
        self.tag_weight, self.attribute_weight = tag_weight, attribute_weight

    def params(self) -> dict:
        """The settings for a run's params (0 for the weight of metadata not given)."""
        return {
            "genre_weight": self.genre_weight,
            "decade_weight": self.decade_weight,
            "tag_weight": self.tag_weight if self.tags is not None else 0.0,
            "attribute_weight": self.attribute_weight
            if {"kind", "cast"} & set(self.items.columns)
            else 0.0,
        }

    def fit(self, train: pd.DataFrame) -> ContentSimilarity:
        """Build the item features and each user's feature profile; returns the model."""
        self.data = self._interactions(train)
        self.features = item_features(
            self.items,
            self.data.item_ids,
            tags=tags_seen_in(self.tags, train),
            genre_weight=self.genre_weight,
            decade_weight=self.decade_weight,
            tag_weight=self.tag_weight,
            attribute_weight=self.attribute_weight,
        )
        self._profiles = (self.data.binary() @ self.features).tocsr()  # users x features
        return self

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """Each item's summed content similarity to the items in each user's history."""
        # sparse titles x features times dense features x users: costs the features'
        # nonzeros per user (sparse x sparse with a dense result is ~5x slower)
        scores = self.features @ self._profiles[user_idx].T.toarray()
        return np.ascontiguousarray(scores.T)

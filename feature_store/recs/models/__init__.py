"""Candidate models: each fits on (user_id, item_id, rating) rows and recommends top-k."""

from feature_store.recs.models.als import ImplicitALS
from feature_store.recs.models.base import Interactions, Recommender, top_k_indices
from feature_store.recs.models.content import ContentSimilarity
from feature_store.recs.models.item import EASE, ItemCooccurrence, item_to_item
from feature_store.recs.models.popularity import Popularity
from feature_store.recs.models.trending import TrendingPopularity

__all__ = [
    "EASE",
    "ContentSimilarity",
    "ImplicitALS",
    "Interactions",
    "ItemCooccurrence",
    "Popularity",
    "Recommender",
    "TrendingPopularity",
    "item_to_item",
    "top_k_indices",
]

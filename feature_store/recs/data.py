"""The recommender's inputs on the platform's own data, read from the lake.

The models learn from ``profile_title_interactions`` as of a date T and are judged on the
titles the profiles started watching in the ``label_days`` after T and had not interacted
with before. Ids stay the lake's strings (``user_id`` the pseudonymized profile id,
``item_id`` the title id); frames are pandas. More: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.features import transforms as tf
from feature_store.features.retrieval import FeatureStoreReader
from feature_store.recs.models.base import ITEM, RATING, USER


class RecsDataError(RuntimeError):
    """A table the recommender needs is missing or empty for the requested date."""


@dataclasses.dataclass(frozen=True)
class PlatformData:
    """Training rows, title metadata and (when the lake holds them) the next days' views."""

    as_of: dt.date
    interactions: pd.DataFrame  # user_id, item_id, rating (confidence), timestamp
    items: pd.DataFrame  # item_id, title, genres, kind, cast, regions
    truth: pd.DataFrame  # user_id, item_id: first views after as_of, unseen before
    label_days: int
    table_versions: dict[str, int]  # feature and bronze tables read, for lineage


def load_platform_data(
    spark: SparkSession, lake_root: str, as_of: dt.date, *, label_days: int
) -> PlatformData:
    """Everything the recommender trains and is judged on, as of ``as_of``."""
    store = FeatureStoreReader(spark, lake_root, error=RecsDataError)
    rows = (
        store.features("profile_title_interactions", as_of=as_of)
        .filter(F.col("confidence") > 0)
        .select(
            F.col("profile_id").alias(USER),
            F.col("title_id").alias(ITEM),
            F.col("confidence").alias(RATING),
            F.unix_timestamp("last_interaction_ts").alias("timestamp"),
        )
        .toPandas()
    )
    if rows.empty:
        raise RecsDataError(
            f"profile_title_interactions has no rows as of {as_of} "
            "(build the features for that date first)"
        )
    items = _items(store.dimension("title_catalogue", as_of=as_of), as_of=as_of)
    # read (and pinned) even without label days: the ranker reads its sessions at that version
    viewing = store.source("viewing", after=as_of, through=as_of + dt.timedelta(days=label_days))
    truth = _next_views(viewing, days=label_days)
    seen = pd.MultiIndex.from_frame(rows[[USER, ITEM]])
    truth = truth[~pd.MultiIndex.from_frame(truth[[USER, ITEM]]).isin(seen)].reset_index(drop=True)
    return PlatformData(as_of, rows, items, truth, label_days, dict(store.versions))


def _items(catalogue: DataFrame, *, as_of: dt.date) -> pd.DataFrame:
    """The catalogue released by the end of ``as_of``, in the content model's shape."""
    released = catalogue.filter(F.col("release_date") <= F.lit(as_of))
    frame = released.select(
        F.col("title_id").alias(ITEM),
        # the content model reads the release decade from a trailing "(YYYY)"
        F.format_string("%s (%d)", F.col("title_id"), F.year("release_date")).alias("title"),
        "genres",
        "kind",
        "cast",
        "release_date",
        F.col("available_regions").alias("regions"),
    ).toPandas()
    for col in ("genres", "cast", "regions"):
        frame[col] = frame[col].apply(lambda v: list(v) if v is not None else [])
    return frame.sort_values(ITEM, ignore_index=True)


def _next_views(window: DataFrame, *, days: int) -> pd.DataFrame:
    """(user_id, item_id) of the views started in ``window``, the ``days`` after as_of."""
    if days < 1:
        return pd.DataFrame({USER: pd.Series(dtype=object), ITEM: pd.Series(dtype=object)})
    return (
        window.select(F.col("profile_id").alias(USER), F.col("title_id").alias(ITEM))
        .distinct()
        .toPandas()
    )


def sessions_between(
    spark: SparkSession, lake_root: str, first: dt.date, last: dt.date, *, version: int
) -> pd.DataFrame:
    """Every view started from ``first`` to ``last`` (inclusive) with its context: one row
    per (session_id, user_id, item_id) with the device and local hour it started at."""
    store = FeatureStoreReader(spark, lake_root, versions={"bronze.viewing": version})
    viewing = store.source("viewing")
    days = (last - first).days + 1
    views = tf.views(viewing, as_of=last, lookback_days=days)
    return views.select(
        "session_id",
        F.col("profile_id").alias(USER),
        F.col("title_id").alias(ITEM),
        "device",
        "local_hour",
    ).toPandas()

"""The ceiling: rank titles by the generator's own chance that a profile watches them.

The chance of watching title t over the label days is about

    exposure(t) x exp(utility(t))

where exposure is t's chance of being one of a session's candidates and utility the
profile's hidden taste for it. Ranking unseen titles by ``log exposure + utility`` is what a
model that knew the hidden truth would do; it is reported beside the models as the ceiling.
How the generator leads there and what it leaves out: docs/synthetic-data.md.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.privacy import pseudonymize
from feature_store.recs.models.base import ITEM, RANK, SCORE, USER, top_k_rows
from feature_store.sources import GENRES
from feature_store.synthetic import load_manifest
from feature_store.synthetic.activity import CANDIDATES, HOUR_GROUP_STARTS
from feature_store.synthetic.world import REGION_CODES, daily_popularity

POPULARITY_DRAWS = CANDIDATES - 1  # the third candidate comes from a favourite genre
FAVOURITE_GENRES = 3
_BATCH = 2048


def oracle_recommendations(
    spark: SparkSession,
    lake_root: str,
    users: np.ndarray,
    items: np.ndarray,
    interactions: pd.DataFrame,
    *,
    first_day: dt.date,
    last_day: dt.date,
    pseudonymization_key: str,
    k: int,
) -> pd.DataFrame:
    """Top k unseen ``items`` per profile of ``users`` (pseudonymized ids) by their chance
    of being watched from ``first_day`` to ``last_day``: (user_id, item_id, score, rank)."""
    lake = lk.Lake(lake_root)
    manifest = load_manifest(spark, lake_root)
    world, start = manifest["world"], dt.date.fromisoformat(manifest["spec"]["start_date"])
    truth = lake.ground_truth
    wanted = spark.createDataFrame(pd.DataFrame({USER: pd.Series(users, dtype=object)}))
    profiles = (
        lk.read_table(spark, f"{truth}/profiles")
        .select(
            pseudonymize(F.col("profile_id"), pseudonymization_key).alias(USER),
            "region",
            "taste",
            "factors",
            "top_genres",
            "preferred_device_idx",
            "peak_hour",
        )
        .join(wanted, USER)
        .toPandas()
    )
    titles = lk.read_table(spark, f"{truth}/titles").toPandas().sort_values("title_idx")
    regions = lk.read_table(spark, f"{truth}/title_regions").toPandas()
    if profiles.empty or titles.empty:
        return pd.DataFrame(columns=[USER, ITEM, SCORE, RANK])

    exposure = _Exposure(titles, regions, start=start, first_day=first_day, last_day=last_day)
    keep = titles["title_id"].isin(set(items)).to_numpy()
    item_ids = titles["title_id"].to_numpy()[keep]
    genre_vec = np.stack(titles["genre_vec"].to_numpy())[keep]
    title_factors = np.stack(titles["factors"].to_numpy())[keep]
    kind_idx = titles["kind_idx"].to_numpy()[keep]
    base = world["popularity_weight"] * titles["base_log_pop"].to_numpy()[keep]
    device_kind = np.asarray(world["device_kind"])
    hour_genre = np.asarray(world["hour_genre"])

    user_ids = profiles[USER].to_numpy()
    seen = interactions[interactions[USER].isin(set(user_ids))]
    seen_rows = pd.Index(user_ids).get_indexer(seen[USER])
    seen_cols = pd.Index(item_ids).get_indexer(seen[ITEM])
    seen_rows, seen_cols = seen_rows[seen_cols >= 0], seen_cols[seen_cols >= 0]
    frames = []
    for lo in range(0, len(profiles), _BATCH):
        block = profiles.iloc[lo : lo + _BATCH]
        hour_group = np.digitize(block["peak_hour"].to_numpy(), HOUR_GROUP_STARTS)
        utility = (
            world["taste_weight"] * np.stack(block["taste"].to_numpy()) @ genre_vec.T
            + world["factor_weight"] * np.stack(block["factors"].to_numpy()) @ title_factors.T
            + base[np.newaxis, :]
            + device_kind[block["preferred_device_idx"].to_numpy()][:, kind_idx]
            + hour_genre[hour_group] @ genre_vec.T
        )
        chance = exposure.of(block["region"].to_numpy(), block["top_genres"].to_numpy())[:, keep]
        with np.errstate(divide="ignore"):
            score = np.log(chance) + utility
        in_block = (seen_rows >= lo) & (seen_rows < lo + len(block))
        score[seen_rows[in_block] - lo, seen_cols[in_block]] = -np.inf
        frames.append(top_k_rows(score, user_ids[lo : lo + len(block)], item_ids, k))
    return pd.concat(frames, ignore_index=True)


class _Exposure:
    """Each title's expected number of appearances among a profile's candidates per
    session over the label days, by region and favourite genres."""

    def __init__(
        self,
        titles: pd.DataFrame,
        regions: pd.DataFrame,
        *,
        start: dt.date,
        first_day: dt.date,
        last_day: dt.date,
    ):
        n_titles, n_regions = len(titles), len(REGION_CODES)
        region_pos = {code: r for r, code in enumerate(REGION_CODES)}
        grid = regions.assign(r=regions["region"].map(region_pos)).sort_values(["title_idx", "r"])
        available = grid["available"].to_numpy(bool).reshape(n_titles, n_regions)
        weight = grid["popularity_multiplier"].to_numpy().reshape(n_titles, n_regions)
        days = np.arange((first_day - start).days, (last_day - start).days + 1)
        share = daily_popularity(titles, weight * available, start, int(days.max()) + 1)
        share = share / share.sum(axis=2, keepdims=True)  # each draw picks one title
        # [region, title]: the popularity draws' expected picks over the label days
        self.popular = POPULARITY_DRAWS * share[:, days, :].sum(axis=1)
        released = titles["release_day"].to_numpy()[np.newaxis, :] <= days[:, np.newaxis]
        # [region, title]: label days on which the title can be a valid candidate there
        self.valid_days = available.T * released.sum(axis=0)[np.newaxis, :]
        has_genre = np.array(
            [[genre in set(gs) for genre in GENRES] for gs in titles["genres"]], dtype=float
        )
        # [genre, title]: the genre draw picks a title of that genre uniformly
        self.genre_pick = (has_genre / np.maximum(has_genre.sum(axis=0), 1)).T
        self.region_pos = region_pos

    def of(self, regions: np.ndarray, top_genres: np.ndarray) -> np.ndarray:
        """[profile, title] expected candidate appearances over the label days."""
        rows = np.array([self.region_pos[r] for r in regions])
        favourite = np.zeros((len(rows), len(GENRES)))
        for i, genres in enumerate(top_genres):
            favourite[i, list(genres)[:FAVOURITE_GENRES]] = 1.0 / FAVOURITE_GENRES
        return self.popular[rows] + (favourite @ self.genre_pick) * self.valid_days[rows]

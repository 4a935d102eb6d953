"""The hidden truth of artwork, per impression: how likely its title was to be played
under each of its variants (`artwork.play_probabilities`), and what follows from it: a
policy's true play rate and the oracle's, which the artwork evaluation is checked against.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.synthetic import load_manifest
from feature_store.synthetic.artwork import MAX_VARIANTS, play_probabilities
from feature_store.synthetic.choice import CANDIDATES

# One row per impression (a valid candidate); the arrays follow the title's variants
TRUTH_SCHEMA = (
    "session_id string, title_id string, artwork_id string, day int, segment int, "
    "artwork_ids array<string>, play_probability array<double>"
)
_PER_CANDIDATE = ("valid", "title_id", "artwork_id", "artwork_style", "utility")


def impression_truth(
    spark: SparkSession, lake_root: str, first_day: dt.date, last_day: dt.date
) -> DataFrame:
    """The impressions of sessions whose local day is from ``first_day`` to ``last_day``
    (`TRUTH_SCHEMA`); they join bronze impressions on (session_id, title_id)."""
    lake = lk.Lake(lake_root)
    manifest = load_manifest(spark, lake_root)
    start = dt.date.fromisoformat(manifest["spec"]["start_date"])
    titles = (
        lk.read_table(spark, f"{lake.ground_truth}/titles")
        .select("title_id", "artwork_ids", "artwork_styles")
        .toPandas()
    )
    columns = ["session_id", "day", "segment"]
    columns += [f"{c}_{i}" for i in range(CANDIDATES) for c in _PER_CANDIDATE]
    sessions = (
        lk.read_table(spark, f"{lake.ground_truth}/sessions")
        .filter(F.col("day").between((first_day - start).days, (last_day - start).days))
        .select(*columns)
    )
    world = manifest["world"]
    scorer = _TruthScorer.of(titles, world["artwork_appeal"], world["outside_utility"])
    return sessions.mapInPandas(scorer, TRUTH_SCHEMA)


@dataclasses.dataclass
class _TruthScorer:
    title_index: pd.Index
    artwork_ids: list[list[str]]
    styles: np.ndarray  # [title, MAX_VARIANTS], -1 past its variants
    appeal: np.ndarray  # [segment, style]
    outside_utility: float

    @classmethod
    def of(cls, titles: pd.DataFrame, appeal, outside_utility: float) -> _TruthScorer:
        styles = np.full((len(titles), MAX_VARIANTS), -1, dtype=np.int64)
        for row, title_styles in enumerate(titles["artwork_styles"]):
            styles[row, : len(title_styles)] = title_styles
        return cls(
            pd.Index(titles["title_id"]),
            [list(ids) for ids in titles["artwork_ids"]],
            styles,
            np.asarray(appeal, dtype=np.float64),
            float(outside_utility),
        )

    def __call__(self, frames):
        for frame in frames:
            yield self.score(frame)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        segment = frame["segment"].to_numpy(np.int64)

        def stacked(name, fill, dtype):
            return np.stack(
                [frame[f"{name}_{i}"].fillna(fill).to_numpy(dtype) for i in range(CANDIDATES)], 1
            )

        valid = stacked("valid", False, bool)
        title = np.stack(
            [self.title_index.get_indexer(frame[f"title_id_{i}"]) for i in range(CANDIDATES)], 1
        )
        title = np.where(valid, title, 0)
        shown = self.appeal[segment[:, None], stacked("artwork_style", 0, np.int64)]
        variant_styles = self.styles[title]  # [session, candidate, variant]
        variant_appeal = np.where(
            variant_styles >= 0,
            self.appeal[segment[:, None, None], np.maximum(variant_styles, 0)],
            -np.inf,
        )
        p = play_probabilities(
            stacked("utility", 0.0, np.float64), shown, variant_appeal, valid, self.outside_utility
        )
        row, candidate = np.nonzero(valid)
        counts = (variant_styles[row, candidate] >= 0).sum(axis=1)
        return pd.DataFrame(
            {
                "session_id": frame["session_id"].to_numpy()[row],
                "title_id": self.title_index.to_numpy()[title[row, candidate]],
                "artwork_id": [
                    frame[f"artwork_id_{c}"].iat[r] for r, c in zip(row, candidate, strict=True)
                ],
                "day": frame["day"].to_numpy(np.int32)[row],
                "segment": segment[row].astype(np.int32),
                "artwork_ids": [self.artwork_ids[t] for t in title[row, candidate]],
                "play_probability": [
                    p[r, c, :k].tolist() for r, c, k in zip(row, candidate, counts, strict=True)
                ],
            }
        )


def artwork_ceiling(spark: SparkSession, config: Config) -> Callable | None:
    """``(policies, titles, rows, first_day, last_day) -> {policy: true play rate, ...,
    "oracle": ..}`` on evaluation rows (`artwork.steps.evaluation_rows`),
    or None when the lake has no ground truth."""
    if not lk.table_exists(spark, f"{lk.Lake(config.lake).ground_truth}/sessions"):
        return None

    def ceiling(policies, titles, rows, first_day: dt.date, last_day: dt.date) -> dict:
        # Sessions start on the local day; their impressions' UTC dates can differ by one.
        margin = dt.timedelta(days=1)
        truth = impression_truth(spark, config.lake, first_day - margin, last_day + margin)
        truth = truth.select(
            F.xxhash64("session_id").alias("cluster"), "title_id", "play_probability"
        ).toPandas()
        matched = rows.merge(truth, on=["cluster", "title_id"], how="inner", validate="1:1")
        if len(matched) < len(rows):
            raise ValueError(f"{len(rows) - len(matched)} evaluation rows have no hidden truth")
        return true_play_rates(policies, titles, matched)

    return ceiling


def true_play_rates(policies: dict, titles, matched: pd.DataFrame) -> dict[str, float]:
    """Each policy's expected play rate on the matched rows' contexts, and the oracle's
    (the best variant each time)."""
    from feature_store.artwork import data

    p = np.zeros((len(matched), MAX_VARIANTS))
    for row, values in enumerate(matched["play_probability"]):
        p[row, : len(values)] = values
    candidates = data.candidates(matched, titles)
    out = {
        name: float((policy.probabilities(candidates) * p).sum(axis=1).mean())
        for name, policy in policies.items()
    }
    out["oracle"] = float(p.max(axis=1).mean())
    return out

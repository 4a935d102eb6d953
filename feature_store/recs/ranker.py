"""The learned ranker: Spark MLlib gradient-boosted trees over the ensemble's candidates.

Rows are (session, candidate title) pairs: the components' and the blend's scores and
ranks, the title, the profile's genre affinity and recency, and the session's device and
local hour. The label is 1 when the session's profile started that title in that session;
the ranker learns on sessions *after* the data its candidates came from. Spark fits the
trees; scoring reads them into NumPy (:class:`TreeEnsemble`), so serving needs no Spark.
The features: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from feature_store.recs.diversity import GenreSpace
from feature_store.recs.ensemble import Blend
from feature_store.recs.models.base import ITEM, RANK, SCORE, USER, sample_groups, top_k_indices
from feature_store.sources import DAYPARTS, DEVICES, GENRES, KINDS

if TYPE_CHECKING:
    from pyspark.ml.classification import GBTClassificationModel

log = logging.getLogger(__name__)

SESSION = "session_id"
CONTEXT_COLUMNS = (SESSION, USER, "device", "local_hour")
LABEL = "label"
NEGATIVES_PER_POSITIVE = 20  # negatives kept per positive when training (sampled)
# Sessions the ranker learns from and is judged on at most: each brings 100 candidate
# rows of ~30 columns; at 100k accounts all 95k sessions of its window ran a 24 GB machine
# out of memory, and 2M accounts have twenty times as many.
MAX_SESSIONS = 50_000


@dataclasses.dataclass
class RankerContext:
    """What feature building needs beyond the models, kept with the serving model."""

    titles: pd.DataFrame  # item_id, kind_*, genre_*, days_since_release (as of training)
    popularity: pd.Series  # item_id -> share of training interactions
    last_watch_days: pd.Series  # user_id -> days since the last interaction
    space: GenreSpace

    @classmethod
    def build(
        cls, items: pd.DataFrame, interactions: pd.DataFrame, as_of: dt.date
    ) -> RankerContext:
        """The context as of the end of `as_of`, from the catalogue and training rows."""
        as_of = pd.Timestamp(as_of)
        popularity = interactions.groupby(ITEM).size() / len(interactions)
        end_of_day = (as_of + pd.Timedelta(days=1)).timestamp()
        last = interactions.groupby(USER)["timestamp"].max()
        return cls(
            titles=_title_features(items, as_of),
            popularity=popularity,
            last_watch_days=((end_of_day - last) / 86_400.0).clip(lower=0),
            space=GenreSpace(items),
        )


def feature_names(components: list[str]) -> list[str]:
    """The ranker's input columns, in order, for an ensemble of `components`."""
    names = [f"{c}_{m}" for c in [*components, "blend"] for m in ("score", "rank")]
    names += ["popularity", "days_since_release", "genre_affinity", "days_since_last_watch"]
    names += [f"kind_{k}" for k in KINDS] + [f"genre_{g}" for g in GENRES]
    names += [f"device_{d}" for d in DEVICES] + [f"daypart_{p}" for p in DAYPARTS]
    return [*names, "local_hour"]


def candidate_rows(blend: Blend, users: Iterable, n: int) -> pd.DataFrame:
    """The blend's top n unseen titles per user, best first, with every component's score
    and its rank among those n (1 = the component's favourite; ties in the blend's
    order), one row per (user, title). Ranks among the candidates, not the catalogue:
    ranking every title for every component took six sorts of the catalogue per user."""
    ids, idx = blend.data.user_index(users)
    frames = []
    rows_per_block = blend.block_rows()
    for start in range(0, len(idx), rows_per_block):
        block = idx[start : start + rows_per_block]
        parts = blend.component_scores(block)
        weighted = {name: part.copy() for name, part in parts.items() if blend.weights[name]}
        total = blend.combine(weighted, block)  # combine overwrites what it is given
        total[blend.data.seen[block].nonzero()] = -np.inf
        best = top_k_indices(total, n)
        unseen = np.isfinite(np.take_along_axis(total, best, axis=1))
        frame = {
            USER: np.repeat(ids[start : start + len(block)], best.shape[1])[unseen.ravel()],
            ITEM: blend.data.item_ids[best[unseen]],
        }
        for name, scores in [*parts.items(), ("blend", total)]:
            picked = np.where(unseen, np.take_along_axis(scores, best, axis=1), -np.inf)
            frame[f"{name}_score"] = np.nan_to_num(picked[unseen], neginf=0.0)
            frame[f"{name}_rank"] = _ranks(picked)[unseen]
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[np.newaxis, :], axis=1)
    return ranks.astype(np.float64)


def with_features(
    candidates: pd.DataFrame,
    sessions: pd.DataFrame,
    context: RankerContext,
    history: pd.DataFrame,
) -> pd.DataFrame:
    """Candidates x the sessions of their profile, with title, profile and context
    features. ``history``: the (user_id, item_id) interactions of those profiles."""
    rows = sessions[list(CONTEXT_COLUMNS)].merge(candidates, on=USER, how="inner")
    rows = rows.merge(context.titles, on=ITEM, how="left")
    # A title watched but missing from the catalogue has no kind, genres or release
    # date: no one-hot set, and a days-since-release below any real one (-1).
    title_columns = [c for c in context.titles.columns if c != ITEM]
    rows[title_columns] = rows[title_columns].fillna(0.0)
    rows["days_since_release"] = rows["days_since_release"].where(
        rows[ITEM].isin(context.titles[ITEM]), -1.0
    )
    rows["popularity"] = context.popularity.reindex(rows[ITEM]).fillna(0.0).to_numpy()
    # genre affinity: the profile's genre distribution summed over the title's genres
    space = context.space
    profiles = space.user_profiles(history) if len(history) else pd.DataFrame()
    user_dist = profiles.reindex(rows[USER]).fillna(0.0).to_numpy()
    title_rows = space.rows_of(rows[ITEM].to_numpy())
    has_genre = np.zeros((len(rows), len(space.genres)))
    known = title_rows >= 0
    has_genre[known] = (space.matrix[title_rows[known]].toarray() > 0)[:, : len(space.genres)]
    if user_dist.shape[1] == has_genre.shape[1]:
        rows["genre_affinity"] = (user_dist * has_genre).sum(axis=1)
    else:  # no history at all among these rows
        rows["genre_affinity"] = 0.0
    rows["days_since_last_watch"] = (
        context.last_watch_days.reindex(rows[USER]).fillna(999.0).to_numpy()
    )
    for device in DEVICES:
        rows[f"device_{device}"] = (rows["device"] == device).astype(float)
    hour = rows["local_hour"].astype(float)
    for part, (low, high) in DAYPARTS.items():
        rows[f"daypart_{part}"] = hour.between(low, high).astype(float)
    rows["local_hour"] = hour
    return rows


def _title_features(items: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per title: kind and genres one-hot, days since release."""
    out = pd.DataFrame({ITEM: items[ITEM].to_numpy()})
    for kind in KINDS:
        out[f"kind_{kind}"] = (items["kind"] == kind).astype(float).to_numpy()
    genres = items["genres"].apply(set)
    for genre in GENRES:
        out[f"genre_{genre}"] = genres.apply(lambda gs, g=genre: float(g in gs)).to_numpy()
    released = pd.to_datetime(items["release_date"])
    out["days_since_release"] = (as_of - released).dt.days.clip(lower=0).to_numpy(float)
    return out


def sample_sessions(sessions: pd.DataFrame, n: int = MAX_SESSIONS) -> pd.DataFrame:
    """The rows of at most ``n`` sessions (all their titles), drawn with a fixed seed."""
    return sample_groups(sessions, SESSION, n)


def sample_training_rows(rows: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """All positives, and at most NEGATIVES_PER_POSITIVE negatives per positive."""
    positives = rows[rows[LABEL] == 1]
    negatives = rows[rows[LABEL] == 0]
    wanted = min(len(negatives), max(1, len(positives)) * NEGATIVES_PER_POSITIVE)
    negatives = negatives.sample(n=wanted, random_state=seed)
    return pd.concat([positives, negatives], ignore_index=True)


# ------------------------------------------------------------------------ the trees


@dataclasses.dataclass
class TreeEnsemble:
    """Boosted regression trees as arrays: margin = sum of weight x leaf value."""

    features: list[str]
    trees: list[dict[str, np.ndarray]]  # feature, threshold, left, right, value per node
    weights: np.ndarray

    def margin(self, x: np.ndarray) -> np.ndarray:
        """The ensemble's margin for each row of feature matrix `x` (columns as `features`)."""
        total = np.zeros(len(x))
        for tree, weight in zip(self.trees, self.weights, strict=True):
            node = np.zeros(len(x), dtype=np.int64)
            while True:
                feature = tree["feature"][node]
                inner = feature >= 0
                if not inner.any():
                    break
                rows = np.flatnonzero(inner)
                go_left = x[rows, feature[rows]] <= tree["threshold"][node[rows]]
                node[rows] = np.where(go_left, tree["left"][node[rows]], tree["right"][node[rows]])
            total += weight * tree["value"][node]
        return total

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """The margin of each row of `rows`, read in the order of `features`."""
        return self.margin(rows[self.features].to_numpy(dtype=np.float64))


_SPLIT = re.compile(r"^\s*If \(feature (\d+) <= ([-0-9.eE+]+)\)")
_ELSE = re.compile(r"^\s*Else \(feature (\d+) > ([-0-9.eE+]+)\)")
_LEAF = re.compile(r"^\s*Predict: ([-0-9.eE+]+)")


def _parse_tree(lines: list[str]) -> dict[str, np.ndarray]:
    """One tree of MLlib's ``toDebugString`` (continuous splits only) as node arrays."""
    feature, threshold, left, right, value = [], [], [], [], []

    def new_node() -> int:
        for column, default in ((feature, -1), (threshold, 0.0), (left, -1), (right, -1)):
            column.append(default)
        value.append(0.0)
        return len(value) - 1

    position = 0

    def parse() -> int:
        nonlocal position
        line = lines[position]
        node = new_node()
        leaf = _LEAF.match(line)
        if leaf:
            value[node] = float(leaf.group(1))
            position += 1
            return node
        split = _SPLIT.match(line)
        if not split:
            raise ValueError(f"unexpected tree line: {line.strip()!r}")
        feature[node], threshold[node] = int(split.group(1)), float(split.group(2))
        position += 1
        left[node] = parse()
        if not _ELSE.match(lines[position]):
            raise ValueError(f"expected Else, found {lines[position].strip()!r}")
        position += 1
        right[node] = parse()
        return node

    parse()
    return {
        "feature": np.array(feature, dtype=np.int64),
        "threshold": np.array(threshold, dtype=np.float64),
        "left": np.array(left, dtype=np.int64),
        "right": np.array(right, dtype=np.int64),
        "value": np.array(value, dtype=np.float64),
    }


def trees_from_spark(model: GBTClassificationModel, features: list[str]) -> TreeEnsemble:
    """Read a fitted ``GBTClassificationModel`` into a :class:`TreeEnsemble`."""
    text = model.toDebugString.splitlines()
    starts = [i for i, line in enumerate(text) if line.strip().startswith("Tree ")]
    trees = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(text)
        trees.append(_parse_tree([line for line in text[start + 1 : end] if line.strip()]))
    return TreeEnsemble(features, trees, np.asarray(model.treeWeights, dtype=np.float64))


@dataclasses.dataclass
class Ranker:
    trees: TreeEnsemble
    components: list[str]
    params: dict
    training_rows: int
    positives: int

    def rank(self, rows: pd.DataFrame, group: str, k: int) -> pd.DataFrame:
        """Top k (group, item_id, score, rank) per ``group`` value by the trees' margin."""
        scored = rows[[group, ITEM]].assign(**{SCORE: self.trees.score(rows)})
        scored = scored.sort_values([group, SCORE], ascending=[True, False], kind="stable")
        scored[RANK] = scored.groupby(group).cumcount() + 1
        return scored[scored[RANK] <= k].reset_index(drop=True)


def fit_ranker(
    spark: SparkSession,
    rows: pd.DataFrame,
    components: list[str],
    *,
    max_iter: int = 40,
    max_depth: int = 5,
    step_size: float = 0.1,
    seed: int = 42,
) -> tuple[Ranker, GBTClassificationModel]:
    """Fit MLlib GBTs on the labelled rows; returns the NumPy :class:`Ranker` and the
    Spark model it was read from."""
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.feature import VectorAssembler

    names = feature_names(components)
    if rows[LABEL].nunique() < 2:
        raise ValueError("the ranker needs both watched and unwatched candidates to learn from")
    frame = spark.createDataFrame(rows[[*names, LABEL]].astype(np.float64))
    assembled = VectorAssembler(inputCols=names, outputCol="features").transform(frame)
    params = {"maxIter": max_iter, "maxDepth": max_depth, "stepSize": step_size, "seed": seed}
    model = GBTClassifier(labelCol=LABEL, featuresCol="features", **params).fit(assembled)
    log.info("ranker: %d trees on %d rows (%d watched)", max_iter, len(rows), rows[LABEL].sum())
    ranker = Ranker(
        trees_from_spark(model, names),
        components,
        params,
        training_rows=len(rows),
        positives=int(rows[LABEL].sum()),
    )
    return ranker, model

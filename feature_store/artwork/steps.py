"""The artwork run's steps: train every policy on a window of logged impressions, estimate
each one's play rate on the days after (off-policy, from what the logging policy showed),
and write the served policy's probabilities for every title and context to Delta.

The window ends ``holdout_days`` before ``as_of``; the held-out days judge the policies.
The policy served is the learnt one with the highest doubly robust lower bound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.artwork import contextual, data
from feature_store.artwork.ope import (
    ESTIMATORS,
    Estimate,
    LoggedTerms,
    estimate_all,
    gain_over_logging,
)
from feature_store.artwork.policies import (
    MAX_VARIANTS,
    SEGMENT_COUNT,
    Candidates,
    Counts,
    Policy,
    epsilon_greedy,
    most_popular,
    thompson,
    uniform_policy,
)
from feature_store.config import Config
from feature_store.evaluation import LABEL
from feature_store.features.definitions import AS_OF, UNKNOWN_SEGMENT
from feature_store.features.retrieval import FeatureStoreReader
from feature_store.sources import ARTWORK_STYLES, DAYPARTS, DEVICES, SEGMENTS

log = logging.getLogger(__name__)
BASELINES = ("uniform", "most_popular")
POLICY_TABLE = "artwork_policy"


class ArtworkDataError(ValueError):
    """The lake holds too few usable impressions to train or judge the policies."""


@dataclasses.dataclass(frozen=True)
class ArtworkSettings:
    train_days: int = 14
    holdout_days: int = 2
    explore: float = 0.1  # every variant keeps explore / (its title's variants) of traffic
    epsilon: float = 0.1
    prior_strength: float = 20.0
    draws: int = 256
    seed: int = 0
    level: float = 0.95


@dataclasses.dataclass
class ArtworkRun:
    as_of: dt.date
    train_window: tuple[dt.date, dt.date]
    holdout_window: tuple[dt.date, dt.date]
    settings: ArtworkSettings
    policies: dict[str, Policy]
    estimates: dict[str, dict[str, Estimate]]  # policy -> estimator -> estimate
    logged_play_rate: float
    train_impressions: int
    holdout_impressions: int
    model: contextual.LinearModel
    titles: pd.Index  # what the title-table policies index
    evaluation_rows: pd.DataFrame
    lineage: dict[str, int]  # Delta versions read
    model_version: str | None = None
    truth: dict[str, float] | None = None  # true play rates, where the data is generated

    @property
    def chosen(self) -> str:
        """The learnt policy with the highest doubly robust lower bound."""
        learnt = [name for name in self.policies if name not in BASELINES]
        return max(learnt, key=lambda name: self.estimates[name]["dr"].low)

    def format_table(self) -> str:
        """Each policy's estimates with their intervals (and true rates where known)."""
        header = f"{'policy':<16}" + "".join(f"{e:>24}" for e in ESTIMATORS)
        header += f"{'true':>9}" if self.truth else ""
        lines = [
            f"artwork as of {self.as_of}: trained on {self.train_impressions:,} impressions "
            f"({self.train_window[0]}..{self.train_window[1]}), judged on "
            f"{self.holdout_impressions:,} ({self.holdout_window[0]}..{self.holdout_window[1]}; "
            f"logged play rate {self.logged_play_rate:.4f})",
            header,
            "-" * len(header),
        ]
        for name, estimates in self.estimates.items():
            cells = "".join(
                f"{f'{e.value:.4f} [{e.low:.4f}, {e.high:.4f}]':>24}" for e in estimates.values()
            )
            true = f"{self.truth[name]:>9.4f}" if self.truth else ""
            lines.append(f"{name:<16}{cells}{true}")
        if self.truth and "oracle" in self.truth:
            lines.append(f"{'oracle':<16}{'':>{24 * len(ESTIMATORS)}}{self.truth['oracle']:>9.4f}")
        gain = self.gain_over_logging
        lines.append(
            f"served: {self.chosen}, play rate {gain.value:+.4f} "
            f"[{gain.low:+.4f}, {gain.high:+.4f}] against the logging policy (doubly robust), "
            f"model version "
            f"{self.model_version or 'not registered'}"
        )
        return "\n".join(lines)

    @property
    def settings_dict(self) -> dict:
        return dataclasses.asdict(self.settings)

    @property
    def gain_over_logging(self) -> Estimate:
        """The served policy's play rate minus the logging policy's (doubly robust)."""
        terms = logged_terms(
            self.policies[self.chosen], self.titles, self.evaluation_rows, self.settings.seed
        )
        return gain_over_logging(terms, self.settings.level)


def windows(as_of: dt.date, s: ArtworkSettings) -> tuple[tuple, tuple]:
    holdout_first = as_of - dt.timedelta(days=s.holdout_days - 1)
    train_last = holdout_first - dt.timedelta(days=1)
    train_first = train_last - dt.timedelta(days=s.train_days - 1)
    return (train_first, train_last), (holdout_first, as_of)


def train_and_evaluate(
    reader: FeatureStoreReader, as_of: dt.date, settings: ArtworkSettings = ArtworkSettings()
) -> ArtworkRun:
    (t0, t1), (h0, h1) = windows(as_of, settings)
    train = data.usable(data.logged_impressions(reader, t0, t1)).cache()
    titles = pd.Index(sorted(r[0] for r in train.select("title_id").distinct().collect()))
    counts = data.counts(train, titles)
    model = contextual.fit(data.context_counts(train))
    train.unpersist()
    if not counts.impressions.sum():
        raise ArtworkDataError(f"no usable impressions from {t0} to {t1} to train the policies on")
    policies = fit_policies(counts, model, settings)
    held = data.collect(data.logged_impressions(reader, h0, h1))
    if held.empty:
        raise ArtworkDataError(f"no usable impressions from {h0} to {h1} to judge the policies on")
    log.info("artwork: %d training impressions, %d held out", counts.impressions.sum(), len(held))
    rows = evaluation_rows(held, reward_model(counts, data.candidates(held, titles)))
    estimates = {name: judge(policy, titles, rows, settings) for name, policy in policies.items()}
    return ArtworkRun(
        as_of=as_of,
        train_window=(t0, t1),
        holdout_window=(h0, h1),
        settings=settings,
        policies=policies,
        estimates=estimates,
        logged_play_rate=float(held["clicked"].mean()),
        train_impressions=int(counts.impressions.sum()),
        holdout_impressions=len(held),
        model=model,
        titles=titles,
        evaluation_rows=rows,
        lineage=dict(reader.versions),
    )


POLICIES = ("uniform", "most_popular", "epsilon_greedy", "thompson", "contextual")


def fit_policies(
    counts: Counts, model: contextual.LinearModel, s: ArtworkSettings
) -> dict[str, Policy]:
    return {name: fit_policy(name, counts, model, s) for name in POLICIES}


def fit_policy(
    name: str, counts: Counts, model: contextual.LinearModel | None, s: ArtworkSettings
) -> Policy:
    """One of `POLICIES`; ``model`` is read by the contextual one only."""
    if name == "uniform":
        return uniform_policy(counts)
    if name == "most_popular":
        return most_popular(counts, s.explore, s.prior_strength)
    if name == "epsilon_greedy":
        return epsilon_greedy(counts, s.epsilon, s.prior_strength)
    if name == "thompson":
        return thompson(counts, s.explore, s.prior_strength, s.draws, s.seed)
    if name == "contextual" and model is not None:
        return contextual.thompson_table(model, s.explore, 2 * s.draws, s.seed)
    raise ValueError(f"unknown artwork policy {name!r} (known: {', '.join(POLICIES)})")


def reward_model(counts: Counts, candidates: Candidates) -> np.ndarray:
    """q(x, a) for doubly robust: the training play rate of the title x segment x
    variant, shrunk toward its title's; the overall rate for a title not trained on.
    [impressions, MAX_VARIANTS]."""
    rates = counts.rates(prior_strength=50.0)
    overall = counts.plays.sum() / max(counts.impressions.sum(), 1)
    known = candidates.title >= 0
    q = rates[np.where(known, candidates.title, 0), candidates.segment]
    return np.where(known[:, None] & candidates.mask, q, overall * candidates.mask)


def evaluation_rows(held: pd.DataFrame, q: np.ndarray) -> pd.DataFrame:
    """The held-out impressions (`data.collect`) with the reward model's q_0.. per
    variant and the play as ``label``: everything needed to judge any policy on them."""
    rows = held.rename(columns={"clicked": LABEL})
    return rows.assign(**{f"q_{k}": q[:, k] for k in range(MAX_VARIANTS)})


def judge(
    policy: Policy, titles: pd.Index, rows: pd.DataFrame, settings: ArtworkSettings
) -> dict[str, Estimate]:
    """Every estimator's play rate for ``policy`` on evaluation rows."""
    return estimate_all(logged_terms(policy, titles, rows, settings.seed), settings.level)


def logged_terms(policy: Policy, titles: pd.Index, rows: pd.DataFrame, seed: int) -> LoggedTerms:
    """What the estimators need to judge ``policy`` on evaluation rows."""
    p = policy.probabilities(data.candidates(rows, titles))
    q = rows[[f"q_{k}" for k in range(MAX_VARIANTS)]].to_numpy(np.float64)
    at = np.arange(len(rows)), rows["variant"].to_numpy(np.int64)
    return LoggedTerms(
        cluster=rows["cluster"].to_numpy(),
        propensity=rows["propensity"].to_numpy(np.float64),
        reward=rows[LABEL].to_numpy(np.float64),
        target=p[at],
        q_logged=q[at],
        q_target=(p * q).sum(axis=1),
        accept_draw=np.random.default_rng(seed).random(len(rows)),
    )


def write_policy_table(
    spark: SparkSession, config: Config, run: ArtworkRun, model_version: str | None
) -> int:
    """The served policy's probability of every variant of every title in the catalogue,
    per segment, device and part of the day, as of ``run.as_of``, to
    `<lake>/predictions/artwork_policy` (a re-run replaces the date); returns the rows."""
    reader = FeatureStoreReader(spark, config.lake, error=ArtworkDataError)
    catalogue = reader.dimension("title_catalogue", as_of=run.as_of).select("title_id", "artwork")
    titles = catalogue.toPandas()
    titles = titles[titles["artwork"].map(len).between(1, MAX_VARIANTS)]
    table = policy_table(run.policies[run.chosen], run.titles, titles)
    frame = spark.createDataFrame(table).select(
        "*",
        F.lit(run.as_of).alias(AS_OF),
        F.lit(model_version).cast("string").alias("model_version"),
    )
    lk.replace_slice(
        frame,
        lk.Lake(config.lake).predictions(POLICY_TABLE),
        slice_values={AS_OF: run.as_of},
        partition_by=[AS_OF],
    )
    run.model_version = model_version
    return len(table)


def policy_table(policy: Policy, trained: pd.Index, titles: pd.DataFrame) -> pd.DataFrame:
    """Rows of title_id, segment, device, daypart, artwork_id, style and probability for
    ``titles`` (title_id, artwork: [{artwork_id, style}]) in every context."""
    contexts = np.array(
        list(itertools.product(range(SEGMENT_COUNT), range(len(DEVICES)), range(len(DAYPARTS))))
    )
    n_titles, n_contexts = len(titles), len(contexts)
    styles = np.full((n_titles, MAX_VARIANTS), -1, dtype=np.int64)
    for row, artwork in enumerate(titles["artwork"]):
        styles[row, : len(artwork)] = [ARTWORK_STYLES.index(a["style"]) for a in artwork]
    title = np.repeat(np.arange(n_titles), n_contexts)
    context = np.tile(np.arange(n_contexts), n_titles)
    candidates = Candidates(
        title=trained.get_indexer(titles["title_id"].to_numpy()[title]),
        styles=styles[title],
        segment=contexts[context, 0],
        device=contexts[context, 1],
        daypart=contexts[context, 2],
    )
    p = policy.probabilities(candidates)
    row, slot = np.nonzero(candidates.mask)
    ids = [[a["artwork_id"] for a in artwork] for artwork in titles["artwork"]]
    segment_names = [*SEGMENTS, UNKNOWN_SEGMENT]
    return pd.DataFrame(
        {
            "title_id": titles["title_id"].to_numpy()[title[row]],
            "segment": np.array(segment_names)[candidates.segment[row]],
            "device": np.array(DEVICES)[candidates.device[row]],
            "daypart": np.array(list(DAYPARTS))[candidates.daypart[row]],
            "artwork_id": [ids[t][k] for t, k in zip(title[row], slot, strict=True)],
            "style": np.array(ARTWORK_STYLES)[candidates.styles[row, slot]],
            "probability": p[row, slot],
        }
    )

"""Forward simulation: each artwork policy serving the days after its training, day by day,
learning from its own log, scored against the hidden truth.

Every day, each learning policy is refitted on the logged history plus what it showed on
the days before, then serves that day's impressions: it draws a variant per impression,
the member plays it with the hidden probability (`artwork_truth`), and the day's log is
added to that policy's own. Its expected plays (sum over variants of its probability times
the true play probability) and the oracle's (the best variant each time) give the regret.
The other titles of a session are held as the logging policy showed them: the contextual
bandit's view, where each impression is one decision.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from feature_store.artwork import contextual
from feature_store.artwork.policies import Candidates, Counts
from feature_store.artwork.steps import POLICIES, ArtworkSettings, fit_policy


@dataclasses.dataclass(frozen=True)
class Day:
    """One served day: its impressions' candidates (titles indexed as in the counts, -1
    for new ones), each impression's title as a key of its own (new titles included) and
    the true play probabilities."""

    candidates: Candidates
    title_key: np.ndarray  # [impressions] int64
    play_probability: np.ndarray  # [impressions, MAX_VARIANTS]


@dataclasses.dataclass
class Trajectory:
    """Per policy and day: expected plays, the oracle's, and impressions."""

    expected: dict[str, list[float]]
    oracle: list[float]
    impressions: list[int]

    def regret(self, policy: str) -> np.ndarray:
        """Cumulative expected plays lost to the oracle, day by day."""
        return np.cumsum(np.array(self.oracle) - np.array(self.expected[policy]))

    def play_rate(self, policy: str) -> float:
        return float(np.sum(self.expected[policy]) / np.sum(self.impressions))

    @property
    def oracle_rate(self) -> float:
        return float(np.sum(self.oracle) / np.sum(self.impressions))


def simulate(
    counts: Counts,
    context_counts: contextual.ContextCounts,
    days: list[Day],
    settings: ArtworkSettings,
    seed: int = 0,
) -> Trajectory:
    """Every policy of `fit_policies` serving ``days`` in order from the same start."""
    rng = np.random.default_rng(seed)
    logs = {name: _Log(counts, context_counts) for name in POLICIES}
    trajectory = Trajectory({name: [] for name in logs}, [], [])
    for day in days:
        p = day.play_probability
        trajectory.oracle.append(float(p.max(axis=1).sum()))
        trajectory.impressions.append(len(p))
        for name, own in logs.items():
            policy = own.policy(name, settings)
            probabilities = policy.probabilities(day.candidates)
            trajectory.expected[name].append(float((probabilities * p).sum()))
            shown = _draw(rng, probabilities, day.candidates)
            played = rng.random(len(shown)) < p[np.arange(len(shown)), shown]
            own.add(day, shown, played)
    return trajectory


def _draw(rng, probabilities: np.ndarray, candidates: Candidates) -> np.ndarray:
    cdf = np.cumsum(probabilities, axis=1)
    u = rng.random(len(cdf))
    return np.minimum((u[:, None] >= cdf).sum(axis=1), candidates.count - 1)


@dataclasses.dataclass
class _Log:
    """One policy's training data: the logged history plus what it showed since."""

    counts: Counts
    context_counts: contextual.ContextCounts

    def __post_init__(self):
        c = self.counts
        self.counts = Counts(c.impressions.copy(), c.plays.copy(), c.styles)

    def policy(self, name: str, settings: ArtworkSettings):
        model = contextual.fit(self.context_counts) if name == "contextual" else None
        return fit_policy(name, self.counts, model, settings)

    def add(self, day: Day, shown: np.ndarray, played: np.ndarray) -> None:
        """The day's impressions of known titles into the tabular counts (by slot), all of
        them into the contextual cells (a group per title x context x day)."""
        candidates = day.candidates
        known = candidates.title >= 0
        at = (candidates.title[known], candidates.segment[known], shown[known])
        np.add.at(self.counts.impressions, at, 1)
        np.add.at(self.counts.plays, at, played[known])
        style = candidates.styles[np.arange(len(shown)), shown]
        cells, cell, _ = _cells(day.title_key, candidates.context, style)
        c = self.context_counts
        first_group = c.group.max(initial=-1) + 1
        self.context_counts = contextual.ContextCounts(
            group=np.concatenate([c.group, first_group + cells["group"]]),
            context=np.concatenate([c.context, cells["context"]]),
            style=np.concatenate([c.style, cells["style"]]),
            impressions=np.concatenate([c.impressions, np.bincount(cell).astype(np.float64)]),
            plays=np.concatenate([c.plays, np.bincount(cell, weights=played.astype(np.float64))]),
        )


def _cells(title_key: np.ndarray, context: np.ndarray, style: np.ndarray):
    """The day's (title x context, style) cells: their group, context and style, and each
    impression's cell."""
    _, group = np.unique(np.stack([title_key, context]), axis=1, return_inverse=True)
    key = np.stack([group.ravel(), context, style])
    unique, cell = np.unique(key, axis=1, return_inverse=True)
    cells = {"group": unique[0], "context": unique[1], "style": unique[2]}
    return cells, cell.ravel(), len(unique[0])

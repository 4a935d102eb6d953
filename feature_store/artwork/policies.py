"""Artwork policies: for each impression, a probability for every variant of its title.

Impressions come as `Candidates` (the title, its variants' styles, the viewer's context).
A policy answers with an [impressions, MAX_VARIANTS] matrix whose rows sum to one over the
title's variants; the probability served is the probability logged as the propensity.

- `TitleTable` policies hold a probability per title x segment x variant: uniform, most
  popular per title, epsilon-greedy and Beta-Bernoulli Thompson sampling per title x
  segment, trained from `Counts`. A title they have never seen is explored evenly.
- `StyleTable` policies hold a probability per context x set of styles x style: the
  contextual policy (linear Thompson sampling over context x style features), trained
  from `ContextCounts`. What it learns about a style carries across titles, so a new title
  is served well from its first day.

Every policy keeps exploring (`with_floor`), so tomorrow's log can evaluate any policy.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from feature_store.sources import ARTWORK_STYLES, DAYPARTS, DEVICES, SEGMENTS

MAX_VARIANTS = len(ARTWORK_STYLES)  # a title's variants have distinct styles
STYLES = len(ARTWORK_STYLES)
SEGMENT_COUNT = len(SEGMENTS) + 1  # the last is the unknown segment of new members
CONTEXTS = SEGMENT_COUNT * len(DEVICES) * len(DAYPARTS)
STYLE_SETS = 1 << STYLES  # a set of styles as a bit mask
_BLOCK = 200_000


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Impressions to decide for. ``title``: index in the policy's titles, -1 for a title it
    has never seen; ``styles``: [n, MAX_VARIANTS] style of each variant, -1 past the title's
    variants; ``segment`` (SEGMENT_COUNT - 1: unknown), ``device``, ``daypart``: indices."""

    title: np.ndarray
    styles: np.ndarray
    segment: np.ndarray
    device: np.ndarray
    daypart: np.ndarray

    def __len__(self) -> int:
        return len(self.title)

    def rows(self, which) -> Candidates:
        return Candidates(*(getattr(self, f.name)[which] for f in dataclasses.fields(self)))

    @property
    def mask(self) -> np.ndarray:
        return self.styles >= 0

    @property
    def count(self) -> np.ndarray:
        return self.mask.sum(axis=1)

    @property
    def context(self) -> np.ndarray:
        return context_index(self.segment, self.device, self.daypart)

    @property
    def style_set(self) -> np.ndarray:
        return style_set(self.styles)


def context_index(segment, device, daypart):
    return (segment * len(DEVICES) + device) * len(DAYPARTS) + daypart


def style_set(styles: np.ndarray) -> np.ndarray:
    """Each row's styles as a bit mask (-1 entries ignored)."""
    bits = np.where(styles >= 0, 1 << np.maximum(styles, 0), 0)
    return bits.sum(axis=-1)


class Policy(Protocol):
    name: str

    def probabilities(self, candidates: Candidates) -> np.ndarray: ...


def uniform(mask: np.ndarray) -> np.ndarray:
    return mask / mask.sum(axis=-1, keepdims=True)


def with_floor(probabilities: np.ndarray, mask: np.ndarray, explore: float) -> np.ndarray:
    """(1 - explore) of the policy plus explore spread evenly: every variant keeps at least
    explore / (its title's variant count)."""
    return (1 - explore) * probabilities + explore * uniform(mask)


@dataclasses.dataclass(frozen=True)
class TitleTable:
    """Probabilities per title x segment x variant slot, the slots' styles as trained.
    A request's variants are matched by style (a title's styles are distinct); a title it
    does not know, or whose variants changed, is explored evenly."""

    name: str
    probabilities_by_cell: np.ndarray  # [titles, SEGMENT_COUNT, MAX_VARIANTS]
    styles: np.ndarray  # [titles, MAX_VARIANTS], -1 past a title's variants

    def probabilities(self, candidates: Candidates) -> np.ndarray:
        # In blocks: the style match is [rows, variants, variants]
        blocks = [
            self._block(candidates.rows(slice(i, i + _BLOCK)))
            for i in range(0, len(candidates), _BLOCK)
        ]
        return np.concatenate(blocks) if blocks else np.zeros((0, MAX_VARIANTS))

    def _block(self, candidates: Candidates) -> np.ndarray:
        known = candidates.title >= 0
        title = np.where(known, candidates.title, 0)
        cell = self.probabilities_by_cell[title, candidates.segment]
        trained = self.styles[title]
        match = (candidates.styles[:, :, None] == trained[:, None, :]) & candidates.mask[..., None]
        same = (match.any(axis=2) == candidates.mask).all(axis=1) & (
            candidates.count == (trained >= 0).sum(axis=1)
        )
        matched = (match * cell[:, None, :]).sum(axis=2)
        return np.where((known & same)[:, None], matched, uniform(candidates.mask))


@dataclasses.dataclass(frozen=True)
class Counts:
    """Impressions and plays per title x segment x variant slot ([titles, SEGMENT_COUNT,
    MAX_VARIANTS]) and each title's variant styles ([titles, MAX_VARIANTS], -1 padded)."""

    impressions: np.ndarray
    plays: np.ndarray
    styles: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return np.broadcast_to(self.styles[:, None, :] >= 0, self.impressions.shape)

    def rates(self, prior_strength: float) -> np.ndarray:
        """Play rates per cell, shrunk toward the title x segment's rate, itself shrunk
        toward the title's, by ``prior_strength`` impressions each."""
        title = _ratio(self.plays.sum(axis=(1, 2)), self.impressions.sum(axis=(1, 2)))
        segment = (self.plays.sum(axis=2) + prior_strength * title[:, None]) / (
            self.impressions.sum(axis=2) + prior_strength
        )
        return (self.plays + prior_strength * segment[..., None]) / (
            self.impressions + prior_strength
        )

    def pooled(self) -> Counts:
        """Every segment's counts in each segment's place."""
        shape = self.impressions.shape

        def pool(x):
            return np.broadcast_to(x.sum(axis=1, keepdims=True), shape)

        return Counts(pool(self.impressions), pool(self.plays), self.styles)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)


def uniform_policy(counts: Counts) -> TitleTable:
    return TitleTable("uniform", uniform(counts.mask).copy(), counts.styles)


def most_popular(counts: Counts, explore: float, prior_strength: float = 50.0) -> TitleTable:
    """Per title, the variant with the highest play rate over all segments."""
    table = _greedy(counts.pooled(), explore, prior_strength, min_impressions=0)
    return TitleTable("most_popular", table, counts.styles)


def epsilon_greedy(
    counts: Counts, epsilon: float, prior_strength: float = 50.0, min_impressions: int = 30
) -> TitleTable:
    """Per title x segment, the variant with the highest (shrunk) play rate; epsilon of the
    traffic spread evenly. Variants with fewer than ``min_impressions`` in the cell (a new
    title or a new variant) share the greedy part with the best until they have them."""
    table = _greedy(counts, epsilon, prior_strength, min_impressions)
    return TitleTable("epsilon_greedy", table, counts.styles)


def _greedy(counts: Counts, explore: float, prior_strength: float, min_impressions: int):
    mask = counts.mask
    rates = np.where(mask, counts.rates(prior_strength), -np.inf)
    best = rates == rates.max(axis=-1, keepdims=True)
    first = np.cumsum(best, axis=-1) == 1  # one best: the first of ties
    unexplored = mask & (counts.impressions < min_impressions)
    chosen = (best & first) | unexplored
    return with_floor(uniform(chosen), mask, explore)


def thompson(
    counts: Counts,
    explore: float,
    prior_strength: float = 20.0,
    draws: int = 256,
    seed: int = 0,
) -> TitleTable:
    """Beta-Bernoulli Thompson sampling per title x segment: each variant's play rate has
    a Beta posterior (prior centred on the title x segment's rate, worth
    ``prior_strength`` impressions); a variant's probability is the share of ``draws``
    joint posterior draws in which it is best. The table is computed once, with a fixed
    seed, so that the probability served is the one logged."""
    prior = counts.rates(prior_strength).mean(axis=-1, where=counts.mask, keepdims=True)
    prior = np.clip(prior, 1e-4, 1 - 1e-4)  # a title never played still has a Beta prior
    alpha = counts.plays + prior_strength * prior
    beta = counts.impressions - counts.plays + prior_strength * (1 - prior)
    rng = np.random.default_rng(seed)
    shape = alpha.shape
    alpha, beta = alpha.reshape(-1, MAX_VARIANTS), beta.reshape(-1, MAX_VARIANTS)
    mask = counts.mask.reshape(-1, MAX_VARIANTS)
    wins = np.zeros(alpha.shape)
    for start in range(0, len(alpha), 4_096):
        rows = slice(start, start + 4_096)
        size = (len(wins[rows]), draws, MAX_VARIANTS)
        sample = rng.beta(alpha[rows, None, :], beta[rows, None, :], size)
        best = np.where(mask[rows, None, :], sample, -1.0).argmax(axis=-1)
        wins[rows] = (best[..., None] == np.arange(MAX_VARIANTS)).mean(axis=1)
    table = with_floor(wins, mask, explore).reshape(shape)
    return TitleTable("thompson", table, counts.styles)

"""Artwork policies on counts whose best variants are known."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.artwork import contextual
from feature_store.artwork.policies import (
    MAX_VARIANTS,
    SEGMENT_COUNT,
    STYLES,
    Candidates,
    Counts,
    context_index,
    epsilon_greedy,
    most_popular,
    thompson,
    uniform_policy,
)
from feature_store.sources import DAYPARTS, DEVICES

TITLES = 40
EXPLORE = 0.1


def title_styles(rng: np.random.Generator, titles: int) -> np.ndarray:
    """3-6 distinct styles per title, -1 padded."""
    styles = np.full((titles, MAX_VARIANTS), -1)
    for t in range(titles):
        k = rng.integers(3, MAX_VARIANTS + 1)
        styles[t, :k] = rng.permutation(STYLES)[:k]
    return styles


def appeal(rng: np.random.Generator) -> np.ndarray:
    """A play-rate multiplier per segment x style (the generator's hidden appeal)."""
    return np.exp(rng.normal(0, 0.4, (SEGMENT_COUNT, STYLES)))


def logged_counts(rng, styles, appeal_, per_cell: int) -> Counts:
    """Uniformly logged impressions: rate = title base x appeal of the variant's style."""
    base = rng.uniform(0.02, 0.2, TITLES)
    mask = styles >= 0
    rate = base[:, None, None] * appeal_[:, np.maximum(styles, 0)].transpose(1, 0, 2)
    impressions = np.where(np.broadcast_to(mask[:, None, :], rate.shape), per_cell, 0)
    plays = rng.binomial(impressions, np.clip(rate, 0, 1))
    return Counts(impressions, plays, styles)


def candidates_for(styles: np.ndarray, titles: np.ndarray, segment: np.ndarray) -> Candidates:
    n = len(titles)
    return Candidates(
        title=titles,
        styles=styles[np.maximum(titles, 0)],
        segment=segment,
        device=np.zeros(n, dtype=np.int64),
        daypart=np.zeros(n, dtype=np.int64),
    )


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(11)
    styles = title_styles(rng, TITLES)
    truth = appeal(rng)
    counts = logged_counts(rng, styles, truth, per_cell=20_000)
    titles = np.repeat(np.arange(TITLES), SEGMENT_COUNT)
    segments = np.tile(np.arange(SEGMENT_COUNT), TITLES)
    return styles, truth, counts, candidates_for(styles, titles, segments)


def context_counts(styles, truth, rng, per_cell: int) -> contextual.ContextCounts:
    """Uniformly logged impressions per title x context x variant."""
    base = rng.uniform(0.02, 0.2, TITLES)
    rows = []
    for t in range(TITLES):
        for segment in range(SEGMENT_COUNT):
            group = t * SEGMENT_COUNT + segment
            for s in styles[t][styles[t] >= 0]:
                rows.append((group, context_index(segment, 0, 0), s, base[t] * truth[segment, s]))
    group, context, style, rate = (np.array(c) for c in zip(*rows, strict=True))
    n = np.full(len(rate), per_cell)
    return contextual.ContextCounts(group, context, style, n, rng.binomial(n, np.clip(rate, 0, 1)))


def every_policy(world):
    styles, truth, counts, _ = world
    model = contextual.fit(context_counts(styles, truth, np.random.default_rng(5), 20_000))
    return [
        uniform_policy(counts),
        most_popular(counts, EXPLORE),
        epsilon_greedy(counts, EXPLORE),
        thompson(counts, EXPLORE),
        contextual.thompson_table(model, EXPLORE),
    ]


def test_every_policy_gives_each_variant_a_probability_and_keeps_exploring(world):
    candidates = world[3]
    for policy in every_policy(world):
        p = policy.probabilities(candidates)
        assert np.allclose(p.sum(axis=1), 1.0), policy.name
        assert (p[~candidates.mask] == 0).all(), policy.name
        floor = EXPLORE / candidates.count[:, None] - 1e-12
        assert (p[candidates.mask] >= np.broadcast_to(floor, p.shape)[candidates.mask]).all()


@pytest.mark.parametrize("name", ["epsilon_greedy", "thompson", "contextual"])
def test_with_plenty_of_data_the_policy_favours_the_best_variant(world, name):
    styles, truth, _, candidates = world
    policy = {p.name: p for p in every_policy(world)}[name]
    p = policy.probabilities(candidates)
    shown = truth[candidates.segment[:, None], np.maximum(candidates.styles, 0)]
    best = np.argmax(np.where(candidates.mask, shown, -1), axis=1)
    chosen = np.argmax(p, axis=1)
    assert (chosen == best).mean() >= 0.9
    assert p[np.arange(len(best)), best].mean() >= 0.8


def test_a_title_the_policy_has_never_seen_is_explored_evenly(world):
    styles, _, counts, _ = world
    new = candidates_for(styles, np.array([-1, -1]), np.array([0, 3]))
    new = Candidates(new.title, styles[[5, 6]], new.segment, new.device, new.daypart)
    for policy in (epsilon_greedy(counts, EXPLORE), thompson(counts, EXPLORE)):
        p = policy.probabilities(new)
        assert np.allclose(p, new.mask / new.count[:, None])


def test_a_new_variant_shares_the_greedy_traffic_until_it_has_impressions(world):
    styles, _, counts, _ = world
    fresh = Counts(counts.impressions.copy(), counts.plays.copy(), styles)
    fresh.impressions[0, :, 1] = 0
    fresh.plays[0, :, 1] = 0
    p = epsilon_greedy(fresh, EXPLORE).probabilities_by_cell[0, 0]
    k = (styles[0] >= 0).sum()
    assert p[1] >= (1 - EXPLORE) / 2 + EXPLORE / k - 1e-12


def test_the_contextual_fit_compares_variants_within_a_title():
    """'bright' (style 5) lowers every title's rate by a third, but only the most played
    titles carry it: pooled rates would rank it first, the within-title fit last."""
    rng = np.random.default_rng(2)
    rows = []
    for t in range(200):
        popular = t < 50
        base = 0.3 if popular else 0.05
        kept = [0, 1, 5] if popular else [0, 1, 2]
        for s in kept:
            rate = base * (2 / 3 if s == 5 else 1.0) * (1.2 if s == 0 else 1.0)
            rows.append((t, 0, s, rate))
    group, context, style, rate = (np.array(c) for c in zip(*rows, strict=True))
    n = np.full(len(rate), 5_000)
    counts = contextual.ContextCounts(group, context, style, n, rng.binomial(n, rate))
    effects = contextual.fit(counts).effects()[0]  # context 0
    assert effects[5] < effects[1] < effects[0]

    def pooled(s):
        return counts.plays[style == s].sum() / n[style == s].sum()

    assert pooled(5) > pooled(0)  # what the fit had to see through


def test_the_contextual_policy_serves_a_new_title_its_best_style():
    """Styles learnt on 40 titles: a title with an unseen combination of styles is shown
    the style that is best for the viewer's segment."""
    rng = np.random.default_rng(3)
    styles = title_styles(rng, TITLES)
    truth = appeal(rng)
    model = contextual.fit(context_counts(styles, truth, rng, 20_000))
    table = contextual.thompson_table(model, EXPLORE)
    new_styles = np.array([[4, 2, 0, -1, -1, -1]] * SEGMENT_COUNT)
    segments = np.arange(SEGMENT_COUNT)
    candidates = Candidates(
        title=np.full(SEGMENT_COUNT, -1),
        styles=new_styles,
        segment=segments,
        device=np.zeros(SEGMENT_COUNT, dtype=np.int64),
        daypart=np.zeros(SEGMENT_COUNT, dtype=np.int64),
    )
    chosen = np.argmax(table.probabilities(candidates), axis=1)
    assert (chosen == np.argmax(truth[:, [4, 2, 0]], axis=1)).all()


def test_the_table_covers_every_context_and_set_of_styles():
    model = contextual.LinearModel(
        np.random.default_rng(0).normal(size=contextual.FEATURES),
        np.eye(contextual.FEATURES) * 1e-6,
        0.1,
        1,
    )
    table = contextual.thompson_table(model, EXPLORE, draws=64).probabilities_by_style
    assert table.shape == (SEGMENT_COUNT * len(DEVICES) * len(DAYPARTS), 64, STYLES)
    sets = np.arange(1, 64)
    members = (sets[:, None] >> np.arange(STYLES)) & 1
    assert np.allclose(table[:, 1:].sum(axis=-1), 1.0)
    assert (table[:, 1:][..., members == 0] == 0).all()

"""The forward simulation's bookkeeping: what each policy is credited with per day, and
what it learns from the day it served."""

from __future__ import annotations

import numpy as np
import pytest
from test_artwork_policies import appeal, context_counts, logged_counts, title_styles

from feature_store.artwork.policies import MAX_VARIANTS, SEGMENT_COUNT, Candidates
from feature_store.artwork.steps import POLICIES, ArtworkSettings
from feature_store.synthetic.artwork_sim import Day, simulate

TITLES = 40


def a_day(rng, styles, truth, n: int) -> Day:
    title = rng.integers(0, TITLES, n)
    segment = rng.integers(0, SEGMENT_COUNT, n)
    candidates = Candidates(
        title=title,
        styles=styles[title],
        segment=segment,
        device=np.zeros(n, dtype=np.int64),
        daypart=np.zeros(n, dtype=np.int64),
    )
    base = rng.uniform(0.02, 0.2, n)
    p = base[:, None] * truth[segment[:, None], np.maximum(styles[title], 0)]
    p = np.where(candidates.mask, np.clip(p, 0, 1), 0.0)
    return Day(candidates, title.astype(np.int64), p)


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(4)
    styles = title_styles(rng, TITLES)
    truth = appeal(rng)
    counts = logged_counts(rng, styles, truth, per_cell=50)
    cells = context_counts(styles, truth, rng, per_cell=50)
    days = [a_day(rng, styles, truth, 3_000) for _ in range(3)]
    return days, simulate(counts, cells, days, ArtworkSettings(draws=64), seed=1)


def test_every_policy_is_credited_with_its_expected_plays_and_never_beats_the_oracle(run):
    days, trajectory = run
    assert set(trajectory.expected) == set(POLICIES)
    for k, day in enumerate(days):
        p = day.play_probability
        uniform = (p * day.candidates.mask / day.candidates.count[:, None]).sum()
        assert trajectory.expected["uniform"][k] == pytest.approx(uniform)
        assert trajectory.oracle[k] == pytest.approx(p.max(axis=1).sum())
        for name in POLICIES:
            assert trajectory.expected[name][k] <= trajectory.oracle[k] + 1e-9
    for name in POLICIES:
        regret = trajectory.regret(name)
        assert (np.diff(regret) >= -1e-9).all() and len(regret) == len(days)
    assert trajectory.impressions == [3_000] * 3
    assert trajectory.play_rate("uniform") < trajectory.oracle_rate


def test_a_policy_that_always_shows_the_best_variant_has_no_regret():
    day = Day(
        Candidates(
            title=np.array([0]),
            styles=np.array([[0, 1, 2] + [-1] * (MAX_VARIANTS - 3)]),
            segment=np.array([0]),
            device=np.array([0]),
            daypart=np.array([0]),
        ),
        np.array([0]),
        np.array([[0.1, 0.1, 0.1, 0, 0, 0]]),
    )
    rng = np.random.default_rng(0)
    styles = title_styles(rng, TITLES)
    counts = logged_counts(rng, styles, appeal(rng), per_cell=10)
    cells = context_counts(styles, appeal(rng), rng, per_cell=10)
    trajectory = simulate(counts, cells, [day], ArtworkSettings(draws=16))
    for name in POLICIES:  # every variant is as good: nothing is lost whatever is shown
        assert trajectory.regret(name)[-1] == pytest.approx(0.0)

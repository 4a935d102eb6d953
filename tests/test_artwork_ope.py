"""Off-policy estimators against logs whose true value is known.

The logs come from a small simulator of the generator's choice: a session shows three
titles, each with one of its 3-6 artwork variants, and the profile plays at most one of
them (a multinomial logit with an outside option), so impressions of a session compete.
The true value of a policy is exact: the play probability of every variant is known.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from feature_store.artwork.ope import (
    ESTIMATORS,
    LoggedTerms,
    RatioSums,
    estimate_all,
    estimator_terms,
)

SLOTS = 3
MOST = 6


@dataclasses.dataclass
class Sessions:
    """Fixed contexts: per impression its variants' true play probabilities (the other
    slots' logged variants held as they were drawn) are computed per drawn log."""

    utility: np.ndarray  # [session, slot]
    appeal: np.ndarray  # [session, slot, variant], -inf past the title's variants
    count: np.ndarray  # [session, slot]


def sessions(rng: np.random.Generator, n: int) -> Sessions:
    count = rng.integers(3, MOST + 1, size=(n, SLOTS))
    appeal = rng.normal(0.0, 0.6, size=(n, SLOTS, MOST))
    appeal[np.arange(MOST) >= count[..., None]] = -np.inf
    return Sessions(rng.normal(-1.0, 0.7, size=(n, SLOTS)), appeal, count)


def uniform_logging(s: Sessions) -> np.ndarray:
    return np.where(np.isfinite(s.appeal), 1.0 / s.count[..., None], 0.0)


def epsilon_greedy(s: Sessions, scores: np.ndarray, epsilon: float) -> np.ndarray:
    """(1 - epsilon) on the best of ``scores``, epsilon spread evenly."""
    best = np.argmax(np.where(np.isfinite(s.appeal), scores, -np.inf), axis=-1)
    greedy = np.arange(MOST) == best[..., None]
    return (1 - epsilon) * greedy + epsilon * uniform_logging(s)


def draw_log(s: Sessions, logging: np.ndarray, target: np.ndarray, seed: int) -> tuple:
    """One logged day: variants drawn by ``logging``, plays by the choice model. Returns
    the estimators' terms (the reward model: a constant, deliberately wrong) and the
    target policy's true value on these contexts."""
    rng = np.random.default_rng(seed)
    n = len(s.utility)
    cdf = np.cumsum(logging, axis=-1)
    u = rng.random((n, SLOTS, 1))
    shown = np.minimum((u > cdf).sum(axis=-1), s.count - 1)
    shown_appeal = np.take_along_axis(s.appeal, shown[..., None], -1)[..., 0]
    value = np.exp(s.utility + shown_appeal)
    rest = 1.0 + value.sum(axis=1, keepdims=True) - value  # outside option: utility 0
    play = np.exp(s.utility[..., None] + s.appeal)  # [session, slot, variant]
    truth_p = play / (rest[..., None] + play)
    choice = _choose(rng, s.utility + shown_appeal)
    reward = (choice[:, None] == np.arange(SLOTS)).astype(np.float64)
    truth = float((target * truth_p).sum(axis=-1).mean())
    take = np.take_along_axis
    flat = {
        "cluster": np.repeat(np.arange(n), SLOTS),
        "propensity": take(logging, shown[..., None], -1).ravel(),
        "reward": reward.ravel(),
        "target": take(target, shown[..., None], -1).ravel(),
        "q_logged": np.full(n * SLOTS, 0.05),
        "q_target": np.full(n * SLOTS, 0.05),
        "accept_draw": rng.random(n * SLOTS),
    }
    return LoggedTerms(**flat), truth


def _choose(rng, values: np.ndarray) -> np.ndarray:
    """The slot played (-1 for none): Gumbel-max over the slots and the outside option."""
    gumbel = rng.gumbel(size=(len(values), SLOTS + 1))
    scores = np.concatenate([values, np.zeros((len(values), 1))], axis=1) + gumbel
    best = np.argmax(scores, axis=1)
    return np.where(best == SLOTS, -1, best)


def a_target(s: Sessions, seed: int) -> np.ndarray:
    """A stochastic policy unrelated to the logging one: softmax of random scores."""
    scores = np.random.default_rng(seed).normal(0, 1.5, size=s.appeal.shape)
    scores = np.where(np.isfinite(s.appeal), scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_ips_is_unbiased_in_closed_form():
    """Every possible one-impression log weighted by its probability: the expectation of
    IPS and of doubly robust (with a wrong reward model) is the true value exactly."""
    mu = np.array([0.1, 0.2, 0.3, 0.4])
    pi = np.array([0.7, 0.0, 0.1, 0.2])
    p = np.array([0.05, 0.2, 0.1, 0.3])
    q = np.array([0.5, 0.0, 0.2, 0.1])
    expected = dict.fromkeys(("ips", "dr"), 0.0)
    for a in range(4):
        for r, p_r in ((1.0, p[a]), (0.0, 1 - p[a])):
            log = _one(mu[a], r, pi[a], q[a], float(pi @ q))
            for name in expected:
                expected[name] += mu[a] * p_r * estimate_all(log)[name].value
    assert expected["ips"] == pytest.approx(float(pi @ p), abs=1e-12)
    assert expected["dr"] == pytest.approx(float(pi @ p), abs=1e-12)


def _one(mu, r, pi, q_logged, q_target) -> LoggedTerms:
    def one(x):
        return np.array([x], dtype=np.float64)

    return LoggedTerms(
        cluster=np.array([0]),
        propensity=one(mu),
        reward=one(r),
        target=one(pi),
        q_logged=one(q_logged),
        q_target=one(q_target),
        accept_draw=one(0.5),
    )


@pytest.fixture(scope="module")
def coverage():
    """200 logs of 2,000 sessions each (fixed contexts, fresh draws), from uniform and
    from epsilon-greedy logging; per estimator: mean error and the share of 95% intervals
    that hold the true value."""
    s = sessions(np.random.default_rng(7), 2_000)
    target = a_target(s, 8)
    loggings = {
        "uniform": uniform_logging(s),
        "epsilon_greedy": epsilon_greedy(
            s, s.appeal + np.random.default_rng(9).normal(0, 1, s.appeal.shape), 0.3
        ),
    }
    result = {}
    for name, logging in loggings.items():
        errors, covered = {e: [] for e in ESTIMATORS}, {e: [] for e in ESTIMATORS}
        for seed in range(200):
            log, truth = draw_log(s, logging, target, seed)
            for e, estimate in estimate_all(log).items():
                errors[e].append(estimate.value - truth)
                covered[e].append(estimate.low <= truth <= estimate.high)
        result[name] = {e: (np.array(errors[e]), float(np.mean(covered[e]))) for e in ESTIMATORS}
    return result


@pytest.mark.parametrize("logging", ["uniform", "epsilon_greedy"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_intervals_cover_the_true_value_at_their_nominal_rate(coverage, logging, estimator):
    """200 draws: a 95% interval's coverage has a standard error of 1.5 points."""
    _, share = coverage[logging][estimator]
    assert 0.91 <= share <= 0.985


@pytest.mark.parametrize("logging", ["uniform", "epsilon_greedy"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimators_are_centred_on_the_true_value(coverage, logging, estimator):
    """The mean error over 200 logs is within four of its standard errors of zero."""
    errors, _ = coverage[logging][estimator]
    assert abs(errors.mean()) < 4 * errors.std(ddof=1) / np.sqrt(len(errors))


def test_replay_accepts_every_context_at_the_same_rate():
    """Uniform logging over 3 and 6 variants, a deterministic target: replay keeps
    impressions with 3 variants at half the rate of a match, so each context counts the
    same (naive replay would keep twice as many of them)."""
    n = 60_000
    count = np.where(np.arange(n) % 2 == 0, 3, 6)
    log = LoggedTerms(
        cluster=np.arange(n),
        propensity=1.0 / count,
        reward=np.zeros(n),
        target=np.ones(n),  # every impression shows the target's variant
        q_logged=np.zeros(n),
        q_target=np.zeros(n),
        accept_draw=np.random.default_rng(0).random(n),
    )
    accepted = estimator_terms(log, 1 / 6)["replay"][1]
    assert accepted[count == 3].mean() == pytest.approx(0.5, abs=0.01)
    assert accepted[count == 6].mean() == 1.0


def test_the_standard_error_counts_sessions_not_impressions():
    """Each impression copied three times within its session: the same estimate and the
    same standard error (an independent-rows formula would shrink it by sqrt(3))."""
    rng = np.random.default_rng(3)
    a, b = rng.random(500), np.ones(500)
    once = RatioSums.of(a, b, np.arange(500))
    thrice = RatioSums.of(np.repeat(a, 3), np.repeat(b, 3), np.repeat(np.arange(500), 3))
    rows = RatioSums.of(np.repeat(a, 3), np.repeat(b, 3), np.arange(1500))
    assert thrice.value == pytest.approx(once.value)
    assert thrice.stderr == pytest.approx(once.stderr)
    assert rows.stderr == pytest.approx(once.stderr / np.sqrt(3), rel=0.01)


def test_sums_of_two_logs_add_up():
    rng = np.random.default_rng(4)
    a, b, cluster = rng.random(300), rng.random(300), np.repeat(np.arange(100), 3)
    whole = RatioSums.of(a, b, cluster)
    parts = RatioSums.of(a[:150], b[:150], cluster[:150]) + RatioSums.of(
        a[150:], b[150:], cluster[150:]
    )
    assert dataclasses.astuple(parts) == pytest.approx(dataclasses.astuple(whole))


@pytest.mark.parametrize("bad", [0.0, -0.2, 1.5, float("nan")])
def test_a_propensity_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match=r"propensities outside \(0, 1\]"):
        _one(bad, 1.0, 0.5, 0.0, 0.0)

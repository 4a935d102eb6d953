"""Off-policy evaluation: a policy's play rate estimated from impressions another policy chose.

Every estimator here is a ratio of sums over the log, sum(a) / sum(b), with per-impression
terms built from the logged propensity mu(a|x), the target policy's probability pi(a|x) of
the logged variant, the reward and, for doubly robust, a reward model q(x, a):

| estimator | a | b |
|---|---|---|
| replay (rejection sampling) | accepted * r | accepted |
| IPS | w * r | 1 |
| SNIPS | w * r | w |
| doubly robust | q(x, pi) + w * (r - q(x, a)) | 1 |

with w = pi / mu. Replay accepts an impression with probability c * pi / mu, c the log's
smallest propensity: every context is then accepted at the same rate c, so contexts with
fewer variants are not over-represented (Li et al. 2011 assume one number of arms).

Standard errors come from one cluster-robust (delta-method) formula with sessions as
clusters: the titles of one session compete for one play, so their rewards are not
independent. The sums are additive, so Spark can compute them per partition.
"""

from __future__ import annotations

import dataclasses
from statistics import NormalDist

import numpy as np

ESTIMATORS = ("replay", "ips", "snips", "dr")


@dataclasses.dataclass(frozen=True)
class RatioSums:
    """Sufficient statistics of sum(a) / sum(b) over clusters: the cluster count, then
    sums of the cluster totals A, B and of A*A, A*B, B*B."""

    clusters: int
    a: float
    b: float
    aa: float
    ab: float
    bb: float

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, cluster: np.ndarray) -> RatioSums:
        """From per-impression terms and each impression's cluster (any integer ids)."""
        _, index = np.unique(cluster, return_inverse=True)
        total_a = np.bincount(index, weights=a)
        total_b = np.bincount(index, weights=b)
        return cls(
            clusters=len(total_a),
            a=float(total_a.sum()),
            b=float(total_b.sum()),
            aa=float(total_a @ total_a),
            ab=float(total_a @ total_b),
            bb=float(total_b @ total_b),
        )

    def __add__(self, other: RatioSums) -> RatioSums:
        """The sums of two logs with no cluster in common."""
        fields = dataclasses.fields(self)
        return RatioSums(*(getattr(self, f.name) + getattr(other, f.name) for f in fields))

    @property
    def value(self) -> float:
        return self.a / self.b if self.b > 0 else float("nan")

    @property
    def stderr(self) -> float:
        """Cluster-robust standard error of the ratio (linearised, with G/(G-1))."""
        if self.clusters < 2 or self.b <= 0:
            return float("nan")
        v = self.value
        spread = max(self.aa - 2 * v * self.ab + v * v * self.bb, 0.0)
        return float(np.sqrt(self.clusters / (self.clusters - 1) * spread) / self.b)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """One estimator's play rate with its interval; ``impressions``: those it used
    (replay's accepted ones, every impression for the others)."""

    estimator: str
    value: float
    stderr: float
    low: float
    high: float
    impressions: int

    def as_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LoggedTerms:
    """What the estimators read, one entry per logged impression.

    ``target``: pi(logged variant | context); ``q_logged``: the reward model at the logged
    variant; ``q_target``: the reward model averaged over pi's variants; ``accept_draw``:
    a uniform draw per impression for replay's rejection step."""

    cluster: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    target: np.ndarray
    q_logged: np.ndarray
    q_target: np.ndarray
    accept_draw: np.ndarray

    def __post_init__(self):
        check_propensities(self.propensity)
        if np.any((self.target < 0) | (self.target > 1)):
            raise ValueError("the target policy's probabilities must lie in [0, 1]")


def check_propensities(propensity: np.ndarray) -> None:
    """Propensities must lie in (0, 1]: a zero makes the impression unusable for any
    policy that would show something else, and above one is not a probability."""
    bad = ~((propensity > 0) & (propensity <= 1))
    if np.any(bad):
        raise ValueError(
            f"{int(bad.sum())} logged propensities outside (0, 1], "
            f"e.g. {propensity[bad][:3].tolist()}"
        )


def replay_accept_rate(propensity: np.ndarray) -> float:
    """Replay's acceptance constant c: the smallest logged propensity, so that
    c * pi / mu never exceeds one."""
    return float(propensity.min())


def estimator_terms(log: LoggedTerms, accept_rate: float) -> dict[str, tuple]:
    """Each estimator's per-impression (a, b) terms."""
    w = log.target / log.propensity
    ones = np.ones_like(w)
    accepted = (log.accept_draw < accept_rate * w).astype(np.float64)
    return {
        "replay": (accepted * log.reward, accepted),
        "ips": (w * log.reward, ones),
        "snips": (w * log.reward, w),
        "dr": (log.q_target + w * (log.reward - log.q_logged), ones),
    }


def estimate_all(log: LoggedTerms, level: float = 0.95) -> dict[str, Estimate]:
    """Replay, IPS, SNIPS and doubly robust estimates of the target policy's play rate,
    each with a normal interval at ``level``."""
    terms = estimator_terms(log, replay_accept_rate(log.propensity))
    sums = {name: RatioSums.of(a, b, log.cluster) for name, (a, b) in terms.items()}
    used = {name: len(log.reward) for name in ESTIMATORS}
    used["replay"] = int(terms["replay"][1].sum())
    return {name: estimate_from(name, sums[name], used[name], level) for name in ESTIMATORS}


def estimate_from(name: str, sums: RatioSums, impressions: int, level: float) -> Estimate:
    """The estimate and interval of one estimator's sums."""
    z = NormalDist().inv_cdf(0.5 + level / 2)
    value, stderr = sums.value, sums.stderr
    return Estimate(name, value, stderr, value - z * stderr, value + z * stderr, impressions)


def gain_over_logging(log: LoggedTerms, level: float = 0.95) -> Estimate:
    """Doubly robust estimate of the target's play rate minus the logging policy's, with
    its interval: paired on the same impressions, so much narrower than the two apart."""
    w = log.target / log.propensity
    gain = log.q_target + w * (log.reward - log.q_logged) - log.reward
    sums = RatioSums.of(gain, np.ones_like(gain), log.cluster)
    return estimate_from("dr_gain", sums, len(gain), level)

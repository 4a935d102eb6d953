"""How the generator chooses the artwork variant shown, and the hidden truth of artwork.

The logging policy is randomised and its probabilities are logged with every impression
(`artwork_propensity`), so that any other policy can be evaluated from the log. It is
uniform over a title's variants, or epsilon-greedy or softmax over a preference per
member segment x artwork style (the policy an earlier artwork team would have shipped).

The truth: a profile plays one of a session's three candidates, or none, by a
multinomial logit (utility + the segment's appeal for the shown variant's style + Gumbel
noise), so the probability that an impression is played had its title shown another
variant is exact, the other candidates held as they were shown.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from feature_store.sources import ARTWORK_STYLES, SEGMENTS

LOGGING_KINDS = ("uniform", "epsilon_greedy", "softmax")
MAX_VARIANTS = len(ARTWORK_STYLES)


@dataclasses.dataclass(frozen=True)
class ArtworkLogging:
    """The generator's logging policy. ``preference``: a score per segment x style (rows
    in `SEGMENTS` order, columns in `ARTWORK_STYLES` order), required unless uniform."""

    kind: str = "uniform"
    epsilon: float = 0.2
    temperature: float = 0.5
    preference: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOGGING_KINDS:
            raise ValueError(f"artwork logging kind {self.kind!r} is not one of {LOGGING_KINDS}")
        if self.kind != "uniform":
            shape = np.shape(self.preference) if self.preference is not None else None
            if shape != (len(SEGMENTS), len(ARTWORK_STYLES)):
                raise ValueError(
                    f"{self.kind} artwork logging needs a preference of "
                    f"{len(SEGMENTS)} segments x {len(ARTWORK_STYLES)} styles, got {shape}"
                )
        if not 0 < self.epsilon <= 1 or self.temperature <= 0:
            raise ValueError("epsilon must be in (0, 1] and the temperature positive")

    def probabilities(self, styles: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """[n, MAX_VARIANTS]: each variant's probability; ``styles`` -1 past a title's
        variants."""
        mask = styles >= 0
        even = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        if self.kind == "uniform":
            return even
        scores = np.asarray(self.preference)[segment[:, None], np.maximum(styles, 0)]
        scores = np.where(mask, scores, -np.inf)
        if self.kind == "softmax":
            weights = np.exp((scores - scores.max(axis=1, keepdims=True)) / self.temperature)
            return weights / weights.sum(axis=1, keepdims=True)
        best = np.arange(MAX_VARIANTS) == np.argmax(scores, axis=1)[:, None]
        return (1 - self.epsilon) * best + self.epsilon * even

    def choose(self, u: np.ndarray, styles: np.ndarray, segment: np.ndarray):
        """The variant slot drawn by inverse CDF from the uniform ``u``, and its
        probability. Uniform logging draws floor(u * count), as the generator always did."""
        count = (styles >= 0).sum(axis=1)
        if self.kind == "uniform":
            return np.minimum(np.floor(u * count).astype(np.int64), count - 1), 1.0 / count
        probabilities = self.probabilities(styles, segment)
        cdf = np.cumsum(probabilities, axis=1)
        slot = np.minimum((u[:, None] >= cdf).sum(axis=1), count - 1)
        return slot, probabilities[np.arange(len(u)), slot]


def play_probabilities(
    utility: np.ndarray,
    shown_appeal: np.ndarray,
    variant_appeal: np.ndarray,
    valid: np.ndarray,
    outside_utility: float,
) -> np.ndarray:
    """[session, candidate, variant]: the probability that the candidate is played had it
    shown that variant, the others as shown. ``utility``, ``shown_appeal``, ``valid``:
    [session, candidate]; ``variant_appeal``: [session, candidate, variant], -inf past
    the title's variants."""
    shown = np.where(valid, np.exp(utility + shown_appeal), 0.0)
    others = np.exp(outside_utility) + shown.sum(axis=1, keepdims=True) - shown
    own = np.exp(utility[..., None] + variant_appeal)
    return np.where(valid[..., None], own / (others[..., None] + own), 0.0)

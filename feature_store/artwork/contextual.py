"""The contextual artwork policy: linear Thompson sampling over context x style features.

A variant's effect on the play rate is modelled as a sum over its style of a main effect
and one effect per context feature (the viewer's segment, device and part of the day):
one model for every title, so a style learnt on popular titles is used on new ones.

It is fitted within groups (title x context): rates are compared only between variants
shown in the same group, because the titles carrying a style differ in how often they are
played at all (a linear probability model with a fixed effect per group, solved from
per-cell sums). Thompson sampling draws the coefficients from their Gaussian posterior;
a style's probability in a context is the share of draws in which it scores best among
the title's styles, tabulated for every context x set of styles.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse

from feature_store.artwork.policies import (
    CONTEXTS,
    SEGMENT_COUNT,
    STYLE_SETS,
    STYLES,
    Candidates,
    with_floor,
)
from feature_store.sources import DAYPARTS, DEVICES

# Per style: its main effect, then one coefficient per segment, device and part of the day
WIDTH = 1 + SEGMENT_COUNT + len(DEVICES) + len(DAYPARTS)
FEATURES = STYLES * WIDTH


@dataclasses.dataclass(frozen=True)
class ContextCounts:
    """Impressions and plays per cell: a group (title x context) and a variant's style."""

    group: np.ndarray
    context: np.ndarray
    style: np.ndarray
    impressions: np.ndarray
    plays: np.ndarray


@dataclasses.dataclass(frozen=True)
class LinearModel:
    """Coefficients, their posterior covariance, and what they were fitted on."""

    coefficients: np.ndarray  # [FEATURES]
    covariance: np.ndarray  # [FEATURES, FEATURES]
    noise_variance: float
    impressions: int

    def effects(self, coefficients: np.ndarray | None = None) -> np.ndarray:
        """Each style's score in each context: [..., CONTEXTS, STYLES]."""
        theta = self.coefficients if coefficients is None else coefficients
        theta = theta.reshape(*theta.shape[:-1], STYLES, WIDTH)
        return np.einsum("...sw,cw->...cs", theta, _context_rows())


@dataclasses.dataclass(frozen=True)
class StyleTable:
    """Probabilities per context x set of styles x style."""

    name: str
    probabilities_by_style: np.ndarray  # [CONTEXTS, STYLE_SETS, STYLES]

    def probabilities(self, candidates: Candidates) -> np.ndarray:
        by_style = self.probabilities_by_style[candidates.context, candidates.style_set]
        taken = np.take_along_axis(by_style, np.maximum(candidates.styles, 0), axis=1)
        return np.where(candidates.mask, taken, 0.0)


def _context_rows() -> np.ndarray:
    """[CONTEXTS, WIDTH]: a context's features (1, then one-hot segment, device, part)."""
    index = np.arange(CONTEXTS)
    daypart = index % len(DAYPARTS)
    device = index // len(DAYPARTS) % len(DEVICES)
    segment = index // (len(DAYPARTS) * len(DEVICES))
    rows = np.zeros((CONTEXTS, WIDTH))
    rows[:, 0] = 1.0
    rows[index, 1 + segment] = 1.0
    rows[index, 1 + SEGMENT_COUNT + device] = 1.0
    rows[index, 1 + SEGMENT_COUNT + len(DEVICES) + daypart] = 1.0
    return rows


def design(context: np.ndarray, style: np.ndarray) -> sparse.csr_matrix:
    """The cells' feature rows: four ones in their style's block."""
    rows = _context_rows()[context]
    cols = style[:, None] * WIDTH + np.arange(WIDTH)
    n = len(context)
    matrix = sparse.csr_matrix(
        (rows.ravel(), (np.repeat(np.arange(n), WIDTH), cols.ravel())), shape=(n, FEATURES)
    )
    matrix.eliminate_zeros()
    return matrix


def fit(counts: ContextCounts, ridge: float = 1.0) -> LinearModel:
    """Least squares of plays on the features with a fixed effect per group, from the
    cells' sums: A = sum over impressions of centred features' outer products."""
    _, group = np.unique(counts.group, return_inverse=True)
    n, y = counts.impressions.astype(np.float64), counts.plays.astype(np.float64)
    phi = design(counts.context, counts.style)
    member = sparse.csr_matrix((np.ones(len(group)), (group, np.arange(len(group)))))
    group_n, group_y = member @ n, member @ y
    group_mean = sparse.diags(1 / np.maximum(group_n, 1)) @ member @ sparse.diags(n) @ phi
    gram = phi.T @ sparse.diags(n) @ phi - group_mean.T @ sparse.diags(group_n) @ group_mean
    target = phi.T @ y - group_mean.T @ group_y
    precision = gram.toarray() + ridge * np.eye(FEATURES)
    theta = np.linalg.solve(precision, target)
    within_ss = y.sum() - (group_y**2 / np.maximum(group_n, 1)).sum()
    dof = max(n.sum() - len(group_n) - FEATURES, 1.0)
    noise = max(float(within_ss - theta @ target) / dof, 1e-12)
    return LinearModel(theta, noise * np.linalg.inv(precision), noise, int(n.sum()))


def thompson_table(model: LinearModel, explore: float, draws: int = 512, seed: int = 0):
    """The probability that each style scores best among each set of styles, in each
    context, over ``draws`` posterior draws; then the exploration floor."""
    rng = np.random.default_rng(seed)
    theta = rng.multivariate_normal(model.coefficients, model.covariance, size=draws)
    scores = model.effects(theta)  # [draws, CONTEXTS, STYLES]
    table = np.zeros((CONTEXTS, STYLE_SETS, STYLES))
    for bits in range(1, STYLE_SETS):
        mask = (bits >> np.arange(STYLES)) & 1 == 1
        best = np.where(mask, scores, -np.inf).argmax(axis=-1)  # [draws, CONTEXTS]
        wins = (best[..., None] == np.arange(STYLES)).mean(axis=0)
        table[:, bits] = with_floor(wins, np.broadcast_to(mask, wins.shape), explore)
    return StyleTable("contextual", table)

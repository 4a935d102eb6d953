"""How good a churn score is: ranking (ROC-AUC, PR-AUC, lift), probabilities (log loss,
Brier, reliability) -- on labels and scores in NumPy arrays.

Written out rather than imported: the definitions matter (ties, the order of a
precision-recall curve) and the package that has them all is not a dependency.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

_EPS = 1e-15


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-d of one length")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Chance that a random positive outscores a random negative (ties count half)."""
    y, s = _check(labels, scores)
    positives = y.sum()
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks: ties count half
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as the mean precision at each positive's
    threshold (tied scores form one threshold)."""
    y, s = _check(labels, scores)
    positives = y.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    # the last row of each group of equal scores is where the threshold lands
    last_of_group = np.r_[s[1:] != s[:-1], True]
    true_pos = np.cumsum(y)[last_of_group]
    predicted = (np.arange(1, len(y) + 1))[last_of_group]
    precision = true_pos / predicted
    recall_step = np.diff(np.r_[0.0, true_pos]) / positives
    return float((precision * recall_step).sum())


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 `labels` (probabilities clipped off 0 and 1)."""
    y, p = _check(labels, probabilities)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference between `probabilities` and 0/1 `labels`."""
    y, p = _check(labels, probabilities)
    return float(((p - y) ** 2).mean())


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-count bins of the predicted probability: mean prediction against the observed
    rate in each (the points of a reliability diagram)."""
    y, p = _check(labels, probabilities)
    order = np.argsort(p, kind="stable")
    result = []
    for part in np.array_split(order, min(bins, len(order))):
        if len(part) == 0:
            continue
        result.append(
            {
                "mean_predicted": float(p[part].mean()),
                "observed_rate": float(y[part].mean()),
                "rows": int(len(part)),
            }
        )
    return result


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Row-weighted mean gap between prediction and outcome over the reliability bins."""
    points = reliability(labels, probabilities)
    total = sum(b["rows"] for b in points)
    return float(
        sum(b["rows"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in points) / total
    )


def lift_by_decile(labels: np.ndarray, scores: np.ndarray) -> list[float]:
    """Positive rate of each tenth of the rows (highest scores first) over the overall
    rate: the first value is the top-decile lift."""
    y, s = _check(labels, scores)
    base = y.mean()
    if base == 0:
        return [float("nan")] * 10
    order = np.argsort(-s, kind="stable")
    return [float(y[part].mean() / base) for part in np.array_split(order, 10)]


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The headline figures of one model on one evaluation set."""
    y, p = _check(labels, probabilities)
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": average_precision(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier(y, p),
        "calibration_error": expected_calibration_error(y, p),
        "lift_top_decile": lift_by_decile(y, p)[0],
        "positive_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
    }

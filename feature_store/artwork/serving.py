"""Serving an artwork policy: saved as arrays, loaded by the registered model, asked with
requests (a title's variants and the viewer's context), answered with the variant drawn
and the probability it had, which the client logs as the impression's propensity.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from feature_store.artwork.contextual import StyleTable
from feature_store.artwork.policies import (
    MAX_VARIANTS,
    SEGMENT_COUNT,
    Candidates,
    Policy,
    TitleTable,
)
from feature_store.sources import ARTWORK_STYLES, DAYPARTS, DEVICES, SEGMENTS

ARRAYS = "policy.npz"
META = "policy.json"
# What a request holds, one row per impression to decide for
REQUEST_COLUMNS = ("title_id", "segment", "device", "local_hour", "artwork_ids", "artwork_styles")


def save(policy: Policy, titles: pd.Index, folder: Path) -> None:
    """The policy's table (and for a title table, its titles) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(policy, StyleTable):
        arrays = {"probabilities_by_style": policy.probabilities_by_style}
        meta = {"kind": "style_table", "name": policy.name}
    else:
        arrays = {"probabilities_by_cell": policy.probabilities_by_cell, "styles": policy.styles}
        meta = {"kind": "title_table", "name": policy.name, "titles": list(titles)}
    np.savez_compressed(folder / ARRAYS, **arrays)
    (folder / META).write_text(json.dumps(meta))


def load(folder: Path) -> tuple[Policy, pd.Index]:
    meta = json.loads((folder / META).read_text())
    with np.load(folder / ARRAYS) as arrays:
        if meta["kind"] == "style_table":
            return StyleTable(meta["name"], arrays["probabilities_by_style"]), pd.Index([])
        table = TitleTable(meta["name"], arrays["probabilities_by_cell"], arrays["styles"])
        return table, pd.Index(meta["titles"])


def request_candidates(requests: pd.DataFrame, titles: pd.Index) -> Candidates:
    """Requests (`REQUEST_COLUMNS`: names as the feature store writes them, a local hour)
    as candidates; raises `ValueError` naming what a request gets wrong."""
    missing = [c for c in REQUEST_COLUMNS if c not in requests.columns]
    if missing:
        raise ValueError(f"artwork requests lack columns {missing}")
    styles = np.full((len(requests), MAX_VARIANTS), -1, dtype=np.int64)
    for row, (ids, names) in enumerate(
        zip(requests["artwork_ids"], requests["artwork_styles"], strict=True)
    ):
        if len(ids) != len(names) or not 0 < len(ids) <= MAX_VARIANTS:
            raise ValueError(f"request {row}: {len(ids)} artwork ids with {len(names)} styles")
        unknown = sorted(set(names) - set(ARTWORK_STYLES))
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"request {row}: styles {list(names)} are not distinct known styles")
        styles[row, : len(names)] = [ARTWORK_STYLES.index(n) for n in names]
    return Candidates(
        title=titles.get_indexer(requests["title_id"])
        if len(titles)
        else np.full(len(requests), -1),
        styles=styles,
        segment=_positions(requests["segment"], list(SEGMENTS), SEGMENT_COUNT - 1),
        device=_positions(requests["device"], list(DEVICES), 0),
        daypart=np.digitize(
            requests["local_hour"].to_numpy(), [a for a, _ in DAYPARTS.values()][1:]
        ),
    )


def _positions(values: pd.Series, names: list[str], default: int) -> np.ndarray:
    index = pd.Index(names).get_indexer(values)
    return np.where(index >= 0, index, default)


def choose(policy: Policy, candidates: Candidates, rng: np.random.Generator):
    """The variant slot drawn for each request and its probability."""
    p = policy.probabilities(candidates)
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(p))
    slot = np.minimum((u[:, None] >= cdf).sum(axis=1), candidates.count - 1)
    return slot, p[np.arange(len(p)), slot]

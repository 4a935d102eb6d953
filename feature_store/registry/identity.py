"""The identity of the data a model version was evaluated on.

Two runs' logged metrics are comparable only when they were computed on the same rows.
Each training run describes its evaluation data -- the evaluation window's dates, the
rule that picks the held-out rows and the Delta versions of the tables read -- and tags
the run and its registered version with a hash of that description. Equal tags: the
metrics can be compared as logged. Different tags: the champion has to be re-scored on
the candidate's data first (see :mod:`feature_store.registry.evaluators`).

Kept free of heavy imports: every training run imports it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

EVALUATION_DATA_TAG = "evaluation.data"
_PREFIX = "sha256:"
_DIGITS = 16  # 64 bits: collisions between a model's evaluation sets are not a concern


def evaluation_data_id(description: Mapping[str, Any]) -> str:
    """``sha256:<16 hex digits>`` of ``description`` (JSON with sorted keys; dates and
    other values by ``str``), e.g. ``{"test_snapshot": d, "table_versions": {...}}``."""
    if not description:
        raise ValueError("an evaluation data description must not be empty")
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    return _PREFIX + hashlib.sha256(text.encode()).hexdigest()[:_DIGITS]


def short(identity: str | None) -> str:
    """The identity without its prefix, for tables and messages."""
    if not identity:
        return "-"
    return identity.removeprefix(_PREFIX)[:8]

"""What a model version was evaluated on, and the contract for re-scoring it.

Two runs' logged metrics are comparable only when computed on the same rows. Each training
run tags the run and its registered version with a hash of its evaluation data's
description (:func:`evaluation_data_id`); when a candidate's tag differs from the
champion's, the promotion gate asks the model's :data:`Evaluator` to score both versions on
the candidate's logged rows (:func:`log_evaluation_rows`). Kept free of heavy imports:
every training run imports it. More: docs/registry-and-publishing.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

EVALUATION_DATA_TAG = "evaluation.data"
EVALUATION_ROWS_ARTIFACT = "evaluation/rows.parquet"
LABEL = "label"  # the 0/1 outcome column of the evaluation rows
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


class EvaluatorError(RuntimeError):
    """A champion could not be re-scored; the message says why."""


@dataclasses.dataclass(frozen=True)
class Reevaluation:
    metric: str
    candidate: float
    champion: float
    rows: int
    detail: str  # where the rows came from, for the decision's reason


# (client, candidate, champion, metric, champion_metric=...) -> the candidate's ``metric``
# and the champion's ``champion_metric`` (usually the same) on the candidate's rows
Evaluator = Callable[..., Reevaluation]


def log_evaluation_rows(rows: pd.DataFrame) -> None:
    """Log the rows a run was evaluated on (model inputs and the ``label`` column) to the
    active run, so that a later gate can score another version on exactly these rows."""
    import mlflow

    if LABEL not in rows.columns:
        raise ValueError(f"evaluation rows need a {LABEL!r} column, got {list(rows.columns)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(EVALUATION_ROWS_ARTIFACT).name
        rows.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(Path(EVALUATION_ROWS_ARTIFACT).parent))


def evaluation_rows(client: MlflowClient, version: ModelVersion) -> pd.DataFrame:
    """The rows ``version``'s run logged with :func:`log_evaluation_rows`."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(version.run_id, EVALUATION_ROWS_ARTIFACT, tmp)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise EvaluatorError(
                f"run {version.run_id} of {version.name} v{version.version} logged no "
                f"evaluation rows ({EVALUATION_ROWS_ARTIFACT})"
            ) from exc
        return pd.read_parquet(local)

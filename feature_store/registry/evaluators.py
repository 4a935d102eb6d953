"""Re-scoring a champion on a candidate's evaluation data.

When the champion and the candidate were evaluated on different data (their
``evaluation.data`` tags differ), their logged metrics say nothing about which is better.
An evaluator loads both registered versions, scores the rows the candidate was evaluated
on and computes the comparison metric for each, with the same code on the same rows.

Only models whose runs log their evaluation rows can be re-scored. The churn run logs its
held-out snapshot rows with their labels (:func:`log_evaluation_rows`); the recommender
(judged on the views of days after its as-of date, against every title) and the
popularity forecast (judged by a backtest that retrains at every origin) have no
evaluator, and the gate says so rather than compare unlike numbers.

Top-level imports stay light: the policy loader imports :data:`EVALUATORS` for its names.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

EVALUATION_ROWS_ARTIFACT = "evaluation/rows.parquet"
LABEL = "label"  # the 0/1 outcome column of the evaluation rows
CHURN_KEY = "account_id"
CHURN_SCORE = "churn_probability"
# The registered churn model is the gradient-boosted trees: only its metrics (``gbt.*``)
# describe what a re-scored version is.
CHURN_REGISTERED = "gbt"


class EvaluatorError(RuntimeError):
    """A champion could not be re-scored; the message says why."""


@dataclasses.dataclass(frozen=True)
class Reevaluation:
    metric: str
    candidate: float
    champion: float
    rows: int
    detail: str  # where the rows came from, for the decision's reason


Evaluator = Callable[["MlflowClient", "ModelVersion", "ModelVersion", str], Reevaluation]


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


def churn(
    client: MlflowClient, candidate: ModelVersion, champion: ModelVersion, metric: str
) -> Reevaluation:
    """Score the candidate's held-out snapshot rows with both versions' pyfuncs (in the
    active Spark session) and compute ``metric`` (``gbt.<name>`` of
    :func:`feature_store.churn.metrics.binary_metrics`) for each."""
    import numpy as np

    from feature_store.churn.metrics import binary_metrics

    prefix, _, name = metric.partition(".")
    if prefix != CHURN_REGISTERED:
        raise EvaluatorError(
            f"the churn evaluator computes the registered model's {CHURN_REGISTERED}.* "
            f"metrics, not {metric}"
        )
    rows = evaluation_rows(client, candidate)
    labels = rows[LABEL].to_numpy(dtype=np.float64)
    inputs = rows.drop(columns=[LABEL])
    values = {}
    for version in (candidate, champion):
        computed = binary_metrics(labels, _churn_scores(version, inputs))
        if name not in computed:
            known = "|".join(sorted(computed))
            raise EvaluatorError(f"the churn evaluator computes {prefix}.<{known}>, not {metric}")
        values[version.version] = computed[name]
    return Reevaluation(
        metric=metric,
        candidate=values[candidate.version],
        champion=values[champion.version],
        rows=len(rows),
        detail=f"{len(rows):,} evaluation rows of v{candidate.version}'s run",
    )


def _churn_scores(version: ModelVersion, inputs: pd.DataFrame):
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
    output = model.predict(inputs)
    missing = {CHURN_KEY, CHURN_SCORE} - set(output.columns)
    if missing:
        raise EvaluatorError(f"{version.name} v{version.version} returned no {sorted(missing)}")
    # Join back by key: a Spark-backed model returns its rows in any order.
    scored = inputs[[CHURN_KEY]].merge(
        output[[CHURN_KEY, CHURN_SCORE]], on=CHURN_KEY, how="left", validate="one_to_one"
    )
    if scored[CHURN_SCORE].isna().any():
        unscored = int(scored[CHURN_SCORE].isna().sum())
        raise EvaluatorError(
            f"{version.name} v{version.version} scored no probability for {unscored} rows"
        )
    return scored[CHURN_SCORE].to_numpy(dtype="float64")


EVALUATORS: dict[str, Evaluator] = {"churn": churn}

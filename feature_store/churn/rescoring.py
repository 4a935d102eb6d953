"""The churn model's evaluator for the promotion gate: both versions re-scored on the
candidate's held-out snapshot rows, declared to the registry as the ``churn`` entry point
of ``marquee.evaluators`` (pyproject.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feature_store.evaluation import LABEL, EvaluatorError, Reevaluation, evaluation_rows

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHURN_KEY = "account_id"
CHURN_SCORE = "churn_probability"
# The registered churn model is the gradient-boosted trees: only its metrics (``gbt.*``)
# describe what a re-scored version is.
CHURN_REGISTERED = "gbt"


def rescore(
    client: MlflowClient,
    candidate: ModelVersion,
    champion: ModelVersion,
    metric: str,
    champion_metric: str | None = None,
) -> Reevaluation:
    """Score the candidate's held-out snapshot rows with both versions' pyfuncs (in the
    active Spark session) and compute ``metric`` (``gbt.<name>`` of
    :func:`feature_store.churn.evaluate.binary_metrics`) for each."""
    import numpy as np

    from feature_store.churn.evaluate import binary_metrics

    if champion_metric not in (None, metric):
        raise EvaluatorError(f"the churn evaluator compares like with like, not {champion_metric}")
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

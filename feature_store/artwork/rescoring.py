"""The artwork policy's evaluator for the promotion gate: the candidate's and the
champion's policies judged off-policy on the candidate's held-out impressions, declared
to the registry as the ``artwork`` entry point of ``marquee.evaluators``.

Metrics are ``served.<estimator>`` with an optional ``_low`` / ``_high`` (the interval's
bounds), e.g. the candidate's ``served.dr_low`` against the champion's ``served.dr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feature_store.evaluation import EvaluatorError, Reevaluation, evaluation_rows

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def rescore(
    client: MlflowClient,
    candidate: ModelVersion,
    champion: ModelVersion,
    metric: str,
    champion_metric: str | None = None,
) -> Reevaluation:
    from feature_store.artwork.steps import ArtworkSettings, judge

    rows = evaluation_rows(client, candidate)
    values = {}
    for version, name in ((candidate, metric), (champion, champion_metric or metric)):
        estimator, bound = _parse(name)
        policy, titles = _policy(client, version)
        estimate = judge(policy, titles, rows, ArtworkSettings())[estimator]
        values[version.version] = getattr(estimate, bound)
    return Reevaluation(
        metric=metric,
        candidate=values[candidate.version],
        champion=values[champion.version],
        rows=len(rows),
        detail=f"{len(rows):,} held-out impressions of v{candidate.version}'s run",
    )


def _parse(metric: str) -> tuple[str, str]:
    """``served.dr_low`` -> ("dr", "low"); ``served.ips`` -> ("ips", "value")."""
    from feature_store.artwork.ope import ESTIMATORS

    prefix, _, name = metric.partition(".")
    estimator, _, bound = name.partition("_")
    if prefix != "served" or estimator not in ESTIMATORS or bound not in ("", "low", "high"):
        raise EvaluatorError(
            f"the artwork evaluator computes served.<{'|'.join(ESTIMATORS)}>[_low|_high], "
            f"not {metric}"
        )
    return estimator, bound or "value"


def _policy(client: MlflowClient, version: ModelVersion):
    """The version's policy and titles, as its registered pyfunc loads them."""
    import mlflow

    try:
        model = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
    except Exception as exc:  # MLflow raises several types for a model it cannot load
        raise EvaluatorError(f"{version.name} v{version.version} cannot be loaded: {exc}") from exc
    served = model.unwrap_python_model()
    return served.policy, served.titles

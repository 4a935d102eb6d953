"""The recommender in MLflow: one run per training, the model registered as ``recommender``.

A run logs the settings (each component's parameters, the blend's weights, calibration),
the feature and bronze table versions it read, every model's metrics against the truth,
two plots (nDCG by cut-off; coverage and popularity bias) and the trained
:class:`~feature_store.recs.serving.ServingRecommender` as a pyfunc that loads every part.
The registered version is tagged with its data window. Promotion (aliases) is the
registry's business, not the training run's.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from feature_store.evaluation import EVALUATION_DATA_TAG, evaluation_data_id
from feature_store.recs.steps import RecommenderRun
from feature_store.tracking import model_requirements, package_code_path, tag_registered_version

log = logging.getLogger(__name__)

MODEL_NAME = "recommender"
EXPERIMENT = "recommender"


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """pyfunc: rows of profile_id -- and optionally region and segment (for profiles the
    model never saw), device and local_hour (the session context the ranker uses) -- in;
    rows of profile_id, title_id, score, rank out. Param ``k`` (default 10): list length."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Unpickle the serving recommender from the model's artifacts."""
        with open(context.artifacts["serving"], "rb") as f:
            self.serving = pickle.load(f)

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict | None = None,
    ) -> pd.DataFrame:
        """The top `k` titles (param, default 10) of each profile in `model_input`."""
        k = int((params or {}).get("k", 10))
        recs = self.serving.recommend(
            model_input["profile_id"].to_numpy(),
            k,
            regions=model_input.get("region"),
            segments=model_input.get("segment"),
            devices=model_input.get("device"),
            hours=model_input.get("local_hour"),
        )
        return recs.rename(columns={"user_id": "profile_id", "item_id": "title_id"})


def log_recommender_run(run: RecommenderRun, *, k: int, register: bool = True) -> str | None:
    """Log ``run`` to the active experiment; returns the registered version (or None)."""
    window = _evaluation_window(run)
    with mlflow.start_run(run_name=f"recommender-{run.as_of.isoformat()}") as active:
        mlflow.set_tags(window)
        mlflow.log_params(_params(run, k))
        mlflow.log_dict(
            {"table_versions": run.feature_versions, "validation": run.trained.validation},
            "lineage_and_validation.json",
        )
        for name, metrics in run.evaluation.items():
            mlflow.log_metrics({f"{name}.{m.replace('@', '_at_')}": v for m, v in metrics.items()})
        if run.evaluation:
            _log_plots(run)
        if run.ranker_report:
            _log_ranker(run.ranker_report)
        info = _log_model(run, k, register)
        tags = {**window, "run_id": active.info.run_id}
        version = tag_registered_version(info, MODEL_NAME, tags) if register else None
        log.info("recommender run %s logged; model version %s", active.info.run_id, version)
    return version


def _evaluation_window(run: RecommenderRun) -> dict[str, str]:
    """The run's data window, and the id of what its metrics were computed on: the
    promotion gate compares only like with like."""
    return {
        "data.as_of": run.as_of.isoformat(),
        "data.interactions_lookback_days": "56",
        "data.label_days": str(run.data.label_days),
        EVALUATION_DATA_TAG: evaluation_data_id(
            {
                "as_of": run.as_of,
                "label_days": run.data.label_days,
                "table_versions": run.feature_versions,
            }
        ),
    }


def _params(run: RecommenderRun, k: int) -> dict:
    serving = run.serving
    return {
        "k": k,
        "calibration_weight": serving.calibration_weight,
        "candidates_per_user": serving.candidates,
        "blend.normalisation": serving.ensemble.normalisation,
        **{f"blend.weight.{n}": w for n, w in serving.ensemble.weights.items()},
        **{
            f"{name}.{key}": value
            for name, model in run.trained.components.items()
            for key, value in model.params().items()
        },
        **{f"lineage.{t}.version": v for t, v in run.feature_versions.items()},
        "training_rows": len(run.data.interactions),
        "catalogue_titles": len(run.data.items),
    }


def _log_ranker(report: dict) -> None:
    mlflow.log_dict(report, "ranker.json")
    mlflow.log_params({f"ranker.{n}": v for n, v in report["params"].items()})
    sessions = report.get("evaluation", {})
    for name in ("ensemble", "ranker"):
        for metric, value in sessions.get(name, {}).items():
            mlflow.log_metric(f"sessions.{name}.{metric.replace('@', '_at_')}", value)
    if "context_list_overlap" in sessions:
        mlflow.log_metric("context_list_overlap", sessions["context_list_overlap"])


def _log_model(run: RecommenderRun, k: int, register: bool):
    """The serving recommender as a pyfunc model, registered when ``register``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "serving.pkl"
        path.write_bytes(pickle.dumps(run.serving))
        return mlflow.pyfunc.log_model(
            name="recommender",
            python_model=RecommenderModel(),
            artifacts={"serving": str(path)},
            registered_model_name=MODEL_NAME if register else None,
            signature=_signature(k),
            code_paths=[package_code_path()],
            pip_requirements=model_requirements(),
        )


def _signature(k: int):
    """Inputs: profile_id, and optional region, segment, device, local_hour; param k."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "profile_id"),
            ColSpec("string", "region", required=False),
            ColSpec("string", "segment", required=False),
            ColSpec("string", "device", required=False),
            ColSpec("long", "local_hour", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("string", "profile_id"),
            ColSpec("string", "title_id"),
            ColSpec("double", "score"),
            ColSpec("long", "rank"),
        ]
    )
    return ModelSignature(inputs, outputs, ParamSchema([ParamSpec("k", "long", k)]))


def _log_plots(run: RecommenderRun) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, by_k in run.metrics_by_k.items():
        ax.plot(list(by_k), list(by_k.values()), marker="o", label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("nDCG@k")
    ax.set_title(f"recommender as of {run.as_of}: nDCG by cut-off")
    ax.legend(fontsize=7)
    mlflow.log_figure(fig, "plots/ndcg_by_k.png")
    plt.close(fig)

    names = list(run.evaluation)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].barh(names, [run.evaluation[n].get("coverage", 0.0) for n in names])
    axes[0].set_xlabel("catalogue coverage")
    axes[1].barh(names, [run.evaluation[n].get("head_share", 0.0) for n in names])
    axes[1].set_xlabel("share of recommendations from the popular head")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/coverage_and_popularity_bias.png")
    plt.close(fig)

"""The churn model in MLflow: one run per training, the model registered as ``churn``.

A run logs the settings (horizon, snapshots, both models' parameters, class weights), the
training set's lineage (Delta versions of the feature tables and the subscription log),
every model's metrics with the hidden hazard's as the ceiling, the feature importances,
and three plots: the reliability diagram, the lift chart and the importances. The model
is a pyfunc around the Spark pipeline and the scorer (bands, reasons): snapshot feature
rows in, probability, risk band and reasons out.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from feature_store.churn.data import ACCOUNT_FEATURES, PROFILE_AGGREGATES
from feature_store.churn.scoring import ChurnScorer
from feature_store.churn.steps import HOLDOUT_BUCKETS, ChurnRun
from feature_store.evaluation import EVALUATION_DATA_TAG, evaluation_data_id, log_evaluation_rows
from feature_store.features.tables import ACCOUNT_DAILY
from feature_store.tracking import model_requirements, package_code_path, tag_registered_version

log = logging.getLogger(__name__)

MODEL_NAME = "churn"
EXPERIMENT = "churn"
_NAMES = {"gbt": "gradient-boosted trees", "logistic": "logistic regression"}


class ChurnModel(mlflow.pyfunc.PythonModel):
    """pyfunc: rows of account_id and the snapshot features (`ACCOUNT_FEATURES` as in
    account_daily, `PROFILE_AGGREGATES` as doubles) in; account_id, churn_probability,
    risk_band and reasons out. Runs the Spark pipeline in the active (or a local) session."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Take the active Spark session (or start a local one) and load the scorer."""
        from pyspark.sql import SparkSession

        self.spark = SparkSession.getActiveSession() or (
            SparkSession.builder.master("local[1]").appName("churn-model").getOrCreate()
        )
        self.scorer = ChurnScorer.load(Path(context.artifacts["scorer"]))

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict | None = None,
    ) -> pd.DataFrame:
        """The scored rows of `model_input`; raises `ValueError` when a column is missing."""
        from pyspark.sql import types as T

        schema = T.StructType(
            [T.StructField("account_id", T.StringType())]
            + [T.StructField(f, ACCOUNT_DAILY.column(f).spark_type) for f in ACCOUNT_FEATURES]
            + [T.StructField(f, T.DoubleType()) for f in PROFILE_AGGREGATES]
        )
        columns = [f.name for f in schema.fields]
        missing = [c for c in columns if c not in model_input.columns]
        if missing:
            raise ValueError(f"churn model input lacks columns {missing}")
        values = [_python_values(model_input[f.name], f.dataType) for f in schema.fields]
        frame = self.spark.createDataFrame(list(zip(*values, strict=True)), schema)
        return self.scorer.score(frame).toPandas()


def _python_values(column: pd.Series, data_type) -> list:
    """A pandas column as Python values Spark accepts for ``data_type`` (NaN: None)."""
    from pyspark.sql import types as T

    if isinstance(data_type, T.DoubleType):
        convert = float
    elif isinstance(data_type, (T.IntegerType, T.LongType)):
        convert = int
    else:
        convert = str
    return [None if pd.isna(v) else convert(v) for v in column]


def log_churn_run(run: ChurnRun, *, register: bool = True) -> str | None:
    """Log ``run`` to the active experiment; returns the registered version (or None)."""
    window = _evaluation_window(run)
    with mlflow.start_run(run_name=f"churn-{run.as_of.isoformat()}") as active:
        mlflow.set_tags(window)
        mlflow.log_params(_params(run))
        mlflow.log_dict(run.lineage, "training_set.json")
        _log_metrics(run)
        _log_plots(run)
        # The held-out rows with labels, so that a promotion gate can re-score another
        # version on them (feature_store.churn.rescoring); absent on older runs.
        if run.evaluation_rows is not None:
            log_evaluation_rows(run.evaluation_rows)
        info = _log_model(run, register)
        tags = {**window, "run_id": active.info.run_id}
        version = tag_registered_version(info, MODEL_NAME, tags) if register else None
        log.info("churn run %s logged; model version %s", active.info.run_id, version)
    return version


def _evaluation_window(run: ChurnRun) -> dict[str, str]:
    """The run's data window, and the id of what its metrics were computed on: the
    promotion gate compares only like with like."""
    return {
        "data.as_of": run.as_of.isoformat(),
        "data.horizon_days": str(run.horizon_days),
        "data.train_snapshots": ",".join(s.isoformat() for s in run.train_snapshots),
        "data.test_snapshot": run.test_snapshot.isoformat(),
        EVALUATION_DATA_TAG: evaluation_data_id(
            {
                "test_snapshot": run.test_snapshot,
                "horizon_days": run.horizon_days,
                "holdout": f"pmod(xxhash64(account_id), {HOLDOUT_BUCKETS}) == 0",
                "table_versions": run.lineage["table_versions"],
            }
        ),
    }


def _params(run: ChurnRun) -> dict:
    classifier = run.scorer.classifier
    return {
        "horizon_days": run.horizon_days,
        **{f"gbt.{k}": v for k, v in classifier.params.items()},
        **{f"logistic.{k}": v for k, v in run.logistic.params.items()},
        "class_weight.positive": round(classifier.weights.positive, 6),
        "class_weight.negative": round(classifier.weights.negative, 6),
        **{f"lineage.{t}.version": v for t, v in run.lineage["table_versions"].items()},
        **run.rows,
        "risk_band.high_threshold": round(run.scorer.high_threshold, 6),
        "risk_band.medium_threshold": round(run.scorer.medium_threshold, 6),
    }


def _log_metrics(run: ChurnRun) -> None:
    for name, values in run.evaluation.items():
        prefix = "ceiling" if name == "hidden_hazard" else name
        mlflow.log_metrics({f"{prefix}.{m}": v for m, v in values.items()})
    mlflow.log_metrics({f"importance.{f}": v for f, v in run.importances.items()})
    mlflow.log_metrics({f"seconds.{k}": v for k, v in run.seconds.items()})
    mlflow.log_dict({"reliability": run.reliability, "lift_by_decile": run.lift}, "evaluation.json")


def _log_model(run: ChurnRun, register: bool):
    """The scorer as a pyfunc model, registered as ``churn`` when ``register``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scorer"
        run.scorer.save(folder)
        return mlflow.pyfunc.log_model(
            name="churn",
            python_model=ChurnModel(),
            artifacts={"scorer": str(folder)},
            registered_model_name=MODEL_NAME if register else None,
            signature=_signature(),
            code_paths=[package_code_path()],
            pip_requirements=model_requirements(),
        )


def _signature():
    """The outputs only. An input schema would make MLflow refuse int64 counts where it
    declares doubles and NaN-holding float columns where it declares longs -- and a
    pandas column of a nullable count is either, depending on the batch. ``predict``
    checks the columns by name and converts each to its feature table's type instead."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    outputs = Schema(
        [
            ColSpec("string", "account_id"),
            ColSpec("double", "churn_probability"),
            ColSpec("string", "risk_band"),
        ]
    )
    return ModelSignature(outputs=outputs)


def _log_plots(run: ChurnRun) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {**_NAMES, "hidden_hazard": "hidden hazard (ceiling)"}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for name, points in run.reliability.items():
        x = [p["mean_predicted"] for p in points]
        y = [p["observed_rate"] for p in points]
        top = max(top, *x, *y)
        ax.plot(x, y, marker="o", label=labels.get(name, name))
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfectly calibrated")
    ax.set_xlabel("mean predicted probability (tenths of the accounts)")
    ax.set_ylabel("observed cancel rate")
    ax.set_title(f"churn within {run.horizon_days} days: reliability")
    ax.legend(fontsize=8)
    mlflow.log_figure(fig, "plots/reliability.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(run.lift))
    for i, (name, lifts) in enumerate(run.lift.items()):
        ax.bar([d + i * width for d in range(1, 11)], lifts, width, label=labels.get(name, name))
    ax.axhline(1.0, color="grey", linestyle="--")
    ax.set_xlabel("decile of accounts by predicted risk (1 = riskiest)")
    ax.set_ylabel("lift (cancel rate / overall rate)")
    ax.set_title("lift by decile")
    ax.legend(fontsize=8)
    mlflow.log_figure(fig, "plots/lift.png")
    plt.close(fig)

    names = list(run.importances)[:15][::-1]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.barh(names, [run.importances[n] for n in names])
    ax.set_xlabel("importance (gradient-boosted trees)")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/feature_importances.png")
    plt.close(fig)

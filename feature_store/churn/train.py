"""The churn job's steps in order: train and evaluate, log and register in MLflow, score
every account to Delta."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from pyspark.sql import SparkSession

from feature_store.churn.steps import ChurnRun, score_accounts, train_churn
from feature_store.churn.tracking import EXPERIMENT, log_churn_run
from feature_store.config import Config
from feature_store.tracking import configure_mlflow


def train_register_and_score(
    spark: SparkSession, config: Config, as_of: dt.date, *, register: bool = True, **options: Any
) -> ChurnRun:
    """The whole churn job: train and evaluate (``options`` go to :func:`train_churn`),
    log and register in MLflow, score every account as of ``as_of`` to Delta."""
    configure_mlflow(config, EXPERIMENT)
    run = train_churn(spark, config, as_of, **options)
    version = log_churn_run(run, register=register)
    clock = time.perf_counter()
    score_accounts(spark, config, run, model_version=version)
    run.seconds["score"] = time.perf_counter() - clock
    return run

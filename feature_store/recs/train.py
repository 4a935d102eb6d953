"""The recommender job's steps in order: train and evaluate, log and register in MLflow,
batch-score every profile and every title's neighbours to Delta."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import SparkSession

from feature_store.config import Config
from feature_store.recs.steps import (
    RecommenderRun,
    score_profiles,
    similar_titles,
    train_recommender,
)
from feature_store.recs.tracking import EXPERIMENT, log_recommender_run
from feature_store.tracking import configure_mlflow


def train_register_and_score(
    spark: SparkSession, config: Config, as_of: dt.date, *, register: bool = True, **options: Any
) -> RecommenderRun:
    """The whole training job: train and evaluate (``options`` go to
    :func:`train_recommender`), log and register in MLflow, batch-score to Delta."""
    configure_mlflow(config, EXPERIMENT)
    run = train_recommender(spark, config, as_of, **options)
    run.model_version = log_recommender_run(run, k=options.get("k", 10), register=register)
    run.scored_rows = score_profiles(spark, config, run)
    run.similar_rows = similar_titles(spark, config, run)
    return run

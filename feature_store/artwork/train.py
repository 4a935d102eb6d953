"""The artwork job's steps in order: train every policy and judge it off-policy, log and
register the served one in MLflow, write its probabilities for every title to Delta."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import SparkSession

from feature_store.artwork.steps import (
    ArtworkDataError,
    ArtworkRun,
    ArtworkSettings,
    train_and_evaluate,
    write_policy_table,
)
from feature_store.artwork.tracking import EXPERIMENT, log_artwork_run
from feature_store.config import Config
from feature_store.features.retrieval import FeatureStoreReader
from feature_store.tracking import configure_mlflow


def train_register_and_publish(
    spark: SparkSession,
    config: Config,
    as_of: dt.date,
    *,
    register: bool = True,
    write: bool = True,
    ceiling: Callable | None = None,
    settings: ArtworkSettings | None = None,
) -> ArtworkRun:
    """The whole artwork job. ``ceiling``: the true play rates of the policies where the
    data is generated (`synthetic.artwork_truth.artwork_ceiling`), logged beside the
    estimates. ``write``: the served policy's table to Delta."""
    configure_mlflow(config, EXPERIMENT)
    reader = FeatureStoreReader(spark, config.lake, error=ArtworkDataError)
    run = train_and_evaluate(reader, as_of, settings or ArtworkSettings())
    if ceiling is not None:
        run.truth = ceiling(run.policies, run.titles, run.evaluation_rows, *run.holdout_window)
    version = log_artwork_run(run, register=register)
    if write:
        write_policy_table(spark, config, run, version)
    run.model_version = version
    return run

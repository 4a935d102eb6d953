"""The popularity model and the baselines it must beat.

Model: one Spark MLlib pipeline -- region and kind indexed as categoricals, every feature
assembled into a vector, a gradient-boosted regressor on the log ratio to the series' 7-day
level, and a last stage that turns that ratio back into views, so whoever loads the
registered pipeline gets views out of feature rows in. Baselines, from the same rows:
seasonal naive (views on the same weekday in the last week before the target) and the mean
of the last 7 days. Why: docs/models.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from feature_store.forecast.features import (
    CATEGORICAL_FEATURES,
    LABEL,
    LEVEL,
    MEAN_7D,
    NUMERIC_FEATURES,
    RELEASE_AGE,
    RELEASE_AGE_AT_ORIGIN,
    SAME_WEEKDAY_1W,
)

log = logging.getLogger(__name__)

MODEL, SEASONAL_NAIVE, TRAILING_MEAN = "gbt", "seasonal_naive", "trailing_mean_7d"
MODELS = (MODEL, SEASONAL_NAIVE, TRAILING_MEAN)  # prediction column names, in views
PREDICTION = "prediction"  # the pipeline's output (MLflow's pyfunc reads this column)
RAW_PREDICTION = "log_ratio_prediction"

# Back to views: the level times the predicted ratio, never negative, and nothing before
# release (no view can start before a title exists; the generator and the service agree).
# SQLTransformer is MLlib's way to carry an expression inside a saved pipeline; the
# statement holds column names only, never values.
_TO_VIEWS = (
    f"SELECT *, CASE WHEN {RELEASE_AGE} < 0 THEN 0.0 "
    f"ELSE GREATEST(EXP({RAW_PREDICTION} + {LEVEL}) - 1.0, 0.0) END AS {PREDICTION} "
    "FROM __THIS__"
)


@dataclasses.dataclass(frozen=True)
class GBTParams:
    """Gradient boosting settings. 60 shallow trees with shrinkage 0.1 fit a ratio that
    starts near 0 well; subsampling rows decorrelates the trees (stochastic GB)."""

    max_iter: int = 60
    max_depth: int = 5
    step_size: float = 0.1
    subsampling_rate: float = 0.8
    min_instances_per_node: int = 20
    max_bins: int = 64
    seed: int = 7

    def as_dict(self) -> dict[str, float | int]:
        """The settings by field name (for a run's params)."""
        return dataclasses.asdict(self)


def build_pipeline(params: GBTParams) -> Pipeline:
    """The unfitted pipeline: index categories, assemble, boost, back to views."""
    indexed = [f"{c}_index" for c in CATEGORICAL_FEATURES]
    return Pipeline(
        stages=[
            # unseen regions or kinds at forecast time get their own index, not an error
            StringIndexer(
                inputCols=list(CATEGORICAL_FEATURES), outputCols=indexed, handleInvalid="keep"
            ),
            VectorAssembler(inputCols=[*NUMERIC_FEATURES, *indexed], outputCol="features"),
            GBTRegressor(
                featuresCol="features",
                labelCol=LABEL,
                predictionCol=RAW_PREDICTION,
                lossType="squared",
                maxIter=params.max_iter,
                maxDepth=params.max_depth,
                stepSize=params.step_size,
                subsamplingRate=params.subsampling_rate,
                minInstancesPerNode=params.min_instances_per_node,
                maxBins=params.max_bins,
                seed=params.seed,
            ),
            SQLTransformer(statement=_TO_VIEWS),
        ]
    )


def fit(training: DataFrame, params: GBTParams) -> PipelineModel:
    """The pipeline fitted on rows with a label, of titles released by their origin.

    Rows of titles not yet released at the origin are left out: their level is 0, so
    their label is log views, not a ratio, and mixed into the same trees those launch
    volumes leaked into released titles' forecasts (in the backtest a series on its
    launch day was forecast 40x its actual views, via the one genre only it and its own
    pre-release rows had). Such titles get what the model says for a series without
    history -- about 0 -- until their first day is observed: a launch model is the
    missing piece.
    """
    return fit_counted(training, params)[0]


def fit_counted(training: DataFrame, params: GBTParams) -> tuple[PipelineModel, int]:
    """:func:`fit`, and the number of rows the model learnt from (counted on the cached
    input, which the count fills for the fit)."""
    rows = training.filter(F.col(LABEL).isNotNull() & (F.col(RELEASE_AGE_AT_ORIGIN) >= 0))
    with fitting_input(rows) as cached:
        count = cached.count()
        return build_pipeline(params).fit(cached), count


@contextlib.contextmanager
def fitting_input(rows: DataFrame, *, partitions: int | None = None) -> Iterator[DataFrame]:
    """``rows`` cached, in at most ``partitions`` partitions (default: the cores), for the
    length of one fit.

    A pipeline fit reads its input several times before GBT bins it (the indexer, the
    trees' metadata and split candidates, the binning) and every tree level is a Spark
    job with a task per partition: cached, those reads cost nothing, and with as many
    partitions as cores no task waits for a core (a 400,000-row fit here took 27 s for
    15 trees this way against 59 s straight from the 8-partition examples)."""
    spark = rows.sparkSession
    wanted = partitions or spark.sparkContext.defaultParallelism
    cached = rows.coalesce(max(1, wanted)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield cached
    finally:
        cached.unpersist()


def with_predictions(rows: DataFrame, model: PipelineModel) -> DataFrame:
    """``rows`` with the model's and both baselines' forecasts (views), one column each."""
    keep = rows.columns
    scored = model.transform(rows).select(*keep, F.col(PREDICTION).alias(MODEL))
    return with_baselines(scored)


def with_baselines(rows: DataFrame) -> DataFrame:
    """Seasonal naive and 7-day trailing mean forecasts, from the rows' raw columns."""
    return rows.withColumn(SEASONAL_NAIVE, F.col(SAME_WEEKDAY_1W)).withColumn(
        TRAILING_MEAN, F.col(MEAN_7D)
    )


def feature_importances(model: PipelineModel) -> dict[str, float]:
    """The GBT's importance per input feature (for the run's record)."""
    gbt = model.stages[2]
    names = [*NUMERIC_FEATURES, *[f"{c}_index" for c in CATEGORICAL_FEATURES]]
    values = gbt.featureImportances.toArray()
    return dict(sorted(zip(names, values, strict=True), key=lambda kv: -kv[1]))

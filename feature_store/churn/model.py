"""Churn classifiers in Spark MLlib: gradient-boosted trees, and logistic regression as
the baseline, both trained with class weights.

Cancels are rare (a few percent of accounts a month), so each class gets the weight
that makes the two weigh the same in the loss; otherwise the trees spend their splits
on the majority class. Weighting multiplies the odds a model learns by w_pos / w_neg,
so every probability it gives is shifted back (`corrected_probability`, the prior
correction of King and Zeng 2001): log loss and the reliability diagram judge the
corrected values, and those are what scoring publishes.
"""

from __future__ import annotations

import dataclasses
import logging

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feature_store.churn.data import ACCOUNT_FEATURES, LABEL, PROFILE_AGGREGATES

log = logging.getLogger(__name__)

CATEGORICAL = ("plan", "region")
WATCHED_30D = "watched_in_30d"
NUMERIC = (
    *[f for f in ACCOUNT_FEATURES if f not in CATEGORICAL],
    *PROFILE_AGGREGATES,
    WATCHED_30D,
)
FEATURES = (*CATEGORICAL, *NUMERIC)
WEIGHT = "class_weight"
PROBABILITY = "churn_probability"
NO_WATCH_DAYS = 30  # days_since_last_watch when the household watched nothing in 30 days

# Shallow trees and a small step: on a few thousand accounts deeper trees found "churn
# regions" and "churn tenures" in noise (the generator's hazard depends on neither) and
# ranked worse than logistic regression on held-out accounts.
GBT_PARAMS = {
    "maxIter": 80,
    "maxDepth": 3,
    "stepSize": 0.05,
    "subsamplingRate": 0.8,
    "minInstancesPerNode": 40,
    "seed": 42,
}
LOGISTIC_PARAMS = {"regParam": 0.001, "elasticNetParam": 0.0, "maxIter": 200}

# Values that stand in for missing ones, with why: a null is information here.
_FILL = {
    "days_since_last_watch": NO_WATCH_DAYS,  # nothing watched in the 30-day lookback
    "trend_watch_hours_per_day_7d_vs_prior_21d": 0.0,
    "mean_profile_completion_rate_28d": 0.0,  # no views to complete
    "min_profile_trend_watch_hours_per_day": 0.0,
    "share_idle_profiles_28d": 1.0,  # no profile rows: nobody watched
}


def prepare(frame: DataFrame) -> DataFrame:
    """Fill the nulls of the snapshot features (see `_FILL`; counts and hours: 0) and add
    `watched_in_30d`, so both models see the same complete columns."""
    numeric = [f for f in NUMERIC if f != WATCHED_30D]
    fills = {f: _FILL.get(f, 0) for f in numeric}
    watched = F.col("days_since_last_watch").isNotNull().cast("double")
    return frame.withColumn(WATCHED_30D, watched).fillna(fills)


@dataclasses.dataclass(frozen=True)
class ClassWeights:
    positive: float
    negative: float

    @classmethod
    def balanced(cls, positives: int, rows: int) -> ClassWeights:
        """Each class weighs half of the rows in total."""
        negatives = rows - positives
        if positives == 0 or negatives == 0:
            raise ValueError(
                f"training rows need both classes: {positives} cancels among {rows} rows"
            )
        return cls(rows / (2.0 * positives), rows / (2.0 * negatives))

    def column(self) -> Column:
        """Each row's weight by its label: `positive` for cancels, `negative` otherwise."""
        return F.when(F.col(LABEL) == 1, self.positive).otherwise(self.negative)

    def correct(self, probability: Column) -> Column:
        """The probability under the data's own class balance."""
        up = probability * self.negative
        return up / (up + (1.0 - probability) * self.positive)


def _indexers() -> list:
    return [
        StringIndexer(
            inputCols=list(CATEGORICAL),
            outputCols=[f"{c}_index" for c in CATEGORICAL],
            handleInvalid="keep",  # a region or plan never seen in training: its own index
            stringOrderType="alphabetAsc",
        )
    ]


def gbt_pipeline(params: dict | None = None) -> Pipeline:
    """The unfitted gradient-boosted trees pipeline; `params` override `GBT_PARAMS`."""
    # StringIndexer marks its outputs nominal and VectorAssembler keeps that, so the
    # trees split plan and region as categories, not as ordered numbers.
    assembler = VectorAssembler(
        inputCols=[*NUMERIC, *[f"{c}_index" for c in CATEGORICAL]], outputCol="features"
    )
    gbt = GBTClassifier(
        labelCol=LABEL, weightCol=WEIGHT, featuresCol="features", **{**GBT_PARAMS, **(params or {})}
    )
    return Pipeline(stages=[*_indexers(), assembler, gbt])


def logistic_pipeline(params: dict | None = None) -> Pipeline:
    """The unfitted logistic regression pipeline; `params` override `LOGISTIC_PARAMS`."""
    encoder = OneHotEncoder(
        inputCols=[f"{c}_index" for c in CATEGORICAL],
        outputCols=[f"{c}_onehot" for c in CATEGORICAL],
        handleInvalid="keep",
    )
    assembler = VectorAssembler(
        inputCols=[*NUMERIC, *[f"{c}_onehot" for c in CATEGORICAL]], outputCol="features"
    )
    logistic = LogisticRegression(
        labelCol=LABEL,
        weightCol=WEIGHT,
        featuresCol="features",
        standardization=True,
        **{**LOGISTIC_PARAMS, **(params or {})},
    )
    return Pipeline(stages=[*_indexers(), encoder, assembler, logistic])


@dataclasses.dataclass
class ChurnClassifier:
    """A fitted pipeline and the class weights it was trained with."""

    name: str
    pipeline: PipelineModel
    weights: ClassWeights
    params: dict

    def probabilities(self, prepared: DataFrame) -> DataFrame:
        """`prepared` rows plus `churn_probability` (prior-corrected)."""
        scored = self.pipeline.transform(prepared)
        raw = vector_to_array(F.col("probability"))[1]
        return scored.select(*prepared.columns, self.weights.correct(raw).alias(PROBABILITY))

    def feature_importances(self) -> dict[str, float]:
        """Trees: MLlib's importances per input column (categories under their own name);
        logistic regression: |coefficient| on the standardized scale is not comparable
        across one-hot columns, so it reports none."""
        model = self.pipeline.stages[-1]
        if not hasattr(model, "featureImportances"):
            return {}
        names = [*NUMERIC, *CATEGORICAL]
        values = model.featureImportances.toArray()
        return dict(sorted(zip(names, map(float, values), strict=True), key=lambda kv: -kv[1]))


def fit(
    name: str, pipeline: Pipeline, train: DataFrame, weights: ClassWeights, params: dict
) -> ChurnClassifier:
    """Fit `pipeline` on prepared, labelled rows weighted by `weights`."""
    log.info("churn: fitting %s", name)
    model = pipeline.fit(train.withColumn(WEIGHT, weights.column()))
    return ChurnClassifier(name, model, weights, params)


def fit_gbt(train: DataFrame, weights: ClassWeights, params: dict | None = None) -> ChurnClassifier:
    """Gradient-boosted trees fitted on `train`; `params` override `GBT_PARAMS`."""
    return fit("gbt", gbt_pipeline(params), train, weights, {**GBT_PARAMS, **(params or {})})


def fit_logistic(
    train: DataFrame, weights: ClassWeights, params: dict | None = None
) -> ChurnClassifier:
    """Logistic regression fitted on `train`; `params` override `LOGISTIC_PARAMS`."""
    merged = {**LOGISTIC_PARAMS, **(params or {})}
    return fit("logistic", logistic_pipeline(params), train, weights, merged)

"""From a churn classifier to what a retention team acts on: a probability, a risk band
and the top reasons, per account.

Bands are fixed at training as quantiles of the training rows' probabilities (top 10%
"high", the next 20% "medium"). Reasons: the features whose typical value, set one at a
time, lowers the account's probability most, with the size of that drop. All variants are
scored in one pass (rows x candidates) and regrouped with one shuffle. Why: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store.churn.model import (
    CATEGORICAL,
    NUMERIC,
    PROBABILITY,
    ChurnClassifier,
    ClassWeights,
    prepare,
)

HIGH_SHARE = 0.10
MEDIUM_SHARE = 0.20
REASON_CANDIDATES = 6
REASONS = 3
_VARIANT = "__variant"
_NO_CHANGE = "__none"
REASON_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("feature", T.StringType()),
            T.StructField("value", T.StringType()),
            T.StructField("typical", T.StringType()),
            T.StructField("effect", T.DoubleType()),
        ]
    )
)


@dataclasses.dataclass
class ChurnScorer:
    classifier: ChurnClassifier
    typical: dict[str, float | str]  # per feature: training median or most frequent value
    high_threshold: float  # probability at which the top HIGH_SHARE of training rows start
    medium_threshold: float
    reason_features: tuple[str, ...]

    @classmethod
    def fit(cls, classifier: ChurnClassifier, train: DataFrame) -> ChurnScorer:
        """Typical values and band thresholds from prepared training rows."""
        medians = train.approxQuantile(list(NUMERIC), [0.5], 0.001)
        typical: dict[str, float | str] = {
            f: float(m[0]) for f, m in zip(NUMERIC, medians, strict=True)
        }
        for column in CATEGORICAL:
            mode = train.groupBy(column).count().orderBy(F.desc("count"), column).first()
            typical[column] = mode[0]
        probabilities = classifier.probabilities(train)
        high, medium = probabilities.approxQuantile(
            PROBABILITY, [1 - HIGH_SHARE, 1 - HIGH_SHARE - MEDIUM_SHARE], 0.001
        )
        importances = classifier.feature_importances()
        reason_features = tuple(list(importances)[:REASON_CANDIDATES]) or tuple(
            NUMERIC[:REASON_CANDIDATES]
        )
        return cls(classifier, typical, float(high), float(medium), reason_features)

    def score(self, rows: DataFrame, keys: tuple[str, ...] = ("account_id",)) -> DataFrame:
        """keys + churn_probability, risk_band, reasons for snapshot rows (unprepared)."""
        prepared = prepare(rows).select(*keys, *NUMERIC, *CATEGORICAL)
        variants = prepared.sparkSession.createDataFrame(
            [(_NO_CHANGE,), *[(f,) for f in self.reason_features]], [_VARIANT]
        )
        expanded = prepared.crossJoin(F.broadcast(variants)).select(
            *keys,
            _VARIANT,
            *[
                F.when(F.col(_VARIANT) == f, F.lit(self.typical[f]))
                .otherwise(F.col(f))
                .cast(prepared.schema[f].dataType)
                .alias(f)
                if f in self.reason_features
                else F.col(f)
                for f in (*NUMERIC, *CATEGORICAL)
            ],
            *[F.col(f).alias(f"__actual_{f}") for f in self.reason_features],
        )
        scored = self.classifier.probabilities(expanded)
        grouped = scored.groupBy(*keys).agg(
            F.max(F.when(F.col(_VARIANT) == _NO_CHANGE, F.col(PROBABILITY))).alias(PROBABILITY),
            F.collect_list(
                F.when(
                    F.col(_VARIANT) != _NO_CHANGE,
                    F.struct(
                        F.col(_VARIANT).alias("feature"),
                        F.col(PROBABILITY).alias("p_typical"),
                        self._actual_value().alias("value"),
                    ),
                )
            ).alias("_variants"),
        )
        p = F.col(PROBABILITY)
        effects = F.transform(
            F.col("_variants"),
            lambda v: F.struct(
                v["feature"].alias("feature"),
                v["value"].alias("value"),
                self._typical_text(v["feature"]).alias("typical"),
                (p - v["p_typical"]).alias("effect"),
            ),
        )
        raising = F.filter(effects, lambda r: r["effect"] > 0)
        ordered = F.array_sort(
            raising,
            lambda a, b: (
                F.when(a["effect"] > b["effect"], -1)
                .when(a["effect"] < b["effect"], 1)
                .otherwise(0)
            ),
        )
        return grouped.select(
            *keys,
            p,
            F.when(p >= self.high_threshold, "high")
            .when(p >= self.medium_threshold, "medium")
            .otherwise("low")
            .alias("risk_band"),
            F.slice(ordered, 1, REASONS).cast(REASON_TYPE).alias("reasons"),
        )

    def _actual_value(self):
        """The account's own value of the variant's feature, as text."""
        value = F.lit(None).cast("string")
        for f in self.reason_features:
            actual = F.col(f"__actual_{f}")
            value = F.when(F.col(_VARIANT) == f, _as_text(f, actual)).otherwise(value)
        return value

    def _typical_text(self, feature):
        mapping = F.create_map(
            *[
                item
                for f in self.reason_features
                for item in (F.lit(f), _as_text(f, F.lit(self.typical[f])))
            ]
        )
        return mapping[feature]

    # --- saving -------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """The Spark pipeline under `pipeline/`, the rest in `scorer.json`."""
        folder.mkdir(parents=True, exist_ok=True)
        self.classifier.pipeline.write().overwrite().save(str(folder / "pipeline"))
        meta = {
            "classifier": self.classifier.name,
            "params": self.classifier.params,
            "weights": dataclasses.asdict(self.classifier.weights),
            "typical": self.typical,
            "high_threshold": self.high_threshold,
            "medium_threshold": self.medium_threshold,
            "reason_features": list(self.reason_features),
            "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        (folder / "scorer.json").write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> ChurnScorer:
        """The scorer `save` wrote to `folder`."""
        meta = json.loads((folder / "scorer.json").read_text())
        classifier = ChurnClassifier(
            meta["classifier"],
            PipelineModel.load(str(folder / "pipeline")),
            ClassWeights(**meta["weights"]),
            meta["params"],
        )
        return cls(
            classifier,
            meta["typical"],
            meta["high_threshold"],
            meta["medium_threshold"],
            tuple(meta["reason_features"]),
        )


def _as_text(feature: str, value):
    """Feature values in reasons: categories as they are, numbers to three decimals."""
    if feature in CATEGORICAL:
        return value.cast("string")
    return F.round(value.cast("double"), 3).cast("string")

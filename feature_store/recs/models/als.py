"""Implicit-feedback matrix factorisation with Spark MLlib's ALS (Hu, Koren & Volinsky 2008).

Spark trains the factors; scoring is a NumPy matrix product of the collected factors, never
a Spark cross join. Each training row becomes a preference of 1 with confidence
1 + alpha * value, where ``confidence`` sets ``value``: ``"rating"``, ``"binary"`` or
``"centered"``. Factors are checkpointed every ``checkpoint_interval`` iterations, into
``checkpoint_dir`` or else a temporary folder removed at exit: ALS's lineage grows with
every iteration. More: docs/models.md.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession
from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

from feature_store.recs.models.base import RATING, Recommender

log = logging.getLogger(__name__)

_OWNED_CHECKPOINT_DIRS: set[str] = set()  # temporary folders this module created

CONFIDENCES = ("rating", "binary", "centered")
_SCHEMA = StructType(
    [
        StructField("user", IntegerType(), False),
        StructField("item", IntegerType(), False),
        StructField("value", FloatType(), False),
    ]
)


class ImplicitALS(Recommender):
    """Spark ``ALS(implicitPrefs=True)`` on the training rows, scored in NumPy."""

    name = "als"

    def __init__(
        self,
        spark: SparkSession,
        *,
        rank: int = 64,
        reg: float = 0.5,
        alpha: float = 3.0,
        iterations: int = 15,
        confidence: str = "centered",
        center: float = 2.5,
        blocks: int = 2,
        seed: int = 42,
        checkpoint_interval: int = 5,
        checkpoint_dir: str | None = None,
    ):
        if confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}, not {confidence!r}")
        self.spark = spark
        self.rank, self.reg, self.alpha, self.iterations = rank, reg, alpha, iterations
        self.confidence, self.center, self.blocks, self.seed = confidence, center, blocks, seed
        self.checkpoint_interval, self.checkpoint_dir = checkpoint_interval, checkpoint_dir

    def params(self) -> dict:
        """The settings for a run's params (`center` only with centred confidence)."""
        return {
            "rank": self.rank,
            "reg": self.reg,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "confidence": self.confidence,
            **({"center": self.center} if self.confidence == "centered" else {}),
        }

    def _values(self, train: pd.DataFrame) -> np.ndarray:
        if self.confidence == "binary":
            return np.ones(len(train), dtype=np.float32)
        if RATING not in train.columns:
            raise ValueError(f"confidence={self.confidence!r} needs a {RATING!r} column")
        ratings = train[RATING].to_numpy(np.float32)
        return ratings - self.center if self.confidence == "centered" else ratings

    def fit(self, train: pd.DataFrame) -> ImplicitALS:
        """Factorise `train` with Spark's ALS and collect the factors; returns the model."""
        self.data = self._interactions(train)
        rows = pd.DataFrame(
            {
                "user": self.data.rows.astype(np.int32),
                "item": self.data.cols.astype(np.int32),
                "value": self._values(train),
            }
        )
        # Spark regularises a user (an item) by reg x its positive rows. One with only
        # negative evidence (centered low ratings) gets no regularisation, and its normal
        # equations can be singular; it has no preference to factorise either, so it is
        # left out (zero factors: it scores 0).
        positive = rows[rows["value"] > 0]
        rows = rows[rows["user"].isin(positive["user"]) & rows["item"].isin(positive["item"])]
        frame = self.spark.createDataFrame(rows, _SCHEMA)
        rank = self.rank
        als = ALS(
            rank=rank,
            maxIter=self.iterations,
            regParam=self.reg,
            alpha=self.alpha,
            implicitPrefs=True,
            nonnegative=False,
            userCol="user",
            itemCol="item",
            ratingCol="value",
            numUserBlocks=self.blocks,
            numItemBlocks=self.blocks,
            seed=self.seed,
            checkpointInterval=self.checkpoint_interval,
        )
        self._ensure_checkpoint_dir()
        model = als.fit(frame)
        self.user_factors = _factors(model.userFactors, self.data.n_users, rank)
        self.item_factors = _factors(model.itemFactors, self.data.n_items, rank)
        self._drop_checkpoints()
        log.info(
            "ALS rank %d: %d users x %d items factorised",
            rank,
            self.data.n_users,
            self.data.n_items,
        )
        return self

    def _ensure_checkpoint_dir(self) -> None:
        sc = self.spark.sparkContext
        if self.iterations <= self.checkpoint_interval or sc.getCheckpointDir() is not None:
            return
        if self.checkpoint_dir:
            sc.setCheckpointDir(self.checkpoint_dir)
            return
        folder = tempfile.mkdtemp(prefix="marquee-als-checkpoints-")
        _OWNED_CHECKPOINT_DIRS.add(folder)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        log.info("ALS: checkpointing into %s (the session had no checkpoint folder)", folder)
        sc.setCheckpointDir(folder)

    def _drop_checkpoints(self) -> None:
        """Empty a temporary checkpoint folder of ours: the factors are collected by now."""
        current = self.spark.sparkContext.getCheckpointDir()
        for folder in _OWNED_CHECKPOINT_DIRS:
            if current and Path(current.removeprefix("file:")).is_relative_to(folder):
                for child in Path(current.removeprefix("file:")).glob("*"):
                    shutil.rmtree(child, ignore_errors=True)

    def score_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """The users' factors times every item's factors."""
        return self.user_factors[user_idx] @ self.item_factors.T

    def __getstate__(self) -> dict:
        """Pickle the factors without the Spark session (a fitted model scores in NumPy)."""
        return {**self.__dict__, "spark": None}


def _factors(frame, n: int, rank: int) -> np.ndarray:
    """Spark's (id, features) factor rows as an n x rank array (zeros for absent ids)."""
    out = np.zeros((n, rank), dtype=np.float32)
    rows = frame.toPandas()
    if len(rows):
        out[rows["id"].to_numpy()] = np.stack(rows["features"].to_numpy())
    return out

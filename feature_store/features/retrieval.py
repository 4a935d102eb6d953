"""The one door through which models read the feature store.

A `FeatureStoreReader` gives a model the declared feature tables (one partition, the
partitions up to a date, or a point-in-time training set), the declared dimensions
(the title catalogue as known on a date) and the declared bronze sources that hold its
labels and outcomes. Each table is read at one Delta version, pinned on its first read
and recorded in `versions` (feature tables by name, sources as ``bronze.<source>``), so
a run's inputs can be rebuilt by time travel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features import transforms as tf
from feature_store.features.definitions import AS_OF
from feature_store.features.tables import DIMENSIONS, REGISTRY
from feature_store.features.training import TrainingSet, get_training_set
from feature_store.sources import SOURCES

BRONZE_LINEAGE = "bronze."


class MissingFeatureData(RuntimeError):
    """A table a model asked for is not in the lake, or holds nothing it can use."""


class FeatureStoreReader:
    """Reads for one model run, each table at the version it had on first read.

    ``error``: the exception class raised when a table is missing or empty, so that a
    model's callers see its own error type. ``versions``: lineage to read at instead of
    the current versions (a rebuild of an earlier run)."""

    def __init__(
        self,
        spark: SparkSession,
        lake_root: str,
        *,
        error: type[Exception] = MissingFeatureData,
        versions: Mapping[str, int] | None = None,
    ):
        self.spark = spark
        self.lake = lk.Lake(lake_root)
        self.versions: dict[str, int] = {}
        self._error = error
        self._requested = dict(versions or {})

    # --- feature tables --------------------------------------------------------------

    def features(
        self, table: str, *, as_of: dt.date | None = None, through: dt.date | None = None
    ) -> DataFrame:
        """A declared feature table's rows: the ``as_of`` partition, the partitions up to
        ``through``, or all of them."""
        path = self.lake.features(table)
        rows = lk.read_table(self.spark, path, version=self._feature_version(table))
        if as_of is not None:
            rows = rows.filter(F.col(AS_OF) == F.lit(as_of))
        if through is not None:
            rows = rows.filter(F.col(AS_OF) <= F.lit(through))
        return rows

    def partition_dates(self, table: str, *, through: dt.date | None = None) -> list[dt.date]:
        """The as-of dates the table holds (up to ``through``), in order."""
        rows = self.features(table, through=through).select(AS_OF).distinct()
        return sorted(r[AS_OF] for r in rows.collect())  # one row per date: hundreds at most

    def training_set(
        self, spine: DataFrame, features: Mapping[str, Sequence[str]], **options: Any
    ) -> TrainingSet:
        """The point-in-time join of ``spine`` with ``features`` ({table: [feature]}),
        each table at this reader's version (`features.training.get_training_set`)."""
        versions = {t: self._feature_version(t) for t in features}
        return get_training_set(
            self.spark, self.lake.root, spine, features, versions=versions, **options
        )

    # --- dimensions and sources --------------------------------------------------------

    def dimension(self, name: str, *, as_of: dt.date) -> DataFrame:
        """A declared dimension as known at the end of ``as_of``: one row per key."""
        try:
            dimension = DIMENSIONS[name]
        except KeyError:
            declared = ", ".join(DIMENSIONS)
            raise KeyError(f"unknown dimension {name!r}; declared: {declared}") from None
        records = self.source(dimension.source)
        (key,) = dimension.entity.keys
        return tf.latest_version(records, key=key, as_of=as_of).select(*dimension.columns)

    def source(
        self, name: str, *, after: dt.date | None = None, through: dt.date | None = None
    ) -> DataFrame:
        """A declared bronze source's records with event dates in (``after``, ``through``]
        (either bound may be left open): labels and outcomes, never features."""
        if name not in SOURCES:
            raise KeyError(f"unknown source {name!r}; declared: {', '.join(SOURCES)}")
        path = self.lake.bronze(name)
        missing = f"no bronze {name} table under {self.lake.root}/bronze: ingest it first"
        rows = lk.read_table(
            self.spark, path, version=self._pin(BRONZE_LINEAGE + name, path, missing)
        )
        if after is not None:
            rows = rows.filter(F.col("event_date") > F.lit(after))
        if through is not None:
            rows = rows.filter(F.col("event_date") <= F.lit(through))
        return rows

    def source_span(self, name: str) -> tuple[dt.date, dt.date]:
        """The first and last event dates of a bronze source."""
        first, last = self.source(name).select(F.min("event_date"), F.max("event_date")).first()
        if first is None:
            raise self._error(f"bronze {name} at {self.lake.bronze(name)} is empty")
        return first, last

    # ----------------------------------------------------------------------------------

    def _feature_version(self, table: str) -> int:
        """The version a declared feature table is read at (pinned on first use)."""
        REGISTRY.get(table)  # an undeclared name fails here, with the declared ones
        missing = (
            f"no {table} table under {self.lake.root}/features: build it first "
            f"(`marquee features build --start A --end B --table {table}`)"
        )
        return self._pin(table, self.lake.features(table), missing)

    def _pin(self, lineage: str, path: str, missing: str) -> int:
        """The version to read ``path`` at: pinned on first read, then kept."""
        if lineage not in self.versions:
            if lineage in self._requested:
                self.versions[lineage] = self._requested[lineage]
            elif not lk.table_exists(self.spark, path):
                raise self._error(missing)
            else:
                self.versions[lineage] = lk.table_version(self.spark, path)
        return self.versions[lineage]

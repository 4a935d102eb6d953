"""The audit trail of model aliases: one Delta row per alias change or refused promotion.

Append-only (``<lake>/registry/model_aliases``): rows are never updated or deleted, so the
table is the history rollback reads to find the champion before the current one. A row:
when (UTC), which model and alias, from which version to which, the gate's metrics, the
reason, who, and the outcome: ``set``, ``promoted``, ``refused`` or ``rolled_back``
(what each means: docs/registry-and-publishing.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk

SET, PROMOTED, REFUSED, ROLLED_BACK = "set", "promoted", "refused", "rolled_back"
OUTCOMES = (SET, PROMOTED, REFUSED, ROLLED_BACK)

SCHEMA = T.StructType(
    [
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("model", T.StringType(), False),
        T.StructField("alias", T.StringType(), False),
        T.StructField("from_version", T.StringType(), True),
        T.StructField("to_version", T.StringType(), True),
        T.StructField("outcome", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("metrics", T.MapType(T.StringType(), T.DoubleType()), False),
        T.StructField("actor", T.StringType(), False),
    ]
)


@dataclasses.dataclass(frozen=True)
class AliasEvent:
    event_time: dt.datetime  # timezone-aware, UTC
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    outcome: str
    reason: str
    metrics: Mapping[str, float]
    actor: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.event_time.tzinfo is None:
            raise ValueError("event_time must be timezone-aware (UTC)")


def now() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def append_events(spark: SparkSession, path: str, events: Sequence[AliasEvent]) -> None:
    """Append ``events`` to the audit table at ``path`` (created on first use)."""
    rows = [
        (
            e.event_time,
            e.model,
            e.alias,
            e.from_version,
            e.to_version,
            e.outcome,
            e.reason,
            {k: float(v) for k, v in e.metrics.items()},
            e.actor,
        )
        for e in events
    ]
    lk.append(spark.createDataFrame(rows, SCHEMA), path)


def audit_table(spark: SparkSession, path: str) -> DataFrame | None:
    """The whole table, or None before the first alias change."""
    return lk.read_table(spark, path) if lk.table_exists(spark, path) else None


def read_events(spark: SparkSession, path: str, model: str) -> list[AliasEvent]:
    """Every row of ``model``, oldest first."""
    table = audit_table(spark, path)
    if table is None:
        return []
    rows = table.filter(F.col("model") == F.lit(model)).orderBy("event_time").collect()
    return [
        AliasEvent(
            # collected timestamps are naive, in the Python process's local time
            event_time=row.event_time.astimezone(dt.UTC),
            model=row.model,
            alias=row.alias,
            from_version=row.from_version,
            to_version=row.to_version,
            outcome=row.outcome,
            reason=row.reason,
            metrics=dict(row.metrics),
            actor=row.actor,
        )
        for row in rows
    ]


@dataclasses.dataclass(frozen=True)
class AuditLog:
    """The audit table at ``path``, read and written through ``spark``."""

    spark: SparkSession
    path: str

    def append(self, *events: AliasEvent) -> None:
        """Append `events` to the table."""
        append_events(self.spark, self.path, events)

    def events(self, model: str) -> list[AliasEvent]:
        """Every event of `model`, oldest first."""
        return read_events(self.spark, self.path, model)

"""Labelled churn snapshots, built with the point-in-time API.

A snapshot date S stands for the end of day S: the accounts in `account_daily` as of S get
the features of `account_daily` and of their profiles' `profile_daily` rows, joined
point-in-time at the first instant after S, and the label 1 when bronze `subscriptions`
holds a cancel event of the account dated S + 1 to S + horizon, else 0. A snapshot whose
horizon reaches past the last day with subscription events is refused. Cancels come from
the subscription log, never from a generator's truth. More: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.features.definitions import AS_OF
from feature_store.features.retrieval import FeatureStoreReader
from feature_store.features.tables import ACCOUNT_DAILY, PROFILE_DAILY
from feature_store.features.training import feature_column_name

HORIZON_DAYS = 30
SNAPSHOT_TABLES = (ACCOUNT_DAILY.name, PROFILE_DAILY.name)  # what a snapshot date needs built
SNAPSHOT = "snapshot_date"
LABEL = "label"
CANCEL_DATE = "cancel_date"
TS = "ts"

# Every feature of account_daily but its timestamps (plan and region first: categorical).
ACCOUNT_FEATURES = (
    "plan",
    "region",
    *[
        c.name
        for c in ACCOUNT_DAILY.columns
        if c.name not in (*ACCOUNT_DAILY.keys, "plan", "region") and c.dtype != "timestamp"
    ],
)


def _share_idle(watch_hours: Column) -> Column:
    return F.avg(F.when(F.coalesce(watch_hours, F.lit(0.0)) > 0, 0.0).otherwise(1.0))


# Per account, over its profiles: what the household totals hide (one profile gone quiet, a
# household that searches but finds nothing it finishes). (name, profile_daily feature,
# aggregate); the profile features read are derived from these.
_PROFILE_AGGREGATION = (
    ("sum_profile_distinct_titles_28d", "count_distinct_titles_28d", F.sum),
    ("mean_profile_completion_rate_28d", "completion_rate_28d", F.avg),
    ("sum_profile_searches_28d", "count_searches_28d", F.sum),
    ("sum_profile_thumbs_up_28d", "count_thumbs_up_28d", F.sum),
    ("sum_profile_thumbs_down_28d", "count_thumbs_down_28d", F.sum),
    ("min_profile_trend_watch_hours_per_day", "trend_watch_hours_per_day_7d_vs_prior_21d", F.min),
    ("share_idle_profiles_28d", "sum_watch_hours_28d", _share_idle),
)
PROFILE_AGGREGATES = tuple(name for name, _, _ in _PROFILE_AGGREGATION)
PROFILE_FEATURES = tuple(dict.fromkeys(feature for _, feature, _ in _PROFILE_AGGREGATION))
for _feature in PROFILE_FEATURES:  # a renamed profile_daily column fails on import
    PROFILE_DAILY.column(_feature)


class ChurnDataError(ValueError):
    """The lake cannot give the snapshots asked for; the message says what is missing."""


@dataclasses.dataclass(frozen=True)
class ChurnSnapshots:
    """Snapshot rows (account_id, snapshot_date, features[, label, cancel_date]) and
    what they were built from."""

    frame: DataFrame
    snapshots: tuple[dt.date, ...]
    horizon_days: int | None  # None: unlabelled (for scoring)
    table_versions: dict[str, int]  # feature tables and bronze.subscriptions
    labels_through: dt.date | None

    def lineage(self) -> dict:
        """What the snapshots were built from, as JSON-ready values (for a run's record)."""
        return {
            "snapshots": [s.isoformat() for s in self.snapshots],
            "horizon_days": self.horizon_days,
            "table_versions": dict(self.table_versions),
            "labels_through": self.labels_through.isoformat() if self.labels_through else None,
            "features": {
                ACCOUNT_DAILY.name: list(ACCOUNT_FEATURES),
                PROFILE_DAILY.name: list(PROFILE_FEATURES),
            },
        }


# --- pure transforms -------------------------------------------------------------------


def _snapshot_rows(rows: DataFrame, keys: Sequence[str], snapshots: Sequence[dt.date]):
    if not snapshots:
        raise ValueError("no snapshot dates given")
    return rows.filter(F.col(AS_OF).isin(list(snapshots))).select(
        *keys,
        F.col(AS_OF).alias(SNAPSHOT),
        # The first instant after the snapshot day: the point-in-time join then serves
        # the features as of that day and nothing later.
        F.date_add(F.col(AS_OF), 1).cast("timestamp").alias(TS),
    )


def snapshot_spine(account_rows: DataFrame, *, snapshots: Sequence[dt.date]) -> DataFrame:
    """(account_id, snapshot_date, ts): the accounts subscribed at the end of each date."""
    return _snapshot_rows(account_rows, ["account_id"], snapshots)


def profile_spine(profile_rows: DataFrame, *, snapshots: Sequence[dt.date]) -> DataFrame:
    """(profile_id, account_id, snapshot_date, ts): the profiles of each snapshot date."""
    return _snapshot_rows(profile_rows, ["profile_id", "account_id"], snapshots)


def aggregate_profiles(profile_set: DataFrame) -> DataFrame:
    """Per (account_id, snapshot_date): the profile aggregates of a point-in-time joined
    profile spine."""
    return profile_set.groupBy("account_id", SNAPSHOT).agg(
        *[
            aggregate(F.col(feature_column_name(PROFILE_DAILY.name, feature))).alias(name)
            for name, feature, aggregate in _PROFILE_AGGREGATION
        ]
    )


def with_labels(spine: DataFrame, cancels: DataFrame, *, horizon_days: int) -> DataFrame:
    """Add `label` (1: a cancel dated snapshot + 1 .. snapshot + horizon) and the first
    such `cancel_date` to spine rows keyed by (account_id, snapshot_date).

    `cancels`: (account_id, event_date) of cancel events.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1, got {horizon_days}")
    keys = spine.select("account_id", SNAPSHOT).distinct()
    in_window = (
        keys.join(cancels.select("account_id", "event_date"), "account_id")
        .filter(
            (F.col("event_date") > F.col(SNAPSHOT))
            & (F.col("event_date") <= F.date_add(F.col(SNAPSHOT), horizon_days))
        )
        .groupBy("account_id", SNAPSHOT)
        .agg(F.min("event_date").alias(CANCEL_DATE))
    )
    return spine.join(in_window, ["account_id", SNAPSHOT], "left").withColumn(
        LABEL, F.col(CANCEL_DATE).isNotNull().cast("int")
    )


# --- from the lake ---------------------------------------------------------------------


def feature_dates(spark: SparkSession, lake_root: str) -> list[dt.date]:
    """The as-of dates with both account_daily and profile_daily partitions."""
    return _feature_dates(FeatureStoreReader(spark, lake_root, error=ChurnDataError))


def _feature_dates(store: FeatureStoreReader) -> list[dt.date]:
    dates = [set(store.partition_dates(t)) for t in SNAPSHOT_TABLES]
    return sorted(set.intersection(*dates))


def labels_observed_through(spark: SparkSession, lake_root: str) -> dt.date:
    """The last day of the subscription log: cancels are known up to it."""
    store = FeatureStoreReader(spark, lake_root, error=ChurnDataError)
    return store.source_span("subscriptions")[1]


def viewing_starts(spark: SparkSession, lake_root: str) -> dt.date:
    """The first day of the viewing log: windowed features are partial before a while."""
    return FeatureStoreReader(spark, lake_root, error=ChurnDataError).source_span("viewing")[0]


def load_snapshots(
    spark: SparkSession,
    lake_root: str,
    snapshots: Sequence[dt.date],
    *,
    horizon_days: int | None = HORIZON_DAYS,
) -> ChurnSnapshots:
    """Snapshot rows for `snapshots`, labelled over `horizon_days` (None: unlabelled).

    The feature tables are read at one Delta version each, the spine included, and the
    versions recorded; the subscription log's version too when labelling.
    """
    snapshots = tuple(sorted(set(snapshots)))
    if not snapshots:
        raise ChurnDataError("no snapshot dates given")
    store = FeatureStoreReader(spark, lake_root, error=ChurnDataError)
    available = _feature_dates(store)
    missing = [s.isoformat() for s in snapshots if s not in available]
    if missing:
        raise ChurnDataError(
            f"no account_daily/profile_daily partition for snapshot dates {missing}; "
            f"built dates: {_span(available)}"
        )
    frame = _snapshot_features(store, snapshots)
    labels_through = None
    if horizon_days is not None:
        labels_through = store.source_span("subscriptions")[1]
        _check_labels_observed(snapshots, horizon_days, labels_through)
        cancels = store.source("subscriptions").filter(F.col("event_type") == "cancel")
        frame = with_labels(frame, cancels, horizon_days=horizon_days)
    return ChurnSnapshots(frame, snapshots, horizon_days, dict(store.versions), labels_through)


def _snapshot_features(store: FeatureStoreReader, snapshots: tuple[dt.date, ...]) -> DataFrame:
    """Per account and snapshot: its account features and its profiles' aggregates."""
    accounts, profiles = (store.features(t.name) for t in (ACCOUNT_DAILY, PROFILE_DAILY))
    account_set = store.training_set(
        snapshot_spine(accounts, snapshots=snapshots), {ACCOUNT_DAILY.name: ACCOUNT_FEATURES}
    ).frame
    profile_set = store.training_set(
        profile_spine(profiles, snapshots=snapshots), {PROFILE_DAILY.name: PROFILE_FEATURES}
    ).frame
    return account_set.select(
        "account_id",
        SNAPSHOT,
        *[F.col(feature_column_name(ACCOUNT_DAILY.name, f)).alias(f) for f in ACCOUNT_FEATURES],
    ).join(aggregate_profiles(profile_set), ["account_id", SNAPSHOT], "left")


def _check_labels_observed(
    snapshots: tuple[dt.date, ...], horizon_days: int, labels_through: dt.date
) -> None:
    """Refuse snapshots whose label window reaches past the subscription log's end: an
    unobserved window would read as "stayed"."""
    late = [s for s in snapshots if s + dt.timedelta(days=horizon_days) > labels_through]
    if late:
        raise ChurnDataError(
            f"snapshots {[s.isoformat() for s in late]} need cancellations through "
            f"{(late[-1] + dt.timedelta(days=horizon_days)).isoformat()} "
            f"({horizon_days}-day horizon), but the subscription log ends on "
            f"{labels_through.isoformat()}"
        )


def _span(dates: list[dt.date]) -> str:
    if not dates:
        return "none"
    return f"{len(dates)} from {dates[0].isoformat()} to {dates[-1].isoformat()}"

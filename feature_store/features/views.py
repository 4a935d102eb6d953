"""The views table: viewing events reduced to one row per view, kept day by day.

``<lake>/silver/views``, partitioned by ``view_date`` (the day the view started), holds the
views every viewing feature table starts from. The views of day D are made from the bronze
viewing partitions D-1, D and D+1, and are recomputed only when a fingerprint of those
partitions' files (``<lake>/ops/view_days``) changed. An as-of date's own day is never read
from the table: its views are cut at its midnight (`transforms.cut_views`). Why:
docs/feature-store.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features import transforms as tf

log = logging.getLogger(__name__)

VIEW_DATE = "view_date"
_PARTITION = re.compile(r"event_date=(\d{4}-\d{2}-\d{2})")


@dataclasses.dataclass(frozen=True)
class ViewsRefresh:
    """The views a set of as-of dates needs, and what the refresh did to get them."""

    rows: DataFrame  # tf.VIEW_COLUMNS: stored days pinned to `version`, cut days from bronze
    version: int | None  # of the views table; None when no stored day was needed
    recomputed: tuple[dt.date, ...]
    reused: tuple[dt.date, ...]


def refresh_views(
    spark: SparkSession,
    lake: lk.Lake,
    viewing: DataFrame,
    *,
    as_of_dates: Sequence[dt.date],
    lookback_days: int,
) -> ViewsRefresh:
    """The views the windows of ``as_of_dates`` (``lookback_days`` long) hold, from
    ``viewing`` (the bronze table, pinned at the version the build reads): the stored
    complete views of every earlier day, brought up to date once for the whole set, and
    each as-of date's own day cut at its midnight (all of them in one job)."""
    dates = sorted(set(as_of_dates))
    cut = tf.cut_views(viewing, as_of_dates=dates)
    stored_days = tf.complete_view_days(dates, lookback_days)
    if not stored_days:
        return ViewsRefresh(cut, None, (), ())
    prints = fingerprints(viewing, stored_days)
    stored = _stored_fingerprints(spark, lake, stored_days)
    stale = tuple(d for d in stored_days if stored.get(d) != prints[d])
    if stale:
        lk.replace_slice(
            _stored_form(tf.complete_views(viewing, days=stale)),
            lake.silver("views"),
            slice_values={VIEW_DATE: stale},
            partition_by=[VIEW_DATE],
        )
        _record(spark, lake, {d: prints[d] for d in stale})
    version = lk.table_version(spark, lake.silver("views"))
    views = (
        lk.read_table(spark, lake.silver("views"), version=version)
        .filter(F.col(VIEW_DATE).isin(stored_days))
        .withColumnRenamed(VIEW_DATE, "event_date")
        .withColumn(tf.CUT, F.lit(False))
        .select(*tf.VIEW_COLUMNS)
        .unionByName(cut)
    )
    reused = tuple(d for d in stored_days if d not in stale)
    log.info("views: %d days recomputed, %d reused (version %d)", len(stale), len(reused), version)
    return ViewsRefresh(views, version, stale, reused)


def _stored_form(views: DataFrame) -> DataFrame:
    """Complete views as the table keeps them: partitioned by the day they started."""
    return views.drop("event_date", tf.CUT).withColumn(VIEW_DATE, F.to_date("start_ts"))


def fingerprints(viewing: DataFrame, days: list[dt.date]) -> dict[dt.date, str]:
    """Per view date, a digest of the bronze files of the days its views are made from."""
    first, last = min(days) - dt.timedelta(days=1), max(days) + dt.timedelta(days=1)
    files = viewing.filter(
        (F.col("event_date") >= F.lit(first)) & (F.col("event_date") <= F.lit(last))
    ).inputFiles()
    by_day: dict[dt.date, list[str]] = defaultdict(list)
    for path in files:
        match = _PARTITION.search(path)
        if match:
            by_day[dt.date.fromisoformat(match.group(1))].append(path.rsplit("/", 1)[-1])
    out = {}
    for day in days:
        names = [
            f"{d.isoformat()}/{name}"
            for d in (day - dt.timedelta(days=1), day, day + dt.timedelta(days=1))
            for name in sorted(by_day.get(d, []))
        ]
        out[day] = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return out


def _stored_fingerprints(
    spark: SparkSession, lake: lk.Lake, days: list[dt.date]
) -> dict[dt.date, str]:
    """The fingerprint each day's stored views were made from (the latest record)."""
    if not lk.table_exists(spark, lake.view_days) or not lk.table_exists(
        spark, lake.silver("views")
    ):
        return {}
    rows = (
        lk.read_table(spark, lake.view_days)
        .filter(F.col(VIEW_DATE).isin(days))
        .groupBy(VIEW_DATE)
        .agg(F.max_by("fingerprint", "recorded_at").alias("fingerprint"))
        .collect()
    )
    return {r[VIEW_DATE]: r["fingerprint"] for r in rows}


def _record(spark: SparkSession, lake: lk.Lake, prints: dict[dt.date, str]) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [(day, digest, now) for day, digest in prints.items()]
    frame = spark.createDataFrame(
        rows, f"{VIEW_DATE} date, fingerprint string, recorded_at timestamp"
    )
    lk.append(frame, lake.view_days)

"""Materialize feature tables for an as-of date: read, transform, validate, commit.

For each requested table, in dependency order:
1. read the bronze partitions its window needs, pinned at the Delta version noted
   for lineage (a rebuild can time-travel to exactly the same input);
2. compute the declared columns (`transforms`), cast to the declared types, stamp
   `as_of_date` and `written_at`;
3. run the table's expectations (`validation`) on the computed partition;
4. passed: replace the `as_of_date` partition of `<lake>/features/<table>`
   (idempotent); failed: write the rows to `<lake>/quarantine/features/<table>`
   instead, so the table never shows them and earlier partitions stay as they were.
Every attempt is appended to `<lake>/ops/feature_builds`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.features import transforms as tf
from feature_store.features.definitions import AS_OF, FeatureTable
from feature_store.features.tables import REGISTRY
from feature_store.features.validation import ValidationOutcome, validate_partition
from feature_store.features.views import refresh_views

log = logging.getLogger(__name__)

COMMITTED, FAILED_VALIDATION, SKIPPED = "committed", "failed_validation", "skipped"
VIEWS_LINEAGE = "silver.views"  # the views table's version, beside the bronze versions
VIEW_TABLES = {
    "profile_daily",
    "account_daily",
    "title_daily",
    "region_title_daily",
    "profile_title_interactions",
}


class FeatureBuildError(RuntimeError):
    """A build could not start (missing input, unknown table)."""


@dataclasses.dataclass(frozen=True)
class TableBuild:
    table: str
    as_of: dt.date
    status: str
    rows: int
    seconds: float
    bronze_versions: dict[str, int]
    table_version: int | None = None
    validation: ValidationOutcome | None = None
    reason: str = ""
    # compute (transform and cache), validate, write: where the seconds went
    seconds_by_step: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BuildReport:
    as_of: dt.date
    builds: tuple[TableBuild, ...]

    @property
    def ok(self) -> bool:
        return all(b.status == COMMITTED for b in self.builds)

    def format_table(self) -> str:
        header = f"{'feature table':<28}{'status':<19}{'rows':>12}{'seconds':>9}{'version':>9}"
        lines = [f"features as of {self.as_of.isoformat()}", header, "-" * len(header)]
        for b in self.builds:
            version = "-" if b.table_version is None else str(b.table_version)
            lines.append(f"{b.table:<28}{b.status:<19}{b.rows:>12,}{b.seconds:>9.1f}{version:>9}")
        for b in self.builds:
            if b.validation is not None and not b.validation.success:
                lines.append(b.validation.summary())
            elif b.reason:
                lines.append(f"{b.table}: {b.reason}")
        return "\n".join(lines)


def build_order(names: Iterable[str] | None) -> list[FeatureTable]:
    """The requested tables (all by default), each after the tables it reads."""
    wanted = [REGISTRY.get(n) for n in names] if names else list(REGISTRY)
    ordered: list[FeatureTable] = []
    for table in sorted(wanted, key=lambda t: len(t.upstream_tables)):
        ordered.append(table)
    return ordered


def build_features(
    spark: SparkSession,
    config: Config,
    as_of: dt.date,
    tables: Iterable[str] | None = None,
) -> BuildReport:
    """Build, validate and commit the requested feature tables for one as-of date."""
    lake = lk.Lake(config.lake)
    ordered = build_order(tables)
    needed = sorted({s for t in ordered for s in t.sources})
    versions = _bronze_versions(spark, lake, needed)
    bronze = {s: _read_bronze(spark, lake, s, versions[s]) for s in needed}
    history_starts = _history_starts(bronze)
    written_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)

    view_lookback = max((t.lookback_days for t in ordered if t.name in VIEW_TABLES), default=0)
    view_rows = None
    if view_lookback:
        days = tf.window_days(as_of, view_lookback)
        refreshed = refresh_views(spark, lake, bronze["viewing"], days, as_of=as_of)
        if refreshed.version is not None:
            versions[VIEWS_LINEAGE] = refreshed.version
        view_rows = tf.with_days_ago(refreshed.rows, as_of=as_of).persist(
            StorageLevel.MEMORY_AND_DISK
        )
    builds: list[TableBuild] = []
    try:
        for table in ordered:
            failed_upstream = [
                b.table
                for b in builds
                if b.table in table.upstream_tables and b.status != COMMITTED
            ]
            if failed_upstream:
                builds.append(
                    TableBuild(
                        table.name,
                        as_of,
                        SKIPPED,
                        0,
                        0.0,
                        {},
                        reason=f"not built: upstream {', '.join(failed_upstream)} did not commit",
                    )
                )
                continue
            frame = _compute(
                spark,
                lake,
                table,
                bronze,
                view_rows,
                as_of,
                broadcast_max_rows=config.spark.broadcast_lookup_max_rows,
            )
            builds.append(
                _validate_and_commit(
                    spark,
                    lake,
                    table,
                    frame,
                    as_of=as_of,
                    written_at=written_at,
                    bronze_versions=_input_versions(table, versions),
                    history_start=_history_start(table, history_starts),
                )
            )
    finally:
        if view_rows is not None:
            view_rows.unpersist()
    report = BuildReport(as_of, tuple(builds))
    _record_builds(spark, lake, report, written_at)
    return report


def _compute(
    spark: SparkSession,
    lake: lk.Lake,
    table: FeatureTable,
    bronze: dict[str, DataFrame],
    view_rows: DataFrame | None,
    as_of: dt.date,
    *,
    broadcast_max_rows: int,
) -> DataFrame:
    if table.name == "profile_daily":
        return tf.profile_daily(
            view_rows,
            profiles=bronze["profiles"],
            titles=bronze["titles"],
            ratings=bronze["ratings"],
            searches=bronze["searches"],
            as_of=as_of,
        )
    if table.name == "account_daily":
        return tf.account_daily(
            view_rows,
            accounts=bronze["accounts"],
            profiles=bronze["profiles"],
            subscriptions=bronze["subscriptions"],
            as_of=as_of,
        )
    if table.name == "title_daily":
        return tf.title_daily(view_rows, titles=bronze["titles"], as_of=as_of)
    if table.name == "region_title_daily":
        return tf.region_title_daily(view_rows, as_of=as_of)
    if table.name == "profile_title_interactions":
        return tf.profile_title_interactions(
            view_rows, titles=bronze["titles"], ratings=bronze["ratings"], as_of=as_of
        )
    if table.name == "artwork_daily":
        segments = read_partition(spark, lake, "profile_daily", as_of)
        if segments is None:
            raise FeatureBuildError(
                f"artwork_daily {as_of}: profile_daily has no partition for that date; "
                "build profile_daily first"
            )
        small = segments.count() <= broadcast_max_rows
        return tf.artwork_daily(
            bronze["impressions"], profile_segments=segments, as_of=as_of, broadcast_segments=small
        )
    raise FeatureBuildError(f"no transform for feature table {table.name!r}")


def _validate_and_commit(
    spark: SparkSession,
    lake: lk.Lake,
    table: FeatureTable,
    frame: DataFrame,
    *,
    as_of: dt.date,
    written_at: dt.datetime,
    bronze_versions: dict[str, int],
    history_start: dt.date | None,
) -> TableBuild:
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step_done(name: str) -> None:
        steps[name] = round(time.perf_counter() - started - sum(steps.values()), 2)

    rows = tf.conform(frame, table, as_of=as_of, written_at=written_at).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        count = rows.count()
        step_done("compute")
        outcome = validate_partition(
            table,
            rows,
            as_of=as_of,
            previous_row_count=_previous_row_count(spark, lake, table, as_of, history_start),
            results_dir=lake.validation_results,
        )
        step_done("validate")
        slice_values = {AS_OF: as_of}
        if outcome.success:
            lk.replace_slice(
                rows, lake.features(table.name), slice_values=slice_values, partition_by=[AS_OF]
            )
            version = lk.table_version(spark, lake.features(table.name))
            status = COMMITTED
        else:
            lk.replace_slice(
                rows,
                lake.feature_quarantine(table.name),
                slice_values=slice_values,
                partition_by=[AS_OF],
            )
            version, status = None, FAILED_VALIDATION
        step_done("write")
    finally:
        rows.unpersist()
    seconds = time.perf_counter() - started
    log.info(
        "features %s %s: %s, %s rows in %.1fs", table.name, as_of, status, f"{count:,}", seconds
    )
    return TableBuild(
        table.name,
        as_of,
        status,
        count,
        round(seconds, 1),
        bronze_versions,
        version,
        outcome,
        seconds_by_step=steps,
    )


def read_partition(
    spark: SparkSession, lake: lk.Lake, table: str, as_of: dt.date
) -> DataFrame | None:
    path = lake.features(table)
    if not lk.table_exists(spark, path):
        return None
    rows = lk.read_table(spark, path).filter(F.col(AS_OF) == F.lit(as_of))
    return rows if rows.limit(1).count() else None


def _previous_row_count(
    spark: SparkSession,
    lake: lk.Lake,
    table: FeatureTable,
    as_of: dt.date,
    history_start: dt.date | None,
) -> int | None:
    """Rows in the previous day's partition, once that day's window was full.

    While the lake's history is shorter than a table's lookback, each day's window
    holds one more day of events than the day before, so tables keyed by what
    accumulates (profile × title, title × artwork × segment) grow by design. The
    day-over-day bound starts when the previous day's whole window lies inside the
    bronze history; before that only the table's minimum row count applies.
    """
    previous_day = as_of - dt.timedelta(days=1)
    window_start = previous_day - dt.timedelta(days=table.lookback_days - 1)
    if history_start is None or window_start < history_start:
        return None
    previous = read_partition(spark, lake, table.name, previous_day)
    return None if previous is None else previous.count()


def _input_versions(table: FeatureTable, versions: dict[str, int]) -> dict[str, int]:
    """The Delta versions of what the table read: its bronze sources and the views."""
    out = {s: versions[s] for s in table.sources}
    if table.name in VIEW_TABLES and VIEWS_LINEAGE in versions:
        out[VIEWS_LINEAGE] = versions[VIEWS_LINEAGE]
    return out


def _history_starts(bronze: dict[str, DataFrame]) -> dict[str, dt.date | None]:
    """The first event date held by each bronze table (a query on the partition column)."""
    return {name: rows.agg(F.min("event_date")).first()[0] for name, rows in bronze.items()}


def _history_start(table: FeatureTable, starts: dict[str, dt.date | None]) -> dt.date | None:
    """From when all of the table's sources have data (the latest of their first dates)."""
    dates = [starts.get(s) for s in table.sources]
    return None if None in dates else max(dates)


def _bronze_exists(spark: SparkSession, lake: lk.Lake, source: str) -> bool:
    return lk.table_exists(spark, lake.bronze(source))


def _bronze_versions(spark: SparkSession, lake: lk.Lake, sources: list[str]) -> dict[str, int]:
    missing = [s for s in sources if not _bronze_exists(spark, lake, s)]
    if missing:
        raise FeatureBuildError(
            f"bronze tables missing under {lake.root}/bronze: {', '.join(missing)} "
            "(run `marquee ingest --date D` for the days first)"
        )
    return {s: lk.table_version(spark, lake.bronze(s)) for s in sources}


def _read_bronze(spark: SparkSession, lake: lk.Lake, source: str, version: int) -> DataFrame:
    return lk.read_table(spark, lake.bronze(source), version=version)


def _record_builds(
    spark: SparkSession, lake: lk.Lake, report: BuildReport, built_at: dt.datetime
) -> None:
    """Append every attempt, with its lineage, to the ops log."""
    rows = [
        (
            b.table,
            b.as_of,
            built_at,
            b.status,
            b.rows,
            b.seconds,
            json.dumps(b.bronze_versions, sort_keys=True),
            b.table_version,
            None if b.validation is None else str(b.validation.result_path),
            b.reason or (None if b.validation is None else b.validation.summary()),
        )
        for b in report.builds
    ]
    schema = (
        "table string, as_of_date date, built_at timestamp, status string, rows long, "
        "seconds double, bronze_versions string, table_version long, validation_result string, "
        "summary string"
    )
    lk.append(spark.createDataFrame(rows, schema), lake.feature_builds)


@dataclasses.dataclass(frozen=True)
class Revalidation:
    table: str
    location: str  # "table", "quarantine" or "missing"
    outcome: ValidationOutcome | None


def revalidate(
    spark: SparkSession, config: Config, as_of: dt.date, tables: Iterable[str] | None = None
) -> list[Revalidation]:
    """Run the expectations again on a stored partition (committed, else quarantined)."""
    lake = lk.Lake(config.lake)
    ordered = build_order(tables)
    sources = sorted({s for t in ordered for s in t.sources})
    history_starts = _history_starts(
        {s: lk.read_table(spark, lake.bronze(s)) for s in sources if _bronze_exists(spark, lake, s)}
    )
    results = []
    for table in ordered:
        rows, location = read_partition(spark, lake, table.name, as_of), "table"
        if rows is None:
            rows, location = _read_quarantined(spark, lake, table.name, as_of), "quarantine"
        if rows is None:
            results.append(Revalidation(table.name, "missing", None))
            continue
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            outcome = validate_partition(
                table,
                rows,
                as_of=as_of,
                previous_row_count=_previous_row_count(
                    spark, lake, table, as_of, _history_start(table, history_starts)
                ),
                results_dir=lake.validation_results,
            )
        finally:
            rows.unpersist()
        results.append(Revalidation(table.name, location, outcome))
    return results


def _read_quarantined(
    spark: SparkSession, lake: lk.Lake, table: str, as_of: dt.date
) -> DataFrame | None:
    path = lake.feature_quarantine(table)
    if not lk.table_exists(spark, path):
        return None
    rows = lk.read_table(spark, path).filter(F.col(AS_OF) == F.lit(as_of))
    return rows if rows.limit(1).count() else None

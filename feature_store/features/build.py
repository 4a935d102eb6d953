"""Materialize feature tables for a set of as-of dates: read, transform, validate, commit.

One pass per table, whatever the number of dates (a daily build is a range of one): read
pinned bronze and refresh the stored views, compute every date in one Spark job, validate
each date's partition, and replace the dates that passed in `<lake>/features/<table>` in one
commit (`replaceWhere`: idempotent); failed dates go to `<lake>/quarantine/features/<table>`.
Tables are built in dependency order; a date whose upstream table did not commit is skipped.
Every attempt is appended to `<lake>/ops/feature_builds`. The steps: docs/feature-store.md.
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
from feature_store.features.definitions import AS_OF, FeatureTable, TransformInputs
from feature_store.features.tables import REGISTRY
from feature_store.features.validation import (
    ValidationOutcome,
    validate_partition,
    validate_partitions,
)
from feature_store.features.views import refresh_views

log = logging.getLogger(__name__)

COMMITTED, FAILED_VALIDATION, SKIPPED = "committed", "failed_validation", "skipped"
VIEWS_LINEAGE = "silver.views"  # the views table's version, beside the bronze versions


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
        """The build as text: a row per table, then failed checks and reasons."""
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


@dataclasses.dataclass(frozen=True)
class RangeBuildReport:
    """One build of a set of as-of dates: a TableBuild per table and date."""

    dates: tuple[dt.date, ...]
    builds: tuple[TableBuild, ...]  # tables in build order, dates ascending within each
    table_seconds: dict[str, float]  # the one pass per table, whole

    @property
    def ok(self) -> bool:
        return all(b.status == COMMITTED for b in self.builds)

    @property
    def failed_dates(self) -> tuple[dt.date, ...]:
        """The dates with a table that did not commit (failed validation or skipped)."""
        return tuple(sorted({b.as_of for b in self.builds if b.status != COMMITTED}))

    def for_date(self, as_of: dt.date) -> BuildReport:
        """The builds of `as_of` as one date's report."""
        return BuildReport(as_of, tuple(b for b in self.builds if b.as_of == as_of))

    def format_table(self) -> str:
        """The build as text: per table, the dates committed, failed and skipped."""
        first, last = self.dates[0].isoformat(), self.dates[-1].isoformat()
        span = first if first == last else f"{first} to {last}"
        header = (
            f"{'feature table':<28}{'committed':>10}{'failed':>8}{'skipped':>9}"
            f"{'rows':>14}{'seconds':>9}"
        )
        lines = [f"features as of {span} ({len(self.dates)} dates)", header, "-" * len(header)]
        for table in dict.fromkeys(b.table for b in self.builds):
            mine = [b for b in self.builds if b.table == table]
            status = [b.status for b in mine]
            lines.append(
                f"{table:<28}{status.count(COMMITTED):>10}{status.count(FAILED_VALIDATION):>8}"
                f"{status.count(SKIPPED):>9}{sum(b.rows for b in mine):>14,}"
                f"{self.table_seconds.get(table, 0.0):>9.1f}"
            )
        if self.failed_dates:
            lines.append(f"failed dates: {', '.join(d.isoformat() for d in self.failed_dates)}")
        lines += [_failure_text(b) for b in self.builds if b.status != COMMITTED]
        return "\n".join(lines)


def _failure_text(build: TableBuild) -> str:
    head = f"{build.table} {build.as_of.isoformat()}: {build.status}"
    if build.validation is None:
        return f"{head}: {build.reason}"
    return (
        f"{head} (rows in quarantine; result {build.validation.result_path})\n"
        + build.validation.summary()
    )


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
    return build_feature_range(spark, config, [as_of], tables).for_date(as_of)


def build_feature_range(
    spark: SparkSession,
    config: Config,
    dates: Iterable[dt.date],
    tables: Iterable[str] | None = None,
) -> RangeBuildReport:
    """Build, validate and commit the requested feature tables for a set of as-of dates:
    per table one computation of every date, one validation, one commit of the dates
    that passed and one of the failed dates' rows to the quarantine."""
    dates = sorted(set(dates))
    if not dates:
        raise FeatureBuildError("no as-of dates to build")
    ordered = build_order(tables)
    run = _prepare(spark, config, ordered, dates)
    builds: list[TableBuild] = []
    seconds: dict[str, float] = {}
    try:
        for table in ordered:
            skipped = _upstream_skips(run, table, dates, builds)
            done = [
                TableBuild(table.name, d, SKIPPED, 0, 0.0, {}, reason=why)
                for d, why in skipped.items()
            ]
            todo = [d for d in dates if d not in skipped]
            if todo:
                started = time.perf_counter()
                done += _build_table(run, table, todo)
                seconds[table.name] = round(time.perf_counter() - started, 1)
            builds += sorted(done, key=lambda b: b.as_of)
    finally:
        if run.views is not None:
            run.views.unpersist()
    report = RangeBuildReport(tuple(dates), tuple(builds), seconds)
    _record_builds(spark, run.lake, report.builds, run.written_at)
    return report


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every table of one build reads: pinned bronze, the views, the stamps."""

    spark: SparkSession
    lake: lk.Lake
    bronze: dict[str, DataFrame]
    versions: dict[str, int]  # bronze tables and the views table, for lineage
    history_starts: dict[str, dt.date | None]
    views: DataFrame | None  # persisted: complete views of earlier days, cut views of the dates
    written_at: dt.datetime
    broadcast_max_rows: int


def _prepare(
    spark: SparkSession, config: Config, ordered: list[FeatureTable], dates: list[dt.date]
) -> _Run:
    lake = lk.Lake(config.lake)
    needed = sorted({s for t in ordered for s in t.sources})
    versions = _bronze_versions(spark, lake, needed)
    bronze = {s: _read_bronze(spark, lake, s, versions[s]) for s in needed}
    view_lookback = max((t.lookback_days for t in ordered if t.from_views), default=0)
    views = None
    if view_lookback:
        refreshed = refresh_views(
            spark, lake, bronze["viewing"], as_of_dates=dates, lookback_days=view_lookback
        )
        if refreshed.version is not None:
            versions[VIEWS_LINEAGE] = refreshed.version
        # clustered by profile: the aggregations by profile then reuse this one shuffle
        views = refreshed.rows.repartition("profile_id").persist(StorageLevel.MEMORY_AND_DISK)
    return _Run(
        spark,
        lake,
        bronze,
        versions,
        _history_starts(bronze),
        views,
        dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        config.spark.broadcast_lookup_max_rows,
    )


def _upstream_skips(
    run: _Run, table: FeatureTable, dates: list[dt.date], builds: list[TableBuild]
) -> dict[dt.date, str]:
    """The dates `table` cannot be built for, and why: an upstream table of the same
    date did not commit in this run, or (not built in this run) has no partition."""
    skips: dict[dt.date, str] = {}
    for upstream in table.upstream_tables:
        built = {b.as_of: b.status for b in builds if b.table == upstream}
        if built:
            failed = [d for d in dates if built.get(d) != COMMITTED]
            why = f"not built: upstream {upstream} did not commit"
        else:
            stored = _stored_dates(run.spark, run.lake, upstream, dates)
            failed = [d for d in dates if d not in stored]
            why = f"not built: {upstream} has no partition for that date; build {upstream} first"
        for d in failed:
            skips.setdefault(d, why)
    return dict(sorted(skips.items()))


def _stored_dates(
    spark: SparkSession, lake: lk.Lake, table: str, dates: list[dt.date]
) -> set[dt.date]:
    path = lake.features(table)
    if not lk.table_exists(spark, path):
        return set()
    rows = lk.read_table(spark, path).filter(F.col(AS_OF).isin(dates)).select(AS_OF).distinct()
    return {r[0] for r in rows.collect()}


def _compute(run: _Run, table: FeatureTable, dates: list[dt.date]) -> DataFrame:
    """The rows of every date, by the transform the table declares."""
    if table.transform is None:
        raise FeatureBuildError(f"feature table {table.name!r} declares no transform")
    upstream = {
        name: lk.read_table(run.spark, run.lake.features(name)).filter(F.col(AS_OF).isin(dates))
        for name in table.upstream_tables
    }
    inputs = TransformInputs(
        as_of_dates=tuple(dates),
        # only what the table declares: a transform cannot read an undeclared source
        bronze={
            s: run.bronze[s] for s in table.sources if not (table.from_views and s == "viewing")
        },
        views=run.views if table.from_views else None,
        upstream=upstream,
        broadcast_max_rows=run.broadcast_max_rows,
    )
    return table.transform(inputs)


def _build_table(run: _Run, table: FeatureTable, dates: list[dt.date]) -> list[TableBuild]:
    """Compute every date once, validate each date's partition, commit the dates that
    passed in one write and put the failed dates' rows in the quarantine in another."""
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step_done(name: str) -> None:
        steps[name] = round(time.perf_counter() - started - sum(steps.values()), 2)

    rows = tf.conform(_compute(run, table, dates), table, written_at=run.written_at)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = _row_counts(rows, dates)
        step_done("compute")
        outcomes = validate_partitions(
            table,
            rows,
            dates=dates,
            previous_row_counts=_previous_row_counts(run, table, dates, counts),
            results_dir=run.lake.validation_results,
        )
        step_done("validate")
        passed = [d for d in dates if outcomes[d].success]
        failed = [d for d in dates if not outcomes[d].success]
        version = None
        if passed:
            version = _write_dates(rows, run.lake.features(table.name), passed)
        if failed:
            _write_dates(rows, run.lake.feature_quarantine(table.name), failed)
        step_done("write")
    finally:
        rows.unpersist()
    seconds = time.perf_counter() - started
    log.info(
        "features %s, %d dates: %d committed, %d failed, %s rows in %.1fs",
        table.name, len(dates), len(passed), len(failed), f"{sum(counts.values()):,}", seconds,
    )  # fmt: skip
    # One pass builds every date: each date's record gets an even share of its seconds.
    share = 1 / len(dates)
    lineage = _input_versions(table, run.versions)
    return [
        TableBuild(
            table.name,
            d,
            COMMITTED if outcomes[d].success else FAILED_VALIDATION,
            counts[d],
            round(seconds * share, 1),
            lineage,
            version if outcomes[d].success else None,
            outcomes[d],
            seconds_by_step={k: round(v * share, 2) for k, v in steps.items()},
        )
        for d in dates
    ]


def _row_counts(rows: DataFrame, dates: list[dt.date]) -> dict[dt.date, int]:
    """Rows per as-of date (0 for a date without rows), in one Spark job."""
    counted = {r[AS_OF]: r["count"] for r in rows.groupBy(AS_OF).count().collect()}
    return {d: counted.get(d, 0) for d in dates}


def _write_dates(rows: DataFrame, path: str, dates: list[dt.date]) -> int:
    """Replace the partitions of ``dates`` in the table at ``path`` in one commit."""
    lk.replace_slice(
        rows.filter(F.col(AS_OF).isin(dates)),
        path,
        slice_values={AS_OF: tuple(dates)},
        partition_by=[AS_OF],
    )
    return lk.table_version(rows.sparkSession, path)


def read_partition(
    spark: SparkSession, lake: lk.Lake, table: str, as_of: dt.date
) -> DataFrame | None:
    """The rows of `table` for `as_of`; None when the table is absent or has none for it."""
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
    """Rows in the stored partition of the previous day, once that day's window was full
    (see `_window_full`)."""
    previous_day = as_of - dt.timedelta(days=1)
    if not _window_full(table, previous_day, history_start):
        return None
    return _stored_row_count(spark, lake, table.name, previous_day)


def _previous_row_counts(
    run: _Run, table: FeatureTable, dates: list[dt.date], counts: dict[dt.date, int]
) -> dict[dt.date, int | None]:
    """Per date, the previous day's row count for the day-over-day bound: computed in this
    run when the previous day is one of its dates, else the stored partition's."""
    history_start = _history_start(table, run.history_starts)
    out: dict[dt.date, int | None] = {}
    for as_of in dates:
        previous_day = as_of - dt.timedelta(days=1)
        if not _window_full(table, previous_day, history_start):
            out[as_of] = None
        elif previous_day in counts:
            out[as_of] = counts[previous_day]
        else:
            out[as_of] = _stored_row_count(run.spark, run.lake, table.name, previous_day)
    return out


def _window_full(table: FeatureTable, day: dt.date, history_start: dt.date | None) -> bool:
    """Whether `day`'s whole window lies inside the bronze history.

    While the lake's history is shorter than a table's lookback, each day's window
    holds one more day of events than the day before, so tables keyed by what
    accumulates (profile × title, title × artwork × segment) grow by design. The
    day-over-day bound starts when the previous day's whole window lies inside the
    bronze history; before that only the table's minimum row count applies.
    """
    window_start = day - dt.timedelta(days=table.lookback_days - 1)
    return history_start is not None and window_start >= history_start


def _stored_row_count(spark: SparkSession, lake: lk.Lake, table: str, as_of: dt.date) -> int | None:
    """Rows of the committed partition of ``as_of``; None when there is none."""
    path = lake.features(table)
    if not lk.table_exists(spark, path):
        return None
    count = lk.read_table(spark, path).filter(F.col(AS_OF) == F.lit(as_of)).count()
    return count or None


def _input_versions(table: FeatureTable, versions: dict[str, int]) -> dict[str, int]:
    """The Delta versions of what the table read: its bronze sources and the views."""
    out = {s: versions[s] for s in table.sources}
    if table.from_views and VIEWS_LINEAGE in versions:
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
    spark: SparkSession, lake: lk.Lake, builds: Iterable[TableBuild], built_at: dt.datetime
) -> None:
    """Append every attempt (one per table and date), with its lineage, to the ops log."""
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
        for b in builds
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

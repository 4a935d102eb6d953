"""Bronze ingestion: landing JSON lines -> typed, deduplicated, pseudonymized Delta.

Every landing line ends in exactly one place: a bronze table, the quarantine (with
its reason and the raw text), or the duplicate count. `classify_lines` and
`deduplicate` are pure transforms; `ingest_date` does the I/O and the bookkeeping.

Re-running a date is idempotent: bronze rows are replaced by `ingest_date` (the
landing file date), not by event date, so late events written into earlier
event-date partitions are replaced too and nobody else's rows there are touched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
from collections.abc import Iterable

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.privacy import pseudonymize
from feature_store.sources import SOURCES, Source

log = logging.getLogger(__name__)

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst")
BRONZE = "bronze"
QUARANTINE = "quarantine"
DUPLICATE = "duplicate"

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("raw", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
    ]
)


class IngestError(RuntimeError):
    """Ingestion of a date failed; nothing was written to bronze for it."""

    def __init__(self, message: str, report: IngestReport | None = None):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass(frozen=True)
class SourceReconciliation:
    source: str
    lines: int
    bronze: int
    quarantined: int
    duplicates: int
    reasons: dict[str, int]

    @property
    def balanced(self) -> bool:
        return self.lines == self.bronze + self.quarantined + self.duplicates

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.lines if self.lines else 0.0


@dataclasses.dataclass(frozen=True)
class IngestReport:
    date: dt.date
    sources: tuple[SourceReconciliation, ...]
    committed: bool

    def to_dict(self) -> dict:
        return {
            "date": self.date.isoformat(),
            "committed": self.committed,
            "sources": [
                {
                    **dataclasses.asdict(s),
                    "balanced": s.balanced,
                    "quarantine_share": round(s.quarantine_share, 6),
                }
                for s in self.sources
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def format_table(self) -> str:
        header = (
            f"{'source':<14}{'lines':>12}{'bronze':>12}{'quarantined':>13}{'duplicates':>12}  ok"
        )
        rows = [
            f"ingest {self.date.isoformat()}" + ("" if self.committed else "  (NOT COMMITTED)"),
            header,
            "-" * len(header),
        ]
        for s in self.sources:
            rows.append(
                f"{s.source:<14}{s.lines:>12,}{s.bronze:>12,}{s.quarantined:>13,}"
                f"{s.duplicates:>12,}  {'yes' if s.balanced else 'NO'}"
            )
        reasons = [(s.source, r, n) for s in self.sources for r, n in sorted(s.reasons.items())]
        if reasons:
            rows.append("quarantine and duplicate reasons:")
            rows.extend(f"  {src:<14}{reason:<32}{n:>10,}" for src, reason, n in reasons)
        return "\n".join(rows)


# --------------------------------------------------------------------------- transforms


def classify_lines(
    lines: DataFrame,
    *,
    source: Source,
    file_date: dt.date,
    pseudonymization_key: str,
    watermark_days: int,
    future_tolerance_hours: int,
) -> DataFrame:
    """Parse and check each landing line against the source's declared schema.

    Input: `value` (the raw line) and `source_file`. Output: one row per line with
    `status` (bronze or quarantine), `reason`, `detail`, the typed bronze columns,
    `event_date` and `ingest_date`. Nothing is dropped.
    """
    all_strings = T.StructType([T.StructField(f.name, T.StringType()) for f in source.fields])
    df = lines.select(
        "value",
        "source_file",
        F.json_object_keys("value").isNotNull().alias("_is_object"),
        F.from_json("value", all_strings).alias("_raw"),
    )
    typed = {f.name: _typed(F.col(f"_raw.{f.name}"), f.dtype) for f in source.fields}

    ts = typed[source.ts_field]
    day_start = F.lit(dt.datetime.combine(file_date, dt.time()))
    future_limit = day_start + F.expr(f"INTERVAL {24 + future_tolerance_hours} HOURS")
    watermark = F.lit(file_date - dt.timedelta(days=watermark_days))

    # Checks in order; the first that fails is the reason.
    checks: list[tuple[Column, str, str | None]] = [
        (F.trim("value") == "", "empty_line", None),
        (~F.col("_is_object"), "malformed_json", None),
    ]
    checks += [
        (F.col(f"_raw.{f.name}").isNull(), "missing_field", f.name)
        for f in source.fields
        if f.required
    ]
    checks += [
        (F.col(f"_raw.{f.name}").isNotNull() & typed[f.name].isNull(), "wrong_type", f.name)
        for f in source.fields
    ]
    checks += [
        (typed[f.name].isNotNull() & ~typed[f.name].isin(*f.allowed), "unknown_value", f.name)
        for f in source.fields
        if f.allowed
    ]
    checks += [
        (ts >= future_limit, "future_timestamp", source.ts_field),
        (F.to_date(ts) < watermark, "beyond_watermark", source.ts_field),
    ]
    reason, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for condition, code, field_name in reversed(checks):
        reason = F.when(condition, F.lit(code)).otherwise(reason)
        detail = F.when(condition, F.lit(field_name)).otherwise(detail)

    bronze_cols = []
    for f in source.bronze_fields:
        value = typed[f.name]
        if f.pseudonymize:
            value = pseudonymize(value, pseudonymization_key)
        bronze_cols.append(value.alias(f.name))

    return df.select(
        F.col("value").alias("raw"),
        "source_file",
        F.when(reason.isNull(), F.lit(BRONZE)).otherwise(F.lit(QUARANTINE)).alias("status"),
        reason.alias("reason"),
        detail.alias("detail"),
        *bronze_cols,
        F.to_date(ts).alias("event_date"),
        F.lit(file_date).alias("ingest_date"),
    )


def _typed(raw: Column, dtype: T.DataType) -> Column:
    """Typed value of a field parsed as a string; null when it does not fit the type."""
    if isinstance(dtype, T.ArrayType | T.StructType | T.MapType):
        return F.from_json(raw, dtype)
    return raw.try_cast(dtype)


def deduplicate(classified: DataFrame, *, source: Source, earlier_ids: DataFrame) -> DataFrame:
    """Mark repeated event ids among the lines `classify_lines` accepted.

    Within the file: the first copy (by timestamp, then raw text) stays; an exact
    copy is counted as a duplicate; a copy with different content is quarantined as
    `conflicting_duplicate`, so no version is lost. Against earlier days
    (`earlier_ids`, one column named like the id field): counted as duplicates.
    """
    key = source.id_field
    accepted = classified.filter(F.col("status") == BRONZE)
    rejected = classified.filter(F.col("status") != BRONZE)

    by_id = Window.partitionBy(key).orderBy(F.col(source.ts_field).asc_nulls_last(), F.col("raw"))
    ranked = accepted.withColumn("_rank", F.row_number().over(by_id)).withColumn(
        "_first_raw", F.first("raw").over(by_id)
    )
    seen_before = earlier_ids.select(F.col(key).alias("_seen_id")).distinct()
    ranked = ranked.join(seen_before, ranked[key] == seen_before["_seen_id"], "left")

    is_copy = F.col("_rank") > 1
    status = (
        F.when(is_copy & (F.col("raw") == F.col("_first_raw")), F.lit(DUPLICATE))
        .when(is_copy, F.lit(QUARANTINE))
        .when(F.col("_seen_id").isNotNull(), F.lit(DUPLICATE))
        .otherwise(F.lit(BRONZE))
    )
    reason = (
        F.when(is_copy & (F.col("raw") == F.col("_first_raw")), F.lit("duplicate_in_file"))
        .when(is_copy, F.lit("conflicting_duplicate"))
        .when(F.col("_seen_id").isNotNull(), F.lit("duplicate_of_earlier_day"))
    )
    detail = F.when(is_copy & (F.col("raw") != F.col("_first_raw")), F.lit(key))
    marked = (
        ranked.withColumn("status", status)
        .withColumn("reason", reason)
        .withColumn("detail", detail)
        .drop("_rank", "_first_raw", "_seen_id")
    )
    return marked.unionByName(rejected)


def bronze_rows(deduplicated: DataFrame, *, source: Source) -> DataFrame:
    cols = [f.name for f in source.bronze_fields] + ["event_date", "ingest_date", "source_file"]
    return deduplicated.filter(F.col("status") == BRONZE).select(*cols)


def quarantine_rows(deduplicated: DataFrame, *, source: Source) -> DataFrame:
    return deduplicated.filter(F.col("status") == QUARANTINE).select(
        F.lit(source.name).alias("source"), "ingest_date", "source_file", "raw", "reason", "detail"
    )


# --------------------------------------------------------------------------- I/O


@dataclasses.dataclass
class _Staged:
    source: Source
    rows: DataFrame  # persisted: classified and deduplicated lines
    oversized: list[tuple[str, int]]  # (file, bytes skipped)
    reconciliation: SourceReconciliation


def ingest_date(
    spark: SparkSession, config: Config, date: dt.date, sources: Iterable[str] | None = None
) -> IngestReport:
    """Ingest every source's landing files for one file date.

    Raises IngestError (and writes no bronze data) when a source's quarantine share
    passes `ingest.max_quarantine_share` with at least `ingest.min_quarantined_lines`
    lines quarantined; the rejected lines are still kept.
    """
    lake = lk.Lake(config.lake)
    names = list(sources) if sources else list(SOURCES)
    files = {name: lk.list_files(spark, lake.landing(name, date)) for name in names}
    if not any(files.values()):
        raise IngestError(
            f"no landing files for {date.isoformat()} under {lake.root}/landing/<source>/date="
            f"{date.isoformat()}/ (sources: {', '.join(names)})"
        )
    staged = []
    try:
        for name in names:
            if files[name]:
                staged.append(_stage(spark, config, lake, SOURCES[name], date, files[name]))
            else:
                log.info("ingest %s %s: no landing files", date, name)
        report = IngestReport(date, tuple(s.reconciliation for s in staged), committed=False)
        _write_quarantine(spark, lake, staged, date)
        limit = config.ingest.max_quarantine_share
        over = [
            s.reconciliation
            for s in staged
            if s.reconciliation.quarantine_share > limit
            and s.reconciliation.quarantined >= config.ingest.min_quarantined_lines
        ]
        if over:
            refusal = IngestError(
                f"ingest {date.isoformat()} refused: quarantine share above "
                f"{limit:.1%} for "
                + ", ".join(
                    f"{r.source} ({r.quarantine_share:.1%}: {r.quarantined:,} of {r.lines:,} lines)"
                    for r in over
                )
                + ". No bronze data was written for this date; rejected lines are in "
                + f"{lake.quarantine}.",
                report,
            )
            _record_run(spark, lake, report)
            raise refusal
        for stage in staged:
            _write_bronze(lake, stage, date)
        report = dataclasses.replace(report, committed=True)
    finally:
        for stage in staged:
            stage.rows.unpersist()
    _record_run(spark, lake, report)
    return report


def _stage(
    spark: SparkSession,
    config: Config,
    lake: lk.Lake,
    source: Source,
    date: dt.date,
    files: list[tuple[str, int]],
) -> _Staged:
    max_bytes = config.ingest.max_line_bytes
    plain = [path for path, _ in files if not path.endswith(COMPRESSED_SUFFIXES)]
    compressed = [path for path, _ in files if path.endswith(COMPRESSED_SUFFIXES)]
    # Plain files: the reader skips lines over max_line_bytes instead of loading them,
    # and _oversized_lines reports the bytes skipped. Compressed files cannot be
    # checked by size, so their lines are read whole rather than dropped unseen.
    parts = []
    if plain:
        parts.append(
            spark.read.option("mapreduce.input.linerecordreader.line.maxlength", max_bytes).text(
                plain
            )
        )
    if compressed:
        parts.append(spark.read.text(compressed))
    lines = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    lines = lines.select("value", F.col("_metadata.file_path").alias("source_file"))
    classified = classify_lines(
        lines,
        source=source,
        file_date=date,
        pseudonymization_key=config.privacy.pseudonymization_key,
        watermark_days=config.ingest.watermark_days,
        future_tolerance_hours=config.ingest.future_tolerance_hours,
    )
    # Cache the parsed lines before deduplicating: the filters that split accepted
    # from rejected lines would otherwise be pushed below the projection and re-parse
    # the JSON once per field they look at (measured: 5x slower at 500k lines).
    classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
    rows = deduplicate(
        classified, source=source, earlier_ids=_earlier_ids(spark, lake, source, date, config)
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = (
            rows.groupBy("status", "reason", "source_file")
            .agg(F.count(F.lit(1)).alias("n"), F.sum(F.octet_length("raw") + 1).alias("bytes"))
            .collect()
        )
    finally:
        classified.unpersist()  # `rows` is materialized now; it is all the writers read
    oversized = _oversized_lines([(p, n) for p, n in files if p in plain], counts, max_bytes)
    by_status = {BRONZE: 0, QUARANTINE: 0, DUPLICATE: 0}
    reasons: dict[str, int] = {}
    for row in counts:
        by_status[row["status"]] += row["n"]
        if row["reason"]:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + row["n"]
    if oversized:
        reasons["oversized_line"] = len(oversized)
    reconciliation = SourceReconciliation(
        source=source.name,
        lines=sum(by_status.values()) + len(oversized),
        bronze=by_status[BRONZE],
        quarantined=by_status[QUARANTINE] + len(oversized),
        duplicates=by_status[DUPLICATE],
        reasons=reasons,
    )
    log.info("ingest %s %s: %s", date, source.name, reconciliation)
    return _Staged(source, rows, oversized, reconciliation)


def _oversized_lines(
    files: list[tuple[str, int]], counts: list, max_bytes: int
) -> list[tuple[str, int]]:
    """Files where the reader skipped lines longer than `max_bytes`.

    The reader drops such lines instead of loading them; they show up as bytes of
    the file that no line accounts for. Each such file is reported as one
    quarantined `oversized_line` record with the number of bytes skipped.
    """
    read_bytes: dict[str, int] = {}
    for row in counts:
        read_bytes[row["source_file"]] = read_bytes.get(row["source_file"], 0) + (row["bytes"] or 0)
    skipped = []
    for path, size in files:
        missing = size - read_bytes.get(path, 0)
        if missing >= max_bytes:  # CRLF endings or a missing final newline explain a few bytes only
            skipped.append((path, missing))
    return skipped


def _earlier_ids(
    spark: SparkSession, lake: lk.Lake, source: Source, date: dt.date, config: Config
) -> DataFrame:
    """Event ids already in bronze from other landing dates, within the watermark."""
    path = lake.bronze(source.name)
    if not lk.table_exists(spark, path):
        return spark.createDataFrame(
            [], T.StructType([T.StructField(source.id_field, T.StringType())])
        )
    oldest = date - dt.timedelta(days=config.ingest.watermark_days + 1)
    return (
        lk.read_table(spark, path)
        .filter((F.col("event_date") >= F.lit(oldest)) & (F.col("ingest_date") != F.lit(date)))
        .select(source.id_field)
    )


def _write_bronze(lake: lk.Lake, stage: _Staged, date: dt.date) -> None:
    rows = bronze_rows(stage.rows, source=stage.source)
    with lk.without_dictionaries(rows.sparkSession, stage.source.scattered_columns):
        lk.replace_slice(
            rows,
            lake.bronze(stage.source.name),
            slice_values={"ingest_date": date},
            partition_by=["event_date"],
        )
    log.info(
        "bronze %s: %s rows for ingest date %s",
        stage.source.name,
        f"{stage.reconciliation.bronze:,}",
        date,
    )


def _write_quarantine(
    spark: SparkSession, lake: lk.Lake, staged: list[_Staged], date: dt.date
) -> None:
    """Replace the date's quarantine slice for every staged source in one commit."""
    parts = [quarantine_rows(stage.rows, source=stage.source) for stage in staged]
    skipped = [
        (
            stage.source.name,
            date,
            path,
            None,
            "oversized_line",
            f"{n} bytes of lines longer than the reader limit were skipped",
        )
        for stage in staged
        for path, n in stage.oversized
    ]
    if skipped:
        parts.append(spark.createDataFrame(skipped, QUARANTINE_SCHEMA))
    rows = functools.reduce(DataFrame.unionByName, parts)
    lk.replace_slice(
        rows,
        lake.quarantine,
        slice_values={
            "ingest_date": date,
            "source": tuple(stage.source.name for stage in staged),
        },
        partition_by=["ingest_date", "source"],
    )


def _record_run(spark: SparkSession, lake: lk.Lake, report: IngestReport) -> None:
    """Append the reconciliation to the ops log (a history of every run, kept for audit)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        (
            report.date,
            now,
            report.committed,
            s.source,
            s.lines,
            s.bronze,
            s.quarantined,
            s.duplicates,
            json.dumps(s.reasons, sort_keys=True),
        )
        for s in report.sources
    ]
    schema = (
        "ingest_date date, run_at timestamp, committed boolean, source string, lines long, "
        "bronze long, quarantined long, duplicates long, reasons string"
    )
    lk.append(spark.createDataFrame(rows, schema), lake.ingest_runs)

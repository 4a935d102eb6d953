"""Bronze ingestion: landing JSON lines -> typed, deduplicated, pseudonymized Delta.

Every landing line ends in exactly one place: a bronze table, the quarantine (with its
reason and the raw bytes), the duplicate count, or the suppressed count (lines of forgotten
members, kept nowhere). `classify_lines`, `suppress` and `deduplicate` are pure transforms;
`ingest_date` does the I/O and the bookkeeping. Re-running a date is idempotent: bronze rows
are replaced by `ingest_date` (the landing file date), not by event date. More:
docs/ingestion.md.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence

import delta.exceptions
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk
from feature_store import landing_files as lf
from feature_store.config import Config
from feature_store.privacy import pseudonymize, suppression_token
from feature_store.sources import SOURCES, Field, Source, holds_strings

log = logging.getLogger(__name__)

BRONZE = "bronze"
QUARANTINE = "quarantine"
DUPLICATE = "duplicate"
SUPPRESSED = "suppressed"

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("source_file", T.StringType(), True),
        # bytes: a landing line need not be valid UTF-8, and every Parquet reader reads this
        T.StructField("raw", T.BinaryType(), True),
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
    """Where one source's landing lines of a date went.

    `lines` counts the lines read plus one per stretch of bytes not read (a line over
    `ingest.max_line_bytes`, an archive's damaged rest, a hidden file), each of which is
    a quarantine record. `reasons` counts quarantine and duplicate records by reason.
    Bytes: `landing_bytes` is the size of every file listed (archives compressed),
    `line_bytes` the bytes of the lines read (one per line for its end), `unread_bytes`
    the bytes not read by reason (`bookkeeping_file`: Hadoop's `.crc` and `_SUCCESS`
    files, which are not quarantined). For plain files, landing_bytes = line_bytes +
    sum(unread_bytes), up to a byte per CRLF line end or missing final newline.
    """

    source: str
    lines: int
    bronze: int
    quarantined: int
    duplicates: int
    suppressed: int
    reasons: dict[str, int]
    files: int = 0
    landing_bytes: int = 0
    line_bytes: int = 0
    unread_bytes: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.lines == self.bronze + self.quarantined + self.duplicates + self.suppressed

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.lines if self.lines else 0.0


@dataclasses.dataclass(frozen=True)
class IngestReport:
    date: dt.date
    sources: tuple[SourceReconciliation, ...]
    committed: bool

    def to_dict(self) -> dict:
        """The report as JSON-ready values, each source with `balanced` and `quarantine_share`."""
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
        """`to_dict` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def format_table(self) -> str:
        """The report as a text table: one row per source, then reasons and unread bytes."""
        header = (
            f"{'source':<14}{'lines':>12}{'bronze':>12}{'quarantined':>13}{'duplicates':>12}"
            f"{'suppressed':>12}{'bytes':>15}  ok"
        )
        rows = [
            f"ingest {self.date.isoformat()}" + ("" if self.committed else "  (NOT COMMITTED)"),
            header,
            "-" * len(header),
        ]
        for s in self.sources:
            rows.append(
                f"{s.source:<14}{s.lines:>12,}{s.bronze:>12,}{s.quarantined:>13,}"
                f"{s.duplicates:>12,}{s.suppressed:>12,}{s.landing_bytes:>15,}"
                f"  {'yes' if s.balanced else 'NO'}"
            )
        reasons = [(s.source, r, n) for s in self.sources for r, n in sorted(s.reasons.items())]
        if reasons:
            rows.append("quarantine and duplicate reasons:")
            rows.extend(f"  {src:<14}{reason:<36}{n:>10,}" for src, reason, n in reasons)
        unread = [(s.source, r, n) for s in self.sources for r, n in sorted(s.unread_bytes.items())]
        if unread:
            rows.append("landing bytes not read as lines:")
            rows.extend(f"  {src:<14}{reason:<36}{n:>10,}" for src, reason, n in unread)
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
    references: Mapping[str, DataFrame] | None = None,
) -> DataFrame:
    """Parse and check each landing line against the source's declared schema and rules.

    Input: `value` (the raw line) and `source_file`. `references` holds rows of the
    sources the rules look values up in (`source.referenced_sources`: for viewing,
    "titles" with `title_id` and `duration_minutes`); a record whose referenced row is
    absent is held to the field's fixed bounds only. Output: one row per line with
    `status` (bronze or quarantine), `reason`, `detail`, the typed bronze columns,
    `event_date` and `ingest_date`. Nothing is dropped.
    """
    all_strings = T.StructType([T.StructField(f.name, T.StringType()) for f in source.fields])
    df = lines.select(
        "value",
        "source_file",
        F.json_object_keys("value").alias("_keys"),
        # One JSON value on the line: '{...}{...}' (two records glued) or '{...} junk'
        # would otherwise keep the first object and lose the rest unseen.
        F.json_array_length(F.concat(F.lit("["), "value", F.lit("]"))).alias("_values"),
        F.from_json("value", all_strings).alias("_raw"),
    )
    df, bounds = _with_reference_bounds(df, source=source, references=references or {})
    raw = {f.name: F.col(f"_raw.{f.name}") for f in source.fields}
    typed = {f.name: _typed(raw[f.name], f.dtype) for f in source.fields}

    ts = typed[source.ts_field]
    day_start = F.lit(dt.datetime.combine(file_date, dt.time()))
    future_limit = day_start + F.expr(f"INTERVAL {24 + future_tolerance_hours} HOURS")
    watermark = F.lit(file_date - dt.timedelta(days=watermark_days))

    # Checks in order; the first that fails is the reason.
    checks = [
        *_structure_checks(source, raw),
        *[(raw[f.name].isNull(), "missing_field", f.name) for f in source.fields if f.required],
        *_type_checks(source, raw, typed),
        *_value_checks(source, typed, bounds),
        (ts >= future_limit, "future_timestamp", source.ts_field),
        (F.to_date(ts) < watermark, "beyond_watermark", source.ts_field),
    ]
    failure = F.coalesce(
        *[
            F.when(condition, F.struct(F.lit(code).alias("reason"), _as_text(detail)))
            for condition, code, detail in checks
        ]
    )

    bronze_cols = []
    for f in source.bronze_fields:
        value = typed[f.name]
        if f.pseudonymize:
            value = pseudonymize(value, pseudonymization_key)
        bronze_cols.append(value.alias(f.name))

    return df.select(
        F.col("value").alias("raw"),
        "source_file",
        F.when(failure.isNull(), F.lit(BRONZE)).otherwise(F.lit(QUARANTINE)).alias("status"),
        failure["reason"].alias("reason"),
        failure["detail"].alias("detail"),
        *bronze_cols,
        F.to_date(ts).alias("event_date"),
        F.lit(file_date).alias("ingest_date"),
    )


def _typed(raw: Column, dtype: T.DataType) -> Column:
    """Typed value of a field parsed as a string; null when it does not fit the type."""
    if isinstance(dtype, T.ArrayType | T.StructType | T.MapType):
        return F.from_json(raw, dtype)
    return raw.try_cast(dtype)


# A check: the condition that fails it, the reason, and the detail (a field, or a column).
_Check = tuple[Column, str, "str | Column | None"]


def _as_text(detail: str | Column | None) -> Column:
    value = detail if isinstance(detail, Column) else F.lit(detail)
    return value.cast("string").alias("detail")


def _structure_checks(source: Source, raw: dict[str, Column]) -> list[_Check]:
    """Empty lines, lines that are not one JSON object, and keys written twice (the
    parser would silently keep the last value), top-level or in nested objects."""
    keys = F.col("_keys")
    one_object = keys.isNotNull() & F.coalesce(F.col("_values") == 1, F.lit(False))
    checks: list[_Check] = [
        (F.trim("value") == "", "empty_line", None),
        (~one_object, "malformed_json", None),
    ]
    repeated = _first_repeated(keys)
    checks.append((repeated.isNotNull(), "duplicate_key", repeated))
    for f in source.fields:
        objects = _nested_objects(raw[f.name], f.dtype)
        if objects is not None:
            nested = F.try_element_at(
                F.flatten(F.transform(objects, lambda o: _repeated(F.json_object_keys(o)))),
                F.lit(1),
            )
            checks.append(
                (nested.isNotNull(), "duplicate_key", F.concat_ws(".", F.lit(f.name), nested))
            )
    return checks


def _repeated(keys: Column) -> Column:
    """The keys that appeared earlier in the same array (as written, escapes decoded)."""
    return F.filter(keys, lambda key, i: F.array_position(keys, key) != i + 1)


def _first_repeated(keys: Column) -> Column:
    return F.try_element_at(_repeated(keys), F.lit(1))


def _nested_objects(raw: Column, dtype: T.DataType) -> Column | None:
    """The JSON texts of the objects a struct (or array of structs) field holds."""
    if isinstance(dtype, T.StructType):
        return F.array(raw)
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.StructType):
        return F.from_json(raw, T.ArrayType(T.StringType()))
    return None


def _type_checks(source: Source, raw: dict[str, Column], typed: dict[str, Column]) -> list[_Check]:
    """A value that does not fit its type: unparseable, a JSON object or array where a
    string belongs (the parser hands it over as JSON text), or a null array item."""
    strings = [f.name for f in source.fields if isinstance(f.dtype, T.StringType)]
    # Parsed a second time only for lines where such a field's text starts like JSON.
    probe = F.from_json("value", T.StructType([T.StructField(n, T.VariantType()) for n in strings]))
    checks: list[_Check] = []
    for f in source.fields:
        wrong = raw[f.name].isNotNull() & typed[f.name].isNull()
        if f.name in strings:
            container = F.schema_of_variant(probe[f.name]).rlike(r"\A(OBJECT|ARRAY)")
            wrong = wrong | (raw[f.name].rlike(r"\A[\[{]") & container)
        if isinstance(f.dtype, T.ArrayType) and not f.dtype.containsNull:
            wrong = wrong | F.exists(typed[f.name], lambda item: item.isNull())
        checks.append((wrong, "wrong_type", f.name))
    return checks


def _value_checks(
    source: Source, typed: dict[str, Column], bounds: dict[str, Column]
) -> list[_Check]:
    """Values outside a closed set (`unknown_value`), then values breaking a field's
    declared plausibility rules (`implausible_value`); both name the field."""
    unknown: list[_Check] = []
    implausible: list[_Check] = []
    for f in source.fields:
        value = typed[f.name]
        if f.allowed:
            unknown.append((_outside(value, f.dtype, f.allowed), "unknown_value", f.name))
        broken = _broken_rules(f, value, bounds.get(f.name))
        if f.among is not None:
            broken.append(~F.coalesce(F.array_contains(typed[f.among], value), F.lit(True)))
        if broken:
            implausible.append(
                (functools.reduce(Column.__or__, broken), "implausible_value", f.name)
            )
    return unknown + implausible


def _outside(value: Column, dtype: T.DataType, allowed: tuple[str, ...]) -> Column:
    """True when the value (or, for an array, any of its items) is not in `allowed`."""
    if isinstance(dtype, T.ArrayType):
        return F.exists(value, lambda item: ~item.isin(*allowed))
    return value.isNotNull() & ~value.isin(*allowed)


def _broken_rules(field: Field, value: Column, bound: Column | None) -> list[Column]:
    """One condition per declared rule of `field`, true when `value` breaks it."""
    broken = []
    if field.minimum is not None:
        broken.append(value < F.lit(field.minimum))
    if field.maximum is not None:
        broken.append(value > F.lit(field.maximum))
    if field.above is not None:
        broken.append(value <= F.lit(field.above))
    if bound is not None:
        broken.append(value > bound)
    if field.max_items is not None:
        broken.append(F.size(value) > field.max_items)
    if field.holds_strings and not field.allowed:
        pattern = field.text.pattern
        broken.append(_any_string(value, field.dtype, lambda text: ~text.rlike(pattern)))
    return broken


def _any_string(value: Column, dtype: T.DataType, breaks) -> Column:
    """True when any string in `value` (items and struct fields included) `breaks`."""
    if isinstance(dtype, T.ArrayType):
        return F.exists(value, lambda item: _any_string(item, dtype.elementType, breaks))
    if isinstance(dtype, T.StructType):
        parts = [
            _any_string(value[f.name], f.dataType, breaks)
            for f in dtype.fields
            if holds_strings(f.dataType)
        ]
        return functools.reduce(Column.__or__, parts)
    return breaks(value)


def _with_reference_bounds(
    df: DataFrame, *, source: Source, references: Mapping[str, DataFrame]
) -> tuple[DataFrame, dict[str, Column]]:
    """Join each line to the referenced rows its fields are bounded by (the largest
    value when a key has several versions); return the bound per field name."""
    bounds: dict[str, Column] = {}
    lookups = dict.fromkeys(
        (f.bounded_by.source, f.bounded_by.key) for f in source.fields if f.bounded_by
    )
    for name, key in lookups:
        if name not in references:
            continue
        bounded = [
            f
            for f in source.fields
            if f.bounded_by and (f.bounded_by.source, f.bounded_by.key) == (name, key)
        ]
        values = (
            references[name]
            .groupBy(F.col(key).alias("_ref_key"))
            .agg(*[F.max(f.bounded_by.field).alias(f"_ref_{f.name}") for f in bounded])
        )
        # A catalogue is small next to a day of events: broadcast it, do not shuffle.
        df = df.join(F.broadcast(values), F.col(f"_raw.{key}") == F.col("_ref_key"), "left")
        df = df.drop("_ref_key")
        bounds.update({f.name: F.col(f"_ref_{f.name}") * f.bounded_by.factor for f in bounded})
    return df, bounds


def content_hash(source: Source) -> Column:
    """A 64-bit hash of a row's bronze columns: an event id seen again on a later day
    with the same hash is a copy, with another hash a conflicting version."""
    return F.xxhash64(*[F.col(f.name) for f in source.bronze_fields])


def suppress(classified: DataFrame, *, forgotten_tokens: DataFrame, key: str) -> DataFrame:
    """Mark the lines of forgotten members `suppressed`, whatever their status.

    A line belongs to a forgotten account when the suppression token of the pseudonym
    of its `account_id` is in `forgotten_tokens` (column `token`). The account id is read
    from the raw text too (`get_json_object`, which decodes escapes), so a line
    quarantined for any reason is matched as well. Matched by joins, no literals.
    """
    tokens = forgotten_tokens.select(F.col("token").alias("_forgotten")).distinct()
    parsed = pseudonymize(F.get_json_object("raw", "$.account_id"), key)
    marked = classified.withColumn("_by_raw", suppression_token(parsed)).withColumn(
        "_by_field", suppression_token(F.col("account_id"))
    )
    for column in ("_by_raw", "_by_field"):
        hits = F.broadcast(tokens.withColumnRenamed("_forgotten", f"{column}_hit"))
        marked = marked.join(hits, marked[column] == hits[f"{column}_hit"], "left")
    hit = F.col("_by_raw_hit").isNotNull() | F.col("_by_field_hit").isNotNull()
    return (
        marked.withColumn("status", F.when(hit, F.lit(SUPPRESSED)).otherwise(F.col("status")))
        .withColumn("reason", F.when(hit, F.lit(None)).otherwise(F.col("reason")))
        .withColumn("detail", F.when(hit, F.lit(None)).otherwise(F.col("detail")))
        .drop("_by_raw", "_by_field", "_by_raw_hit", "_by_field_hit")
    )


def deduplicate(classified: DataFrame, *, source: Source, earlier_ids: DataFrame) -> DataFrame:
    """Mark repeated event ids among the lines `classify_lines` accepted.

    Within the file: the first copy (by timestamp, then raw text) stays; an exact
    copy is counted as a duplicate; a copy with different content is quarantined as
    `conflicting_duplicate`, so no version is lost. Against earlier days
    (`earlier_ids`: the id column, and when given `content_hash` and `ingest_date` of
    the bronze rows): a copy is counted as `duplicate_of_earlier_day`; a version with
    other content is quarantined as `conflicting_duplicate_of_earlier_day`, the detail
    naming the earlier ingest date (the old version stays in bronze, the new in the
    quarantine). Without `content_hash` every earlier id counts as a copy.
    """
    key = source.id_field
    accepted = classified.filter(F.col("status") == BRONZE)
    rejected = classified.filter(F.col("status") != BRONZE)

    by_id = Window.partitionBy(key).orderBy(F.col(source.ts_field).asc_nulls_last(), F.col("raw"))
    ranked = accepted.withColumn("_rank", F.row_number().over(by_id)).withColumn(
        "_first_raw", F.first("raw").over(by_id)
    )
    ranked = ranked.join(_seen_before(earlier_ids, key), F.col(key) == F.col("_seen_id"), "left")

    is_copy = F.col("_rank") > 1
    same_as_first = F.col("raw") == F.col("_first_raw")
    seen = F.col("_seen_id").isNotNull()
    seen_other = seen & (F.size("_seen_hashes") > 0)
    seen_other &= ~F.array_contains("_seen_hashes", content_hash(source))
    outcome = (
        F.when(is_copy & same_as_first, _outcome(DUPLICATE, "duplicate_in_file"))
        .when(is_copy, _outcome(QUARANTINE, "conflicting_duplicate", F.lit(key)))
        .when(
            seen_other,
            _outcome(
                QUARANTINE,
                "conflicting_duplicate_of_earlier_day",
                F.concat(
                    F.lit(f"{key} already in bronze from ingest date "),
                    F.date_format("_seen_ingest_date", "yyyy-MM-dd"),
                    F.lit(" with other content"),
                ),
            ),
        )
        .when(seen, _outcome(DUPLICATE, "duplicate_of_earlier_day"))
        .otherwise(_outcome(BRONZE, None))
    )
    marked = (
        ranked.withColumn("_outcome", outcome)
        .withColumn("status", F.col("_outcome.status"))
        .withColumn("reason", F.col("_outcome.reason"))
        .withColumn("detail", F.col("_outcome.detail"))
        .drop("_rank", "_first_raw", "_seen_id", "_seen_hashes", "_seen_ingest_date", "_outcome")
    )
    return marked.unionByName(rejected)


def _outcome(status: str, reason: str | None, detail: Column | None = None) -> Column:
    return F.struct(
        F.lit(status).alias("status"),
        F.lit(reason).cast("string").alias("reason"),
        (detail if detail is not None else F.lit(None)).cast("string").alias("detail"),
    )


def _seen_before(earlier_ids: DataFrame, key: str) -> DataFrame:
    """One row per earlier id: its content hashes and first ingest date."""
    columns = set(earlier_ids.columns)
    hashes = F.col("content_hash") if "content_hash" in columns else F.lit(None).cast("long")
    dates = F.col("ingest_date") if "ingest_date" in columns else F.lit(None).cast("date")
    return earlier_ids.groupBy(F.col(key).alias("_seen_id")).agg(
        F.collect_set(hashes).alias("_seen_hashes"), F.min(dates).alias("_seen_ingest_date")
    )


def bronze_rows(deduplicated: DataFrame, *, source: Source) -> DataFrame:
    """The rows of `deduplicated` bound for bronze, in the bronze table's columns."""
    cols = [f.name for f in source.bronze_fields] + ["event_date", "ingest_date", "source_file"]
    return deduplicated.filter(F.col("status") == BRONZE).select(*cols)


def quarantine_rows(deduplicated: DataFrame, *, source: Source) -> DataFrame:
    """The rows of `deduplicated` bound for the quarantine, as `QUARANTINE_SCHEMA`."""
    return deduplicated.filter(F.col("status") == QUARANTINE).select(
        F.lit(source.name).alias("source"),
        "ingest_date",
        "source_file",
        F.col("raw").cast("binary").alias("raw"),
        "reason",
        "detail",
    )


# --------------------------------------------------------------------------- I/O


@dataclasses.dataclass
class _Staged:
    source: Source
    rows: DataFrame  # persisted: classified, suppressed and deduplicated lines
    unread: list[lf.Unread]  # stretches of landing bytes not read as lines
    reconciliation: SourceReconciliation


def ingest_date(
    spark: SparkSession, config: Config, date: dt.date, sources: Iterable[str] | None = None
) -> IngestReport:
    """Ingest every source's landing files for one file date.

    Raises IngestError (and writes no bronze data) when a source's quarantine share
    passes `ingest.max_quarantine_share` with at least `ingest.min_quarantined_lines`
    lines quarantined; the rejected lines are still kept. Raises IngestError too when
    another ingest of the same date commits first (re-run it then).
    """
    lake = lk.Lake(config.lake)
    names = list(sources) if sources else list(SOURCES)
    listings = {name: lf.list_landing(spark, lake.landing(name, date)) for name in names}
    if not any(listing.files or listing.hidden for listing in listings.values()):
        raise IngestError(
            f"no landing files for {date.isoformat()} under {lake.root}/landing/<source>/date="
            f"{date.isoformat()}/ (sources: {', '.join(names)})"
        )
    landed = [n for n in names if listings[n].files or listings[n].hidden]
    for name in sorted(set(names) - set(landed)):
        log.info("ingest %s %s: no landing files", date, name)
    staged: list[_Staged] = []
    try:
        # Sources whose rules look up another source (viewing: the catalogue) come after
        # it, so a title landing today bounds today's views; the others all at once.
        for wave in _waves([SOURCES[n] for n in landed]):
            staged += _in_parallel(
                lambda source, earlier=tuple(staged): _stage(
                    spark,
                    config,
                    lake,
                    source,
                    date,
                    listings[source.name],
                    _references(spark, lake, source, earlier),
                ),
                wave,
            )
        staged.sort(key=lambda stage: landed.index(stage.source.name))
        report = IngestReport(date, tuple(s.reconciliation for s in staged), committed=False)
        with _first_to_commit(date):
            _write_quarantine(spark, lake, staged, date)
            _refuse_if_too_dirty(spark, config, lake, report, staged)
            _write_all_bronze(spark, lake, staged, date)
        report = dataclasses.replace(report, committed=True)
    finally:
        for stage in staged:
            stage.rows.unpersist()
    _record_run(spark, lake, report)
    return report


def _refuse_if_too_dirty(
    spark: SparkSession, config: Config, lake: lk.Lake, report: IngestReport, staged: list
) -> None:
    limit = config.ingest.max_quarantine_share
    over = [
        s.reconciliation
        for s in staged
        if s.reconciliation.quarantine_share > limit
        and s.reconciliation.quarantined >= config.ingest.min_quarantined_lines
    ]
    if not over:
        return
    refusal = IngestError(
        f"ingest {report.date.isoformat()} refused: quarantine share above "
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


# Delta's commit conflicts (each its own class: they share no Python base class).
_DELTA_CONFLICTS = tuple(getattr(delta.exceptions, name) for name in delta.exceptions.__all__)


@contextlib.contextmanager
def _first_to_commit(date: dt.date):
    """Turn Delta's conflict with a concurrent ingest of the same date into one line.

    Both runs wrote the same rows from the same files; the one that committed first
    stands, and this one's outcome is unknown until it is run again.
    """
    try:
        yield
    except _DELTA_CONFLICTS as exc:
        conflict = type(exc).__name__
        raise IngestError(
            f"ingest {date.isoformat()} stopped: another ingest of this date committed first "
            f"({conflict}); re-run it once the other has finished"
        ) from None


def _stage(
    spark: SparkSession,
    config: Config,
    lake: lk.Lake,
    source: Source,
    date: dt.date,
    listing: lf.Listing,
    references: dict[str, DataFrame],
) -> _Staged:
    read = lf.read_lines(spark, listing.files, config.ingest.max_line_bytes)
    try:
        classified = _classify(config, read.lines, source, date, references)
        # Cache the parsed lines before deduplicating: the filters that split accepted
        # from rejected lines would otherwise be pushed below the projection and re-parse
        # the JSON once per field they look at (measured: 5x slower at 500k lines).
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
        forgotten = _forgotten_tokens(spark, lake)
        if forgotten is not None and "account_id" in classified.columns:
            classified = suppress(
                classified,
                forgotten_tokens=forgotten,
                key=config.privacy.pseudonymization_key,
            )
        rows = deduplicate(
            classified,
            source=source,
            earlier_ids=_earlier_ids(spark, lake, source, date, config),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = (
                rows.groupBy("status", "reason", "source_file")
                .agg(F.count(F.lit(1)).alias("n"), F.sum(F.octet_length("raw") + 1).alias("bytes"))
                .collect()
            )
        finally:
            classified.unpersist()  # `rows` is materialized now; it is all the writers read
        line_bytes: dict[str, int] = {}
        for row in counts:
            line_bytes[row["source_file"]] = line_bytes.get(row["source_file"], 0) + row["bytes"]
        unread = listing.unread(spark) + read.unread(spark, line_bytes)
    finally:
        read.unpersist()
    reconciliation = _reconcile(source, listing, counts, unread)
    log.info("ingest %s %s: %s", date, source.name, reconciliation)
    return _Staged(source, rows, unread, reconciliation)


def _classify(
    config: Config,
    lines: DataFrame,
    source: Source,
    date: dt.date,
    references: dict[str, DataFrame],
) -> DataFrame:
    return classify_lines(
        lines,
        source=source,
        file_date=date,
        pseudonymization_key=config.privacy.pseudonymization_key,
        watermark_days=config.ingest.watermark_days,
        future_tolerance_hours=config.ingest.future_tolerance_hours,
        references=references,
    )


def _references(
    spark: SparkSession, lake: lk.Lake, source: Source, staged: Sequence[_Staged]
) -> dict[str, DataFrame]:
    """Rows of the sources `source`'s plausibility rules look up (the catalogue for
    viewing): what bronze holds plus what this run accepted before it, so a title that
    lands on the same day as its first views bounds them too."""
    references = {}
    for name in source.referenced_sources:
        columns = [f.name for f in SOURCES[name].bronze_fields]
        parts = [
            bronze_rows(stage.rows, source=stage.source).select(*columns)
            for stage in staged
            if stage.source.name == name
        ]
        if lk.table_exists(spark, lake.bronze(name)):
            parts.append(lk.read_table(spark, lake.bronze(name)).select(*columns))
        if parts:
            references[name] = functools.reduce(DataFrame.unionByName, parts)
    return references


def _reconcile(
    source: Source, listing: lf.Listing, counts: list, unread: list[lf.Unread]
) -> SourceReconciliation:
    by_status = {BRONZE: 0, QUARANTINE: 0, DUPLICATE: 0, SUPPRESSED: 0}
    reasons: dict[str, int] = {}
    for row in counts:
        by_status[row["status"]] += row["n"]
        if row["reason"]:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + row["n"]
    unread_bytes: dict[str, int] = {}
    for stretch in unread:
        reasons[stretch.reason] = reasons.get(stretch.reason, 0) + 1
        unread_bytes[stretch.reason] = unread_bytes.get(stretch.reason, 0) + stretch.unread_bytes
    if listing.bookkeeping:
        unread_bytes[lf.BOOKKEEPING_FILE] = sum(size for _, size in listing.bookkeeping)
    return SourceReconciliation(
        source=source.name,
        lines=sum(by_status.values()) + len(unread),
        bronze=by_status[BRONZE],
        quarantined=by_status[QUARANTINE] + len(unread),
        duplicates=by_status[DUPLICATE],
        suppressed=by_status[SUPPRESSED],
        reasons=reasons,
        files=len(listing.files),
        landing_bytes=listing.landing_bytes,
        line_bytes=sum(row["bytes"] or 0 for row in counts),
        unread_bytes=unread_bytes,
    )


def _forgotten_tokens(spark: SparkSession, lake: lk.Lake) -> DataFrame | None:
    """The suppression list (tokens of forgotten members' pseudonyms), if there is one."""
    if not lk.table_exists(spark, lake.forgotten_members):
        return None
    return lk.read_table(spark, lake.forgotten_members).select("token")


def _earlier_ids(
    spark: SparkSession, lake: lk.Lake, source: Source, date: dt.date, config: Config
) -> DataFrame:
    """Event ids already in bronze from other landing dates, within the watermark, with
    the content hash and ingest date of each row."""
    path = lake.bronze(source.name)
    if not lk.table_exists(spark, path):
        return spark.createDataFrame(
            [], f"`{source.id_field}` string, content_hash long, ingest_date date"
        )
    oldest = date - dt.timedelta(days=config.ingest.watermark_days + 1)
    return (
        lk.read_table(spark, path)
        .filter((F.col("event_date") >= F.lit(oldest)) & (F.col("ingest_date") != F.lit(date)))
        .select(source.id_field, content_hash(source).alias("content_hash"), "ingest_date")
    )


# Stagings and commits of one day run this many at a time: at a day's size each is
# mostly fixed latency (planning, Delta log reads and commits), which overlaps well.
_PARALLEL_SOURCES = 4


def _waves(sources: list[Source]) -> list[list[Source]]:
    """The sources in the order their look-ups allow: first those that look nothing up
    among the others, then the rest."""
    names = {s.name for s in sources}
    first = [s for s in sources if not names.intersection(s.referenced_sources)]
    rest = [s for s in sources if s not in first]
    return [wave for wave in (first, rest) if wave]


def _in_parallel(work, items: list) -> list:
    """``work`` of every item, several at once (Spark runs jobs of many threads side by
    side); results in the items' order; the first error is raised once all are done."""
    # Named after the calling thread, so that its logs and stack dumps say whose they are.
    caller = threading.current_thread().name
    pool = concurrent.futures.ThreadPoolExecutor(_PARALLEL_SOURCES, thread_name_prefix=caller)
    with pool:
        futures = [pool.submit(work, item) for item in items]
    return [future.result() for future in futures]


def _write_all_bronze(
    spark: SparkSession, lake: lk.Lake, staged: list[_Staged], date: dt.date
) -> None:
    # Dictionary settings are session-wide: one setting for every source's scattered columns.
    scattered = sorted({c for stage in staged for c in stage.source.scattered_columns})
    with lk.without_dictionaries(spark, scattered):
        _in_parallel(lambda stage: _write_bronze(lake, stage, date), staged)


def _write_bronze(lake: lk.Lake, stage: _Staged, date: dt.date) -> None:
    rows = bronze_rows(stage.rows, source=stage.source)
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
    unread = [
        (stage.source.name, date, s.source_file, None, s.reason, s.detail)
        for stage in staged
        for s in stage.unread
    ]
    if unread:
        parts.append(spark.createDataFrame(unread, QUARANTINE_SCHEMA))
    rows = functools.reduce(DataFrame.unionByName, parts)
    _restrict_quarantine_folder(spark, lake)
    _convert_raw_to_binary(spark, lake)
    lk.replace_slice(
        rows,
        lake.quarantine,
        slice_values={
            "ingest_date": date,
            "source": tuple(stage.source.name for stage in staged),
        },
        partition_by=["ingest_date", "source"],
    )


def _restrict_quarantine_folder(spark: SparkSession, lake: lk.Lake) -> None:
    """The quarantine holds raw lines, PII included: on a local disk its folder is the
    owner's only (0700). Object stores have no such modes; their access is set outside."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001
    folder = jvm.org.apache.hadoop.fs.Path(lake.quarantine).getParent()
    fs = folder.getFileSystem(conf)
    if fs.getScheme() != "file":
        return
    fs.mkdirs(folder)
    fs.setPermission(folder, jvm.org.apache.hadoop.fs.permission.FsPermission("700"))


def _convert_raw_to_binary(spark: SparkSession, lake: lk.Lake) -> None:
    """Rewrite a quarantine table from before `raw` became binary, once (same bytes)."""
    if not lk.table_exists(spark, lake.quarantine):
        return
    table = lk.read_table(spark, lake.quarantine)
    if table.schema["raw"].dataType == T.BinaryType():
        return
    log.info("quarantine %s: converting the raw column to bytes", lake.quarantine)
    lk.overwrite(
        table.withColumn("raw", F.col("raw").cast("binary")),
        lake.quarantine,
        partition_by=["ingest_date", "source"],
    )


_RUNS_SCHEMA = (
    "ingest_date date, run_at timestamp, committed boolean, source string, lines long, "
    "bronze long, quarantined long, duplicates long, reasons string, suppressed long, "
    "files long, landing_bytes long, line_bytes long, unread_bytes string"
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
            s.suppressed,
            s.files,
            s.landing_bytes,
            s.line_bytes,
            json.dumps(s.unread_bytes, sort_keys=True),
        )
        for s in report.sources
    ]
    # The log predates the suppressed and byte columns: they are added on first append.
    lk.append(spark.createDataFrame(rows, _RUNS_SCHEMA), lake.ingest_runs, merge_schema=True)

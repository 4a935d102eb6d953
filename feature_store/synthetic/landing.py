"""Serialize records to landing JSON lines, make some of them dirty, write one
folder per source per file date: `<lake>/landing/<source>/date=YYYY-MM-DD/`.

Each dirty kind is named after the reason ingestion must give it, and the number
injected of each is counted while the files are written (a Spark Observation, so
no second pass) and saved in the ground truth for tests to reconcile against.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.sources import Source
from feature_store.synthetic import rand as R

# Kinds that replace the record by a broken one.
REPLACING_KINDS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "unknown_value",
    "future_timestamp",
    "empty_line",
)
# Kinds that keep the record and add a copy of it.
COPY_KINDS = ("duplicate_in_file", "conflicting_duplicate", "duplicate_of_earlier_day")
DIRTY_KINDS = REPLACING_KINDS + COPY_KINDS

# Per source: a required field to drop, a field to give a wrong type, an enum
# field and a value outside it.
_DIRTY_FIELDS = {
    "accounts": ("account_id", "household_size", ("plan", "platinum")),
    "profiles": ("profile_id", "is_kids", None),
    "titles": ("title_id", "duration_minutes", ("kind", "podcast")),
    "viewing": ("title_id", "watch_seconds", ("event_type", "rewind")),
    "impressions": ("title_id", "row_position", ("page_row", "billboard")),
    "ratings": ("title_id", "event_ts", ("thumbs", "sideways")),
    "searches": ("query", "results_count", ("device", "smart_fridge")),
    "subscriptions": ("account_id", "event_ts", ("event_type", "pause_membership")),
}
_JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'", "ignoreNullFields": "true"}


def write_landing(
    records: DataFrame,
    *,
    source: Source,
    root: str,
    seed: int,
    start: dt.date,
    days: int,
    dirty_share: float,
    late_share: float,
    compression: str = "none",
) -> dict[str, int]:
    """Write one source's landing files for the whole window; return counts per kind."""
    end = start + dt.timedelta(days=days - 1)
    kinds = _dirty_kinds(source)
    marked = _mark_dirty_and_late(
        records,
        source=source,
        seed=seed,
        start=start,
        end=end,
        kinds=kinds,
        dirty_share=dirty_share,
        late_share=late_share,
    )
    exploded = marked.select("_kind", "_late", F.explode(_lines(source, end)).alias("line")).filter(
        F.col("line.keep")
    )
    observation = Observation(f"landing_{source.name}")
    out = exploded.observe(observation, *_metrics(kinds)).select(
        F.col("line.value").alias("value"), F.date_format("line.date", "yyyy-MM-dd").alias("date")
    )
    _write_text(out, root=root, source=source, compression=compression)
    return {k: int(v or 0) for k, v in observation.get.items()}


def _dirty_kinds(source: Source) -> tuple[str, ...]:
    """The dirty kinds this source can get: without an enum field, no unknown value."""
    _, _, enum = _DIRTY_FIELDS[source.name]
    return DIRTY_KINDS if enum else tuple(k for k in DIRTY_KINDS if k != "unknown_value")


def _mark_dirty_and_late(
    records: DataFrame,
    *,
    source: Source,
    seed: int,
    start: dt.date,
    end: dt.date,
    kinds: tuple[str, ...],
    dirty_share: float,
    late_share: float,
) -> DataFrame:
    """The records of the window with `_kind` (a dirty kind, or null when clean),
    `_file_date` (the day whose file holds the record) and `_late`. A clean record may
    land one to three days late, within the window; a dirty one is never late."""
    event_id = F.col(source.id_field)
    df = records.withColumn("_event_date", F.to_date(F.col(source.ts_field))).filter(
        F.col("_event_date").between(F.lit(start), F.lit(end))
    )
    dirty = R.uniform(seed, f"dirty:{source.name}", event_id) < dirty_share
    kind = F.when(
        dirty,
        F.element_at(
            F.array(*map(F.lit, kinds)),
            R.below(len(kinds), seed, f"kind:{source.name}", event_id) + 1,
        ),
    )
    lag = 1 + R.below(3, seed, f"lag:{source.name}", event_id)
    late = (
        ~dirty
        & (R.uniform(seed, f"late:{source.name}", event_id) < late_share)
        & (F.date_add(F.col("_event_date"), lag) <= F.lit(end))
    )
    return (
        df.withColumn("_kind", kind)
        .withColumn(
            "_file_date",
            F.when(late, F.date_add(F.col("_event_date"), lag)).otherwise(F.col("_event_date")),
        )
        .withColumn("_late", late)
    )


def _dirtied_field(name: str, source: Source) -> Column:
    """A field of the record, emptied, moved out of its enum or into the future when
    the record's kind says so."""
    missing, _, enum = _DIRTY_FIELDS[source.name]
    column = F.col(name)
    if name == missing:
        column = F.when(F.col("_kind") == "missing_field", F.lit(None)).otherwise(column)
    if enum and name == enum[0]:
        column = F.when(F.col("_kind") == "unknown_value", F.lit(enum[1])).otherwise(column)
    if name == source.ts_field:
        column = F.when(
            F.col("_kind") == "future_timestamp", column + F.expr("INTERVAL 400 DAYS")
        ).otherwise(column)
    return column.alias(name)


def _record_json(source: Source) -> Column:
    """The record's JSON line, broken as a replacing kind says (wrong type, cut in
    half, empty)."""
    _, mistyped, _ = _DIRTY_FIELDS[source.name]
    names = [f.name for f in source.fields]
    value = F.to_json(F.struct(*[_dirtied_field(n, source) for n in names]), _JSON_OPTIONS)
    return (
        F.when(
            F.col("_kind") == "wrong_type",
            F.regexp_replace(value, f'("{mistyped}":)("[^"]*"|[^,}}\\]]+)', '$1"n/a"'),
        )
        .when(
            F.col("_kind") == "malformed_json",
            F.substring(value, 1, F.floor(F.length(value) / 2).cast("int")),
        )
        .when(F.col("_kind") == "empty_line", F.lit(""))
        .otherwise(value)
    )


def _conflicting_json(source: Source) -> Column:
    """The record's JSON line one second later: the same event id with other content."""
    names = [f.name for f in source.fields]
    return F.to_json(
        F.struct(
            *[
                (F.col(n) + F.expr("INTERVAL 1 SECOND")).alias(n)
                if n == source.ts_field
                else F.col(n)
                for n in names
            ]
        ),
        _JSON_OPTIONS,
    )


def _line(role: str, keep: Column, text: Column, date: Column) -> Column:
    return F.struct(
        F.lit(role).alias("role"), keep.alias("keep"), text.alias("value"), date.alias("date")
    )


def _lines(source: Source, end: dt.date) -> Column:
    """Per record: its own line and each copy a copy kind adds, with whether to keep
    it and the day whose file it goes to (a copy of an earlier day only within the
    window)."""
    value = _record_json(source)
    next_day = F.date_add(F.col("_file_date"), 1)
    return F.array(
        _line("original", F.lit(True), value, F.col("_file_date")),
        _line(
            "duplicate_in_file", F.col("_kind") == "duplicate_in_file", value, F.col("_file_date")
        ),
        _line(
            "conflicting_duplicate",
            F.col("_kind") == "conflicting_duplicate",
            _conflicting_json(source),
            F.col("_file_date"),
        ),
        _line(
            "duplicate_of_earlier_day",
            (F.col("_kind") == "duplicate_of_earlier_day") & (next_day <= F.lit(end)),
            value,
            next_day,
        ),
    )


def _metrics(kinds: tuple[str, ...]) -> list[Column]:
    """What the write counts: lines, late records, and each dirty kind injected."""
    role = F.col("line.role")
    metrics = [
        F.count(F.lit(1)).alias("lines"),
        F.sum((F.col("_late") & (role == "original")).cast("int")).alias("late"),
    ]
    metrics += [
        F.sum(((role == "original") & (F.col("_kind") == k)).cast("int")).alias(k)
        for k in REPLACING_KINDS
        if k in kinds
    ]
    metrics += [F.sum((role == k).cast("int")).alias(k) for k in COPY_KINDS]
    return metrics


def _write_text(out: DataFrame, *, root: str, source: Source, compression: str) -> None:
    """Replace the days' folders `<root>/landing/<source>/date=...` with the lines."""
    with lk.concurrent_partition_writes(out.sparkSession):
        (
            out.write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .option("compression", compression)
            .partitionBy("date")
            .text(f"{root}/landing/{source.name}")
        )

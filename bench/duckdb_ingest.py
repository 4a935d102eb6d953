"""One day's ingestion in DuckDB SQL: a reference to time Spark's `ingest_date` against.

On the same landing files it does what `ingest.classify_lines`, `deduplicate` and the
writes do: every line parsed, the same checks in the same order, the same keyed pseudonyms
(HMAC-SHA256 in an Arrow function), repeats within the file and against earlier days, the
bronze rows (Parquet by event date) and the quarantined lines written. Its statuses,
reasons and bronze rows equal Spark's (tests/test_duckdb_ingest_reference.py).

Not mirrored, as no benchmark lake has them: the suppression list of forgotten members,
lines over `max_line_bytes` and compressed landing files; and the Delta log (plain Parquet).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from pathlib import Path

import duckdb
import pyarrow as pa
from pyspark.sql import types as T

from feature_store.privacy import PSEUDONYM_HEX_CHARS
from feature_store.sources import SOURCES, Field, Source

DUCKDB_TYPES = {
    T.StringType: "VARCHAR",
    T.IntegerType: "INTEGER",
    T.LongType: "BIGINT",
    T.DoubleType: "DOUBLE",
    T.BooleanType: "BOOLEAN",
    T.DateType: "DATE",
    T.TimestampType: "TIMESTAMP",
}
_WHOLE_NUMBER = r"\s*[+-]?[0-9]+\s*"  # what Spark's try_cast takes as an integer


def connect(pseudonymization_key: str, threads: int, memory: str) -> duckdb.DuckDBPyConnection:
    """A connection in UTC with the keyed `pseudonym` function."""
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}; SET memory_limit = '{memory}'; SET TimeZone = 'UTC'")
    key = pseudonymization_key.encode()

    def pseudonym(ids: pa.Array) -> pa.Array:
        digests = [
            None if raw is None else hmac.digest(key, raw.encode(), "sha256").hex()
            for raw in ids.to_pylist()
        ]
        return pa.array([d and d[:PSEUDONYM_HEX_CHARS] for d in digests], pa.string())

    con.create_function("pseudonym", pseudonym, ["VARCHAR"], "VARCHAR", type="arrow")
    return con


def ingest_day(
    con: duckdb.DuckDBPyConnection,
    *,
    landing: dict[str, list[str]],
    earlier_bronze: dict[str, list[str]],
    file_date: dt.date,
    out: Path,
    watermark_days: int,
    future_tolerance_hours: int,
) -> dict[str, dict[str, int]]:
    """Ingest each source's ``landing`` files of ``file_date`` into ``out``/bronze/<source>
    and ``out``/quarantine/<source>; ``earlier_bronze``: the Parquet files of each bronze
    table (their rows of other ingest dates count as earlier days). Returns the lines per
    status and reason for every source, as `IngestReport` counts them."""
    for name, source in SOURCES.items():
        _register_files(con, f"_earlier_{name}", earlier_bronze.get(name, []), source)
    counts: dict[str, dict[str, int]] = {}
    order = sorted(landing, key=lambda name: bool(SOURCES[name].referenced_sources))
    for name in order:  # the catalogue before the views its rules look up
        sql = staged_sql(
            SOURCES[name], landing[name], file_date, watermark_days, future_tolerance_hours,
            staged=set(counts),
        )  # fmt: skip
        con.execute(f"CREATE OR REPLACE TEMP TABLE _staged_{name} AS {sql}")
        counts[name] = _counts(con, name)
        _write(con, SOURCES[name], out)
    return counts


def staged_sql(
    source: Source,
    files: list[str],
    file_date: dt.date,
    watermark_days: int,
    future_tolerance_hours: int,
    *,
    staged: set[str],
) -> str:
    """Every line of ``files`` with its status, reason, detail and bronze columns;
    ``staged``: the sources of the day already staged (their accepted rows bound this
    one's fields as bronze's do)."""
    listed = ", ".join(_text(re.sub(r"^file:(//)?", "", f)) for f in files)
    paths = ", ".join(_text(f"$.{f.name}") for f in source.fields)
    raw = {f.name: f"_raw[{i + 1}]" for i, f in enumerate(source.fields)}
    typed = {f.name: _typed(f, raw[f.name]) for f in source.fields}
    bounds = _bound_joins(source, staged)
    checks = _checks(source, raw, typed, file_date, watermark_days, future_tolerance_hours)
    failure = (
        "CASE "
        + " ".join(
            f"WHEN {condition} THEN {{'reason': {_text(reason)}, 'detail': ({detail})::VARCHAR}}"
            for condition, reason, detail in checks
        )
        + " END"
    )
    bronze = [
        f"{'pseudonym(' + typed[f.name] + ')' if f.pseudonymize else typed[f.name]} AS {f.name}"
        for f in source.bronze_fields
    ]
    ts = typed[source.ts_field]
    classified = f"""
        WITH lines AS (
            SELECT coalesce(value, '') AS value, filename AS source_file
            FROM read_csv([{listed}], columns = {{'value': 'VARCHAR'}}, delim = E'\\x01',
                quote = '', escape = '', header = false, auto_detect = false,
                filename = true, strict_mode = false)
        ), valid AS (
            SELECT *, (CASE WHEN coalesce(json_valid(value), false) THEN value
                       ELSE 'null' END)::JSON AS _any FROM lines
        ), parsed AS (
            SELECT value, source_file, json_type(_any) = 'OBJECT' AS _object,
                CASE WHEN json_type(_any) = 'OBJECT' THEN _any ELSE '{{}}'::JSON END AS _json
            FROM valid
        ), fields AS (
            SELECT *, json_keys(_json) AS _keys, json_extract_string(_json, [{paths}]) AS _raw
            FROM parsed
        ), failed AS (
            SELECT *, {failure} AS _failure FROM fields {bounds}
        )
        SELECT value AS raw, source_file,
            CASE WHEN _failure IS NULL THEN 'bronze' ELSE 'quarantine' END AS status,
            _failure.reason AS reason, _failure.detail AS detail,
            {", ".join(bronze)}, CAST({ts} AS DATE) AS event_date,
            DATE {_text(file_date.isoformat())} AS ingest_date
        FROM failed
    """
    oldest = file_date - dt.timedelta(days=watermark_days + 1)
    return _deduplicated(source, classified, file_date, oldest)


def _deduplicated(source: Source, classified: str, file_date: dt.date, oldest: dt.date) -> str:
    """`deduplicate`: the first copy of an id (by time, then text) stays; an exact copy
    is a duplicate, another version quarantined; the same against the bronze rows of
    other ingest dates since ``oldest``."""
    key, ts = source.id_field, source.ts_field
    content = _content_hash(source)
    return f"""
        WITH classified AS ({classified}),
        seen AS (
            SELECT {key} AS _seen_id, list_distinct(list({content})) AS _seen_hashes,
                min(ingest_date) AS _seen_date
            FROM _earlier_{source.name}
            WHERE event_date >= DATE {_text(oldest.isoformat())}
                AND ingest_date <> DATE {_text(file_date.isoformat())}
            GROUP BY {key}
        ), ranked AS (
            SELECT c.*, row_number() OVER w AS _rank, first(raw) OVER w AS _first_raw
            FROM classified c WHERE status = 'bronze'
            WINDOW w AS (PARTITION BY {key} ORDER BY {ts} ASC NULLS LAST, raw)
        ), marked AS (
            SELECT r.*, seen.*, CASE
                WHEN _rank > 1 AND raw = _first_raw THEN {{'s': 'duplicate', 'r': 'duplicate_in_file', 'd': NULL}}
                WHEN _rank > 1 THEN {{'s': 'quarantine', 'r': 'conflicting_duplicate', 'd': {_text(key)}}}
                WHEN _seen_id IS NOT NULL AND len(_seen_hashes) > 0
                    AND NOT list_contains(_seen_hashes, {content})
                    THEN {{'s': 'quarantine', 'r': 'conflicting_duplicate_of_earlier_day',
                          'd': {_text(key + " already in bronze from ingest date ")}
                               || strftime(_seen_date, '%Y-%m-%d') || ' with other content'}}
                WHEN _seen_id IS NOT NULL THEN {{'s': 'duplicate', 'r': 'duplicate_of_earlier_day', 'd': NULL}}
                ELSE {{'s': 'bronze', 'r': NULL, 'd': NULL}} END AS _outcome
            FROM ranked r LEFT JOIN seen ON r.{key} = seen._seen_id
        )
        SELECT * EXCLUDE (_rank, _first_raw, _seen_id, _seen_hashes, _seen_date, _outcome)
            REPLACE (_outcome.s AS status, _outcome.r AS reason, _outcome.d AS detail)
        FROM marked
        UNION ALL BY NAME
        SELECT * FROM classified WHERE status <> 'bronze'
    """  # noqa: E501


def _content_hash(source: Source) -> str:
    """A hash of the bronze columns, each in its declared type (a timestamp of Spark's
    Parquet reads as TIMESTAMPTZ)."""
    return (
        "hash(" + ", ".join(f"{f.name}::{_duck_type(f.dtype)}" for f in source.bronze_fields) + ")"
    )


def _typed(field: Field, raw: str) -> str:
    """The field's value parsed from its JSON text, NULL when it does not fit the type."""
    dtype = field.dtype
    if isinstance(dtype, T.ArrayType):
        return f"try(from_json({raw}, {_text(_json_structure(dtype))}))"
    name = DUCKDB_TYPES[type(dtype)]
    if name == "VARCHAR":
        return raw
    if name in ("INTEGER", "BIGINT"):
        return f"CASE WHEN regexp_full_match({raw}, {_text(_WHOLE_NUMBER)}) THEN TRY_CAST(trim({raw}) AS {name}) END"  # noqa: E501
    if name == "TIMESTAMP":
        return f"TRY_CAST({raw} AS TIMESTAMPTZ)::TIMESTAMP"
    return f"TRY_CAST({raw} AS {name})"


def _json_structure(dtype: T.DataType) -> str:
    if isinstance(dtype, T.ArrayType):
        return f"[{_json_structure(dtype.elementType)}]"
    if isinstance(dtype, T.StructType):
        return "{" + ", ".join(f'"{f.name}": {_json_structure(f.dataType)}' for f in dtype) + "}"
    return '"VARCHAR"'


def _checks(source, raw, typed, file_date, watermark_days, future_tolerance_hours) -> list:
    """(condition, reason, detail SQL) in `classify_lines`' order: the first that holds
    is the line's reason."""
    checks = [
        ("trim(value) = ''", "empty_line", "NULL"),
        ("NOT _object", "malformed_json", "NULL"),
        (f"{_first_repeated('_keys')} IS NOT NULL", "duplicate_key", _first_repeated("_keys")),
    ]
    for f in source.fields:
        nested = _nested_repeated(f, raw[f.name])
        if nested:
            checks.append((f"{nested} IS NOT NULL", "duplicate_key", f"'{f.name}.' || {nested}"))
    checks += [(f"{raw[f.name]} IS NULL", "missing_field", _text(f.name))
               for f in source.fields if f.required]  # fmt: skip
    checks += [(_wrong_type(f, raw[f.name], typed[f.name]), "wrong_type", _text(f.name))
               for f in source.fields]  # fmt: skip
    checks += [(_outside(f, typed[f.name]), "unknown_value", _text(f.name))
               for f in source.fields if f.allowed]  # fmt: skip
    for f in source.fields:
        broken = _broken_rules(f, typed[f.name])
        if f.among is not None:
            broken.append(f"NOT coalesce(list_contains({typed[f.among]}, {typed[f.name]}), true)")
        if broken:
            checks.append((" OR ".join(broken), "implausible_value", _text(f.name)))
    ts = typed[source.ts_field]
    day_start = dt.datetime.combine(file_date, dt.time())
    future = day_start + dt.timedelta(hours=24 + future_tolerance_hours)
    watermark = file_date - dt.timedelta(days=watermark_days)
    checks += [
        (f"{ts} >= TIMESTAMP {_text(future.isoformat(sep=' '))}", "future_timestamp",
         _text(source.ts_field)),
        (f"CAST({ts} AS DATE) < DATE {_text(watermark.isoformat())}", "beyond_watermark",
         _text(source.ts_field)),
    ]  # fmt: skip
    return [(f"coalesce({c}, false)", reason, detail) for c, reason, detail in checks]


def _first_repeated(keys: str) -> str:
    """The first key of the list that appeared earlier in it."""
    return f"list_filter({keys}, lambda k, i: list_position({keys}, k) <> i)[1]"


def _nested_repeated(field: Field, raw: str) -> str | None:
    """The first key repeated inside the objects a struct or array-of-struct field holds."""
    dtype = field.dtype
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.StructType):
        objects = f"try(from_json({raw}, '[\"JSON\"]'))"
    elif isinstance(dtype, T.StructType):
        objects = f"[{raw}::JSON]"
    else:
        return None
    keys = "json_keys(o)"
    repeated = f"list_filter({keys}, lambda k, i: list_position({keys}, k) <> i)"
    return f"flatten(list_transform({objects}, lambda o: {repeated}))[1]"


def _wrong_type(field: Field, raw: str, typed: str) -> str:
    """Present but not of the type; a string field given an object or an array; a null
    item in an array that allows none."""
    wrong = f"({raw} IS NOT NULL AND {typed} IS NULL)"
    if isinstance(field.dtype, T.StringType):
        wrong += f" OR json_type(_json, {_text('$.' + field.name)}) IN ('OBJECT', 'ARRAY')"
    if isinstance(field.dtype, T.ArrayType) and not field.dtype.containsNull:
        wrong += f" OR list_contains(list_transform({typed}, lambda x: x IS NULL), true)"
    return wrong


def _outside(field: Field, value: str) -> str:
    allowed = "[" + ", ".join(_text(v) for v in field.allowed) + "]"
    if isinstance(field.dtype, T.ArrayType):
        return f"len(list_filter({value}, lambda x: NOT list_contains({allowed}, x))) > 0"
    return f"{value} IS NOT NULL AND NOT list_contains({allowed}, {value})"


def _broken_rules(field: Field, value: str) -> list[str]:
    broken = []
    for bound, op in ((field.minimum, "<"), (field.maximum, ">")):
        if bound is not None:
            literal = f"DATE '{bound}'" if isinstance(bound, dt.date) else str(bound)
            broken.append(f"{value} {op} {literal}")
    if field.above is not None:
        broken.append(f"{value} <= {field.above}")
    if field.bounded_by is not None:
        broken.append(f"{value} > _ref_{field.name} * {field.bounded_by.factor}")
    if field.max_items is not None:
        broken.append(f"len({value}) > {field.max_items}")
    if field.holds_strings and not field.allowed:
        broken.append(_any_string(field.dtype, value, _re2(field.text.pattern)))
    return broken


def _re2(java_pattern: str) -> str:
    """The Java pattern of a `Text` rule as RE2 (full match; UTF-8 holds no surrogates)."""
    return java_pattern.removeprefix(r"\A").removesuffix(r"\z").replace(r"\p{Cs}", "")


def _any_string(dtype: T.DataType, value: str, pattern: str) -> str:
    if isinstance(dtype, T.ArrayType):
        inner = _any_string(dtype.elementType, "x", pattern)
        return f"len(list_filter({value}, lambda x: {inner})) > 0"
    if isinstance(dtype, T.StructType):
        parts = [
            _any_string(f.dataType, f"{value}.{f.name}", pattern)
            for f in dtype.fields
            if isinstance(f.dataType, T.StringType | T.ArrayType | T.StructType)
        ]
        return "(" + " OR ".join(parts) + ")"
    return f"NOT regexp_full_match({value}, {_text(pattern)})"


def _bound_joins(source: Source, staged: set[str]) -> str:
    """Joins of the largest referenced value per key (the catalogue's durations for
    viewing), from bronze and this run's accepted rows, as `_ref_<field>` columns."""
    joins = []
    for f in source.fields:
        ref = f.bounded_by
        if ref is None:
            continue
        table = f"SELECT {ref.key}, {ref.field} FROM _earlier_{ref.source}"
        if ref.source in staged:
            table += f" UNION ALL SELECT {ref.key}, {ref.field} FROM _staged_{ref.source} " \
                     "WHERE status = 'bronze'"  # fmt: skip
        joins.append(
            f"LEFT JOIN (SELECT {ref.key} AS _k_{f.name}, max({ref.field}) AS _ref_{f.name} "
            f"FROM ({table}) GROUP BY {ref.key}) "
            f"ON _k_{f.name} = _raw[{_position(source, ref.key)}]"
        )
    return " ".join(joins)


def _position(source: Source, name: str) -> int:
    return [f.name for f in source.fields].index(name) + 1


def _register_files(con, view: str, files: list[str], source: Source) -> None:
    """A view over a bronze table's Parquet files; an empty one when there are none."""
    if files:
        listed = ", ".join(_text(re.sub(r"^file:(//)?", "", f)) for f in files)
        con.execute(
            f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{listed}], "
            "hive_partitioning = true, hive_types = {'event_date': DATE})"
        )
        return
    columns = ", ".join(f"NULL::{_duck_type(f.dtype)} AS {f.name}" for f in source.bronze_fields)
    con.execute(
        f"CREATE OR REPLACE VIEW {view} AS SELECT {columns}, NULL::DATE AS ingest_date LIMIT 0"
    )


def _duck_type(dtype: T.DataType) -> str:
    if isinstance(dtype, T.ArrayType):
        return f"{_duck_type(dtype.elementType)}[]"
    if isinstance(dtype, T.StructType):
        return "STRUCT(" + ", ".join(f"{f.name} {_duck_type(f.dataType)}" for f in dtype) + ")"
    return DUCKDB_TYPES[type(dtype)]


def _counts(con, name: str) -> dict[str, int]:
    rows = con.execute(
        f"SELECT status, reason, count(*) FROM _staged_{name} GROUP BY ALL"
    ).fetchall()
    return {f"{status}:{reason}" if reason else status: n for status, reason, n in rows}


def _write(con, source: Source, out: Path) -> None:
    """The bronze rows by event date and the quarantined lines, as Parquet."""
    name = source.name
    (out / "quarantine").mkdir(parents=True, exist_ok=True)
    (out / "bronze").mkdir(exist_ok=True)
    columns = ", ".join(f.name for f in source.bronze_fields)
    con.execute(
        f"COPY (SELECT {columns}, event_date, ingest_date, source_file FROM _staged_{name} "
        f"WHERE status = 'bronze') TO {_text(str(out / 'bronze' / name))} "
        "(FORMAT parquet, PARTITION_BY (event_date), OVERWRITE_OR_IGNORE)"
    )
    con.execute(
        f"COPY (SELECT {_text(name)} AS source, ingest_date, source_file, encode(raw) AS raw, "
        f"reason, detail FROM _staged_{name} WHERE status = 'quarantine') "
        f"TO {_text(str(out / 'quarantine' / f'{name}.parquet'))} (FORMAT parquet)"
    )


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

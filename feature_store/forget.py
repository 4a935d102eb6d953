"""Forgetting a member: erase an account and its profiles everywhere, and keep them out.

The request names the account by its raw id. In order, each step safe to run again when a
forget failed half-way: suppress the account (ingestion drops its lines from then on),
collect its keys, rewrite the published versions holding it, delete its rows from every
Delta table with a member column and its lines from the landing quarantine and files (the
tables mapping profiles to the account last), VACUUM, and audit the request. No raw id or
pseudonym reaches a Delta log, a log line or the audit. The steps: docs/forgetting.md.
"""

from __future__ import annotations

import bz2
import dataclasses
import datetime as dt
import functools
import gzip
import json
import logging
import operator
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk
from feature_store import publish
from feature_store.config import Config
from feature_store.privacy import (
    pseudonymize,
    pseudonymize_value,
    suppression_token,
    suppression_token_value,
)

log = logging.getLogger(__name__)

DELTA_DEFAULT_RETENTION_HOURS = 168  # below this Delta refuses VACUUM unless told otherwise
MEMBER_COLUMNS = ("account_id", "profile_id")
MEMBER_KEY = "_member"  # the one column of the frame of the member's pseudonyms
SUPPRESSION_SCHEMA = "token string, request_id string, forgotten_at timestamp"
# Folders of the lake the table sweep leaves alone: landing files are rewritten as files;
# the generator's hidden truth is test data (docs/forgetting.md); the lists below are this module's.
_NOT_SWEPT = ("landing", "ground_truth", "privacy", "ops/forget_requests", "_forget_staging")
_PROFILE_OF_ACCOUNT = re.compile(r"^(?P<account>.+)-p[0-9]+$")  # generator: <account>-p<n>
_STRING = r'"((?:[^"\\]|\\.)*)"'
_PAIR = re.compile(_STRING + r"\s*:\s*" + _STRING)
_TRUNCATED_PAIR = re.compile(_STRING + r'\s*:\s*"((?:[^"\\]|\\.)*)$')


@dataclasses.dataclass(frozen=True)
class ForgetReport:
    request_id: str
    suppression_token: str
    profiles: int
    deleted: dict[str, int]  # table path or published version -> rows deleted
    landing_files: int  # landing files rewritten without the member
    landing_lines: int  # lines removed from them
    vacuumed: tuple[str, ...]
    retention_hours: int

    def format_table(self) -> str:
        """The report as text: rows deleted per table, landing lines removed, vacuum."""
        lines = [
            f"forget request {self.request_id}: an account and {self.profiles} profile(s); "
            f"suppression token {self.suppression_token[:16]}…",
            f"{'table':<60}{'rows deleted':>14}",
        ]
        lines += [f"{path:<60}{n:>14,}" for path, n in sorted(self.deleted.items())]
        lines.append(
            f"landing: {self.landing_lines:,} line(s) removed from {self.landing_files} file(s)"
        )
        lines.append(
            f"vacuumed {len(self.vacuumed)} table(s); files older than "
            f"{self.retention_hours} h that held deleted rows are gone"
        )
        return "\n".join(lines)


def forget_account(spark: SparkSession, config: Config, raw_account_id: str) -> ForgetReport:
    """Erase one account and its profiles from every table, file and published version."""
    account_id = normalise_id(raw_account_id or "")
    if not account_id:
        raise ValueError("forget: the account id is empty")
    landing = _local_folder(lk.Lake(config.lake).landing(""))  # checked before any change
    # Held throughout: a publish running meanwhile could copy the member's rows out of a
    # table before the delete and make them visible after the published versions are clean.
    with publish.lock(config.paths.published):
        return _forget_account(spark, config, account_id, landing)


def _forget_account(
    spark: SparkSession, config: Config, account_id: str, landing: Path
) -> ForgetReport:
    request_id = str(uuid.uuid4())
    lake = lk.Lake(config.lake)
    key = config.privacy.pseudonymization_key
    account = pseudonymize_value(account_id, key)
    token = suppression_token_value(account)
    _suppress(spark, lake, token, request_id)
    tables = _member_tables(spark, lake)
    # Tables holding both ids map profiles to the account: they go last, so that a re-run
    # after a failure still finds the profiles.
    mapping = [(p, cols) for p, cols in tables if len(cols) == len(MEMBER_COLUMNS)]
    members = _member_keys(spark, account, [p for p, _ in mapping])
    keys = spark.createDataFrame([(m,) for m in sorted(members)], f"{MEMBER_KEY} string")
    log.info("forget %s: an account and %d profile(s)", request_id, len(members) - 1)

    deleted = publish.forget_in_published(spark, config, keys, request_id)
    for path, columns in [t for t in tables if t not in mapping]:
        deleted[path] = _delete_member_rows(spark, path, columns, keys)
    quarantined = _forget_in_quarantine(spark, lake, keys, key)
    if quarantined is not None:
        deleted[lake.quarantine] = quarantined
    # A batch scoring run that died leaves its Parquet staging (every profile's list,
    # not Delta); the next run would replace it, but the member must not wait for that.
    lk.delete_path(spark, lake.recs("_staging"))
    is_member = functools.partial(_names_member, members=members, key=key)
    files, lines = forget_in_landing(landing, _local_folder(lake.root) / "_forget_staging",
                                     is_member)  # fmt: skip
    for path, columns in mapping:
        deleted[path] = _delete_member_rows(spark, path, columns, keys)
    # Every table, not only those touched now: a re-run after a failure must still vacuum.
    swept = tuple(p for p, _ in tables) + ((lake.quarantine,) if quarantined is not None else ())
    _vacuum(spark, swept, config.privacy.vacuum_retention_hours)

    report = ForgetReport(
        request_id=request_id,
        suppression_token=token,
        profiles=len(members) - 1,
        deleted=deleted,
        landing_files=files,
        landing_lines=lines,
        vacuumed=swept,
        retention_hours=config.privacy.vacuum_retention_hours,
    )
    _audit(spark, lake, report)
    log.info("forget %s: %s rows deleted", request_id, f"{sum(report.deleted.values()):,}")
    return report


# ---- ids as the landing lines spell them ------------------------------------------------


def normalise_id(value: str) -> str:
    """An id as the platform compares it: Unicode NFKC, surrounding blanks removed."""
    return unicodedata.normalize("NFKC", value).strip()


def ids_in_line(line: str | bytes | None) -> list[str]:
    """Every id a landing line gives in an `account_id` or `profile_id` field, decoded and
    normalised, and each profile id's account; sorted. Parsed as JSON (all values of a
    repeated key, at any depth); a line that is not JSON gives its complete
    ``"key": "value"`` pairs."""
    if line is None:
        return []
    text = line.decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else line
    found: set[str] = set()
    for name, value in _pairs(text):
        if normalise_id(name) in MEMBER_COLUMNS:
            for item in _strings(value):
                item = normalise_id(item)
                found.add(item)
                profile = _PROFILE_OF_ACCOUNT.match(item)
                if profile:
                    found.add(profile["account"])
    found.discard("")
    return sorted(found)


def _pairs(text: str) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = []

    def keep(items: list[tuple[str, object]]) -> dict:
        pairs.extend(items)
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=keep)
        return pairs
    except (ValueError, RecursionError):
        pass
    found = [(_unescape(k), _unescape(v)) for k, v in _PAIR.findall(text)]
    return found + [(_unescape(k), _unescape(v)) for k, v in _TRUNCATED_PAIR.findall(text)]


def _unescape(text: str) -> str:
    try:
        return json.loads(f'"{text}"')
    except ValueError:
        return text


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield value if isinstance(value, str) else json.dumps(value)


def _names_member(line: bytes, *, members: frozenset[str], key: str) -> bool:
    return any(pseudonymize_value(i, key) in members for i in ids_in_line(line))


# ---- the suppression list and the member's keys -----------------------------------------


def _suppress(spark: SparkSession, lake: lk.Lake, token: str, request_id: str) -> None:
    """Add the token to the suppression list once (a re-run keeps the first request)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = spark.createDataFrame([(token, request_id, now)], SUPPRESSION_SCHEMA)
    if not lk.table_exists(spark, lake.forgotten_members):
        lk.append(row, lake.forgotten_members)
        return
    (
        DeltaTable.forPath(spark, lake.forgotten_members)
        .alias("t")
        .merge(row.alias("s"), F.col("t.token") == F.col("s.token"))
        .whenNotMatchedInsertAll()
        .execute()
    )


def _member_tables(spark: SparkSession, lake: lk.Lake) -> list[tuple[str, tuple[str, ...]]]:
    """(path, member columns) of every Delta table under the lake that has one."""
    found = []
    for relative in _delta_tables(_local_folder(lake.root)):
        path = f"{lake.root.rstrip('/')}/{relative}"
        columns = set(lk.read_table(spark, path).columns)
        member = tuple(c for c in MEMBER_COLUMNS if c in columns)
        if member:
            found.append((path, member))
    return found


def _delta_tables(root: Path) -> list[str]:
    """Folders under ``root`` (relative, sorted) holding a Delta log, but `_NOT_SWEPT`;
    the walk does not descend into tables or skipped folders."""
    tables = []
    for folder, children, _ in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        if "_delta_log" in children:
            tables.append(relative)
            children.clear()
        children[:] = sorted(
            c for c in children if f"{relative}/{c}".removeprefix("./") not in _NOT_SWEPT
        )
    return sorted(tables)


def _member_keys(spark: SparkSession, account: str, mapping_tables: list[str]) -> frozenset[str]:
    """The account's pseudonym and every profile pseudonym seen with it. Joined against a
    frame, not compared with a literal: a literal would reach Spark's plans and py4j's
    debug log."""
    accounts = spark.createDataFrame([(account,)], f"{MEMBER_KEY} string")
    found = {account}
    for path in mapping_tables:
        rows = (
            lk.read_table(spark, path)
            .join(F.broadcast(accounts), F.col("account_id") == F.col(MEMBER_KEY), "left_semi")
            .select("profile_id")
            .distinct()
            .collect()
        )
        found.update(r["profile_id"] for r in rows if r["profile_id"])
    return frozenset(found)


# ---- Delta tables ---------------------------------------------------------------------------


def _delete_member_rows(
    spark: SparkSession, path: str, columns: tuple[str, ...], keys: DataFrame
) -> int:
    """MERGE ... WHEN MATCHED DELETE against the keys: the condition names columns only."""
    started = time.perf_counter()
    table = DeltaTable.forPath(spark, path)
    condition = functools.reduce(
        operator.or_, [F.col(f"t.{c}") == F.col(f"s.{MEMBER_KEY}") for c in columns]
    )
    result = table.alias("t").merge(keys.alias("s"), condition).whenMatchedDelete().execute()
    deleted = _merge_count(result, "num_deleted_rows")
    log.info("forget: %s rows deleted from %s in %.1fs", deleted, path,
             time.perf_counter() - started)  # fmt: skip
    return deleted


def _merge_count(result: DataFrame | None, column: str) -> int:
    row = result.first() if result is not None else None
    return int(row.asDict().get(column) or 0) if row is not None else 0


@F.pandas_udf(T.ArrayType(T.StringType()))
def _ids_in_lines(lines: pd.Series) -> pd.Series:
    # JSON with escapes, repeated keys and broken lines: Python's parser, not Spark's.
    return lines.map(ids_in_line)


def _forget_in_quarantine(spark: SparkSession, lake: lk.Lake, keys: DataFrame, key: str):
    """Delete the quarantined lines that name the member (the raw column may be string or
    binary). Rows are matched by their partition and a hash of the raw line."""
    if not lk.table_exists(spark, lake.quarantine):
        return None
    started = time.perf_counter()
    table = DeltaTable.forPath(spark, lake.quarantine)
    raw_hash = F.sha2(F.col("raw").cast("binary"), 256)
    candidates = table.toDF().select(
        "source", "ingest_date", raw_hash.alias("raw_sha256"),
        F.explode(_ids_in_lines(F.col("raw").cast("string"))).alias("id"),
    )  # fmt: skip
    named = candidates.withColumn("pseudonym", pseudonymize(F.col("id"), key)).join(
        F.broadcast(keys), F.col("pseudonym") == F.col(MEMBER_KEY), "left_semi"
    )
    doomed = named.select("source", "ingest_date", "raw_sha256").distinct().collect()
    if not doomed:
        return 0
    frame = spark.createDataFrame(doomed, "source string, ingest_date date, raw_sha256 string")
    condition = (
        (F.col("t.source") == F.col("s.source"))
        & (F.col("t.ingest_date") == F.col("s.ingest_date"))
        & (F.sha2(F.col("t.raw").cast("binary"), 256) == F.col("s.raw_sha256"))
    )
    result = table.alias("t").merge(frame.alias("s"), condition).whenMatchedDelete().execute()
    deleted = _merge_count(result, "num_deleted_rows")
    log.info("forget: %s quarantined lines deleted in %.1fs", deleted,
             time.perf_counter() - started)  # fmt: skip
    return deleted


def _vacuum(spark: SparkSession, paths: tuple[str, ...], retention_hours: int) -> None:
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = spark.conf.get(check, "true")
    if retention_hours < DELTA_DEFAULT_RETENTION_HOURS:
        # A shorter window is the operator's policy (config), not an accident.
        spark.conf.set(check, "false")
    try:
        for path in paths:
            table = DeltaTable.forPath(spark, path)
            if _uses_deletion_vectors(table):
                # Rows deleted through deletion vectors stay in the data files until purged.
                # REORG has no Python API; the path is a lake path, never user input.
                if "`" in path:
                    raise ValueError(f"refusing a table path with a backtick: {path!r}")
                spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
            started = time.perf_counter()
            table.vacuum(float(retention_hours))
            log.info("forget: vacuumed %s in %.1fs", path, time.perf_counter() - started)
    finally:
        spark.conf.set(check, previous)


def _uses_deletion_vectors(table: DeltaTable) -> bool:
    properties = table.detail().select("properties").first()["properties"] or {}
    return properties.get("delta.enableDeletionVectors", "false").lower() == "true"


# ---- landing files --------------------------------------------------------------------------

_OPENERS: dict[str, Callable] = {".gz": gzip.open, ".bz2": bz2.open}
_UNREADABLE = (EOFError, OSError, ValueError)  # truncated or corrupt archives


def forget_in_landing(
    landing: Path, staging: Path, is_member: Callable[[bytes], bool]
) -> tuple[int, int]:
    """Rewrite every landing file (any source, date or name) without the lines
    ``is_member`` names; returns (files rewritten, lines removed). Each file is replaced
    in one rename by a copy written beside the lake (same filesystem), compressed as it
    was; the landing folder never holds a partial file."""
    shutil.rmtree(staging, ignore_errors=True)  # what a failed forget left
    files = lines = 0
    for path in sorted(p for p in landing.rglob("*") if p.is_file() and not p.is_symlink()):
        opener = _opener(path)
        if opener is None:
            log.warning("forget: cannot read %s (unsupported compression); not checked", path)
            continue
        removed = sum(1 for line in _lines(path, opener) if is_member(line))
        if removed:
            _rewrite_without(path, opener, is_member, staging)
            files, lines = files + 1, lines + removed
    shutil.rmtree(staging, ignore_errors=True)
    log.info("forget: %d landing line(s) removed from %d file(s)", lines, files)
    return files, lines


def _opener(path: Path) -> Callable | None:
    suffix = path.suffix.lower()
    if suffix in _OPENERS:
        return _OPENERS[suffix]
    return None if suffix in (".deflate", ".lz4", ".snappy", ".zst") else open


def _lines(path: Path, opener: Callable) -> Iterator[bytes]:
    try:
        with opener(path, "rb") as handle:
            yield from handle
    except _UNREADABLE as exc:  # the readable lines were given; the rest is not text
        log.warning("forget: %s is unreadable after some lines (%s)", path, type(exc).__name__)


def _rewrite_without(
    path: Path, opener: Callable, is_member: Callable[[bytes], bool], staging: Path
) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{uuid.uuid4().hex}{path.suffix}"
    try:
        with open(tmp, "wb") as raw, _compressor(opener, raw) as out:
            for line in _keep(_lines(path, opener), is_member):
                out.write(line)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)  # readers see the old file or the new one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _keep(lines: Iterable[bytes], is_member: Callable[[bytes], bool]) -> Iterator[bytes]:
    return (line for line in lines if not is_member(line))


def _compressor(opener: Callable, raw):
    if opener is gzip.open:
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
    if opener is bz2.open:
        return bz2.BZ2File(raw, "wb")
    return _Unclosed(raw)


class _Unclosed:
    """A plain file written through the same `with` as the compressed ones."""

    def __init__(self, raw):
        self.raw = raw

    def __enter__(self):
        return self.raw

    def __exit__(self, *exc) -> None:
        self.raw.flush()


def _local_folder(path: str) -> Path:
    """A lake path on the local filesystem (plain or file: URI); landing files are
    rewritten with Python's file API, which has no object-store client."""
    if path.startswith("file:"):
        path = re.sub(r"^file:(//)?", "", path)
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path):
        raise ValueError(f"forget: the lake {path} is not on a local filesystem")
    return Path(path)


# ---- audit -----------------------------------------------------------------------------------

AUDIT_SCHEMA = (
    "request_id string, requested_at timestamp, suppression_token string, profiles int, "
    "deleted_rows_by_table string, deleted_rows long, landing_files_rewritten int, "
    "landing_lines_removed long, vacuum_retention_hours int"
)


def _audit(spark: SparkSession, lake: lk.Lake, report: ForgetReport) -> None:
    row = (
        report.request_id,
        dt.datetime.now(dt.UTC).replace(tzinfo=None),
        report.suppression_token,
        report.profiles,
        json.dumps(report.deleted, sort_keys=True),
        sum(report.deleted.values()),
        report.landing_files,
        report.landing_lines,
        report.retention_hours,
    )
    _migrate_audit(spark, lake, report.retention_hours)
    lk.append(spark.createDataFrame([row], AUDIT_SCHEMA), lake.forget_requests)


def _migrate_audit(spark: SparkSession, lake: lk.Lake, retention_hours: int) -> None:
    """Audit rows written before the suppression list held pseudonyms: replaced by their
    tokens, and the files that held them vacuumed."""
    path = lake.forget_requests
    if not lk.table_exists(spark, path):
        return
    old = lk.read_table(spark, path)
    if "account_pseudonym" not in old.columns:
        return
    old = old.withColumn("suppression_token", suppression_token(F.col("account_pseudonym")))
    schema = T.StructType.fromDDL(AUDIT_SCHEMA)
    migrated = old.select(
        *[
            (F.col(f.name) if f.name in old.columns else F.lit(None)).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    ).localCheckpoint()
    lk.overwrite(migrated, path)
    _vacuum(spark, (path,), retention_hours)

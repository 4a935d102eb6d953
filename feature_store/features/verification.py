"""Check that committed feature partitions are still what their build validated.

`verify_recorded` checks, per table and date, the build's record in `<lake>/ops/feature_builds`
instead of running the expectations again: the latest attempt is `committed`, its
validation result says success, the commit wrote that partition, and no later commit added
or removed a file of it (compaction does not count). A partition a later commit touched is
validated again (`build.revalidate`); a failed record is a failure with the reason. No
feature data is scanned. The checks and how the Delta log answers them:
docs/feature-store.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.features.build import COMMITTED, Revalidation, build_order, revalidate
from feature_store.features.definitions import AS_OF
from feature_store.features.validation import ValidationOutcome

log = logging.getLogger(__name__)

VERIFIED, REVALIDATED, FAILED = "verified", "revalidated", "failed"
_ALL_DATES = None  # a data change whose commit names no as-of date: it may touch any
_RECENT_COMMITS = 32  # history read at first: enough for the commits since a recent build


@dataclasses.dataclass(frozen=True)
class Verification:
    """Whether one table's partition for one date is covered by a passing verdict."""

    table: str
    as_of: dt.date
    status: str  # VERIFIED, REVALIDATED or FAILED
    version: int | None  # the table version the recorded verdict covers
    reason: str = ""  # why it was re-validated, or why it failed
    outcome: ValidationOutcome | None = None  # the re-validation's verdict, if one ran

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def line(self) -> str:
        """The verdict in one line: verified, re-validated or FAILED with the reason."""
        head = f"{self.table} {self.as_of.isoformat()}: "
        if self.status == VERIFIED:
            return head + f"verified at version {self.version}"
        if self.status == REVALIDATED:
            checks = self.outcome.evaluated if self.outcome else 0
            return head + f"re-validated, all {checks} checks passed ({self.reason})"
        return head + f"FAILED: {self.reason}"


@dataclasses.dataclass(frozen=True)
class _Record:
    """The latest build attempt of a table and date, from the ops log."""

    status: str
    table_version: int | None
    validation_result: str | None
    built_at: dt.datetime


def verify_recorded(
    spark: SparkSession,
    config: Config,
    dates: Iterable[dt.date],
    tables: Iterable[str] | None = None,
) -> list[Verification]:
    """Verify each table's partition of each date from its build record; run the
    expectations again only where the partition changed after the recorded version."""
    lake = lk.Lake(config.lake)
    names = [t.name for t in build_order(tables)]
    dates = sorted(set(dates))
    records = _latest_attempts(spark, lake, names, dates)
    checked: list[Verification] = []
    for name in names:
        checked += _verify_table(spark, lake, name, dates, records)
    return _revalidate_stale(spark, config, checked)


def _latest_attempts(
    spark: SparkSession, lake: lk.Lake, tables: list[str], dates: list[dt.date]
) -> dict[tuple[str, dt.date], _Record]:
    """The latest recorded attempt per (table, date) (one Spark job)."""
    if not lk.table_exists(spark, lake.feature_builds):
        return {}
    latest_first = Window.partitionBy("table", AS_OF).orderBy(
        F.col("built_at").desc(),
        (F.col("status") == COMMITTED).asc(),  # a tie: the attempt that did not commit wins
    )
    rows = (
        lk.read_table(spark, lake.feature_builds)
        .filter(F.col("table").isin(tables) & F.col(AS_OF).isin(dates))
        .withColumn("attempt", F.row_number().over(latest_first))
        .filter(F.col("attempt") == 1)
        .collect()
    )
    return {
        (r["table"], r[AS_OF]): _Record(
            r["status"], r["table_version"], r["validation_result"], r["built_at"]
        )
        for r in rows
    }


def _verify_table(
    spark: SparkSession,
    lake: lk.Lake,
    table: str,
    dates: list[dt.date],
    records: dict[tuple[str, dt.date], _Record],
) -> list[Verification]:
    """Verdicts from the records; partitions whose data changed come back as stale
    (status REVALIDATED, to be re-validated)."""
    verdicts: dict[dt.date, Verification] = {}
    committed: dict[dt.date, _Record] = {}
    for as_of in dates:
        record = records.get((table, as_of))
        problem = _record_problem(record)
        if problem:
            verdicts[as_of] = Verification(table, as_of, FAILED, None, problem)
        else:
            committed[as_of] = record
    path = lake.features(table)
    if committed and not lk.table_exists(spark, path):
        for as_of, record in committed.items():
            reason = (
                f"no Delta table at {path} (recorded committed at version {record.table_version})"
            )
            verdicts[as_of] = Verification(table, as_of, FAILED, record.table_version, reason)
        committed = {}
    if committed:
        stale = _stale_reasons(spark, path, committed)
        for as_of, record in committed.items():
            version = record.table_version
            if as_of in stale:
                verdicts[as_of] = Verification(table, as_of, REVALIDATED, version, stale[as_of])
            else:
                verdicts[as_of] = Verification(table, as_of, VERIFIED, version)
    return [verdicts[d] for d in dates]


def _record_problem(record: _Record | None) -> str:
    """Why a record cannot vouch for its partition ("" when it can)."""
    if record is None:
        return "no build of this date recorded in ops/feature_builds"
    built = record.built_at.strftime("%Y-%m-%d %H:%M:%S")
    if record.status != COMMITTED:
        return f"the latest build attempt ({built}) ended {record.status}, not committed"
    if record.table_version is None:
        return f"the latest build ({built}) recorded no table version"
    if not record.validation_result:
        return f"the latest build ({built}) recorded no validation result"
    path = Path(record.validation_result)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"validation result {path} is missing"
    except (OSError, ValueError) as exc:
        return f"validation result {path} is unreadable: {exc}"
    if result.get("success") is not True:
        return f"validation result {path} does not say success"
    return ""


def _stale_reasons(
    spark: SparkSession, path: str, committed: dict[dt.date, _Record]
) -> dict[dt.date, str]:
    """Why each date's partition is not the one its verdict covers (absent: it is): the
    recorded commit did not write the date, or a later commit changed its files."""
    commits = _commits_since(spark, path, min(r.table_version for r in committed.values()))
    reasons: dict[dt.date, str] = {}
    for as_of, record in committed.items():
        version = record.table_version
        if version not in commits:  # log cleaned up, or the table was created again since
            reasons[as_of] = f"the table history no longer holds version {version}"
            continue
        _, written = commits[version]
        if written is not _ALL_DATES and as_of not in written:
            reasons[as_of] = f"the commit at version {version} wrote no file of this date"
            continue
        changes = [
            f"{operation} at version {later}"
            for later, (operation, touched) in sorted(commits.items())
            if later > version and (touched is _ALL_DATES or as_of in touched)
        ]
        if changes:
            reasons[as_of] = f"changed after version {version}: " + ", ".join(changes)
    return reasons


Commits = dict[int, tuple[str, "frozenset[dt.date] | None"]]  # version -> (operation, dates)


def _commits_since(spark: SparkSession, path: str, version: int) -> Commits:
    """Each commit from `version` on that the history still holds: its operation and the
    as-of dates whose data it changed (_ALL_DATES: possibly any)."""
    table = DeltaTable.forPath(spark, path)
    history = table.history(_RECENT_COMMITS).select("version", "operation").collect()
    newest = max(r["version"] for r in history)
    if min(r["version"] for r in history) > version and newest >= version:
        # more commits since than the recent ones: read back to `version`
        history = table.history(newest - version + 1).select("version", "operation").collect()
    operations = {r["version"]: r["operation"] for r in history if r["version"] >= version}
    touched = _dates_changed(spark, path, sorted(operations))
    return {v: (op, touched.get(v, frozenset())) for v, op in operations.items()}


def _dates_changed(
    spark: SparkSession, path: str, versions: list[int]
) -> dict[int, frozenset[dt.date] | None]:
    """Per commit, the as-of dates of the files it added or removed with a data change,
    from its Delta log entry (one Spark job); _ALL_DATES when a file names no date."""
    if not versions:
        return {}
    entries = spark.read.text([f"{path}/_delta_log/{v:020d}.json" for v in versions])

    def either(field: str) -> F.Column:
        return F.coalesce(
            F.get_json_object("value", f"$.add.{field}"),
            F.get_json_object("value", f"$.remove.{field}"),
        )

    is_file = (
        F.get_json_object("value", "$.add.path").isNotNull()
        | F.get_json_object("value", "$.remove.path").isNotNull()
    )
    actions = (
        entries.filter(is_file & (F.coalesce(either("dataChange"), F.lit("true")) != "false"))
        .select(
            F.regexp_extract("_metadata.file_path", r"(\d+)\.json$", 1).cast("long").alias("v"),
            either(f"partitionValues.{AS_OF}").alias("as_of"),
        )
        .distinct()
        .collect()
    )
    changed: dict[int, frozenset[dt.date] | None] = {}
    for row in actions:
        if row["v"] in changed and changed[row["v"]] is _ALL_DATES:
            continue
        if row["as_of"] is None:
            changed[row["v"]] = _ALL_DATES
        else:
            day = dt.date.fromisoformat(row["as_of"])
            changed[row["v"]] = changed.get(row["v"], frozenset()) | {day}
    return changed


def _revalidate_stale(
    spark: SparkSession, config: Config, checked: list[Verification]
) -> list[Verification]:
    """Run the expectations again on the partitions that changed since their build."""
    stale: dict[dt.date, list[str]] = {}
    for v in checked:
        if v.status == REVALIDATED:
            stale.setdefault(v.as_of, []).append(v.table)
    again: dict[tuple[str, dt.date], Verification] = {}
    for as_of, tables in stale.items():
        log.info("re-validating %s %s: changed since their build", ", ".join(tables), as_of)
        for result in revalidate(spark, config, as_of, tables):
            before = next(v for v in checked if (v.table, v.as_of) == (result.table, as_of))
            again[(result.table, as_of)] = _after_revalidation(before, result)
    return [again.get((v.table, v.as_of), v) for v in checked]


def _after_revalidation(before: Verification, result: Revalidation) -> Verification:
    """The verdict once the expectations ran again on a partition that changed."""
    if result.location != "table" or result.outcome is None:
        where = "only in the quarantine" if result.location == "quarantine" else "missing"
        reason = f"{before.reason}; the partition is {where}"
        return dataclasses.replace(before, status=FAILED, reason=reason, outcome=result.outcome)
    if not result.outcome.success:
        failed = len(result.outcome.failed)
        reason = (
            f"{before.reason}; re-validated: {failed} of {result.outcome.evaluated} checks "
            f"failed (results {result.outcome.result_path})"
        )
        return dataclasses.replace(before, status=FAILED, reason=reason, outcome=result.outcome)
    return dataclasses.replace(before, outcome=result.outcome)

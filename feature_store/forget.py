"""Forgetting a member: delete an account and its profiles everywhere, then vacuum.

The request names the account by its raw id (what the member and support know).
It is pseudonymized with the platform key to find the member's rows in bronze and
the feature tables (Delta DELETE), and matched as text in the landing quarantine,
which keeps raw lines. VACUUM then removes the data files that still hold the
deleted rows, once they are older than `privacy.vacuum_retention_hours` (Delta's
time-travel window: until then a rebuild by time travel can still see them).
Online snapshots and every retained published version (`feature_store.publish`) are
rewritten without the member, each with a fresh manifest that records the request. The
audit table records the request with the pseudonym and what was deleted, never the raw id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable

from delta.tables import DeltaTable
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store import publish
from feature_store.config import Config
from feature_store.features.tables import REGISTRY
from feature_store.privacy import pseudonymize_value
from feature_store.sources import SOURCES

log = logging.getLogger(__name__)

DELTA_DEFAULT_RETENTION_HOURS = 168  # below this Delta refuses VACUUM unless told otherwise


@dataclasses.dataclass(frozen=True)
class ForgetReport:
    request_id: str
    account_pseudonym: str
    profiles: int
    deleted: dict[str, int]  # table path -> rows deleted
    vacuumed: tuple[str, ...]
    retention_hours: int

    def format_table(self) -> str:
        lines = [
            f"forget request {self.request_id}: account {self.account_pseudonym} "
            f"and {self.profiles} profile(s)",
            f"{'table':<60}{'rows deleted':>14}",
        ]
        lines += [f"{path:<60}{n:>14,}" for path, n in sorted(self.deleted.items())]
        lines.append(
            f"vacuumed {len(self.vacuumed)} table(s); files older than "
            f"{self.retention_hours} h that held deleted rows are gone"
        )
        return "\n".join(lines)


def forget_account(spark: SparkSession, config: Config, raw_account_id: str) -> ForgetReport:
    """Delete one account and its profiles from every table that holds member rows."""
    if not raw_account_id or not raw_account_id.strip():
        raise ValueError("forget: the account id is empty")
    # Held throughout: a publish running meanwhile could copy the member's rows out of a
    # table before the delete and make them visible after the published versions are clean.
    with publish.lock(config.paths.published):
        return _forget_account(spark, config, raw_account_id)


def _forget_account(spark: SparkSession, config: Config, raw_account_id: str) -> ForgetReport:
    request_id = str(uuid.uuid4())
    lake = lk.Lake(config.lake)
    account = pseudonymize_value(raw_account_id, config.privacy.pseudonymization_key)
    profiles = _profiles_of(spark, lake, account)
    member_rows = _member_condition(account, profiles)

    targets: list[tuple[str, Callable[[set[str]], Column]]] = []
    for source in SOURCES.values():
        names = {f.name for f in source.bronze_fields}
        if "account_id" in names or "profile_id" in names:
            targets.append((lake.bronze(source.name), member_rows))
    for table in REGISTRY:
        columns = {c.name for c in table.columns}
        if columns & {"account_id", "profile_id"}:
            targets.append((lake.features(table.name), member_rows))
            targets.append((lake.feature_quarantine(table.name), member_rows))
    # The views table (viewing reduced per view) holds both ids.
    targets.append((lake.silver("views"), member_rows))
    # Batch recommendations name profiles (the serving copies of the models' output).
    targets.append((lake.recs("top_titles"), member_rows))
    # Churn scores name accounts (with the reasons, derived from the member's features).
    targets.append((lake.predictions("churn_scores"), member_rows))
    # The landing quarantine keeps raw lines: match the raw id as a JSON string value
    # (profile ids start with their account's id, so they match too).
    quoted = '"' + raw_account_id
    targets.append((lake.quarantine, lambda cols: F.col("raw").contains(quoted)))

    deleted: dict[str, int] = {}
    for path, condition in targets:
        if not lk.table_exists(spark, path):
            continue
        started = time.perf_counter()
        table = DeltaTable.forPath(spark, path)
        columns = set(table.toDF().columns)
        table.delete(condition(columns))
        deleted[path] = _rows_deleted(table)
        log.info("forget: %s rows deleted from %s in %.1fs", deleted[path], path,
                 time.perf_counter() - started)  # fmt: skip
    touched = tuple(p for p, n in deleted.items() if n)
    _vacuum(spark, touched, config.privacy.vacuum_retention_hours)
    # A batch scoring run that died leaves its Parquet staging (every profile's list,
    # not Delta); the next run would replace it, but the member must not wait for that.
    lk.delete_path(spark, lake.recs("_staging"))
    deleted.update(publish.forget_in_published(spark, config, member_rows, request_id))

    report = ForgetReport(
        request_id=request_id,
        account_pseudonym=account,
        profiles=len(profiles),
        deleted=deleted,
        vacuumed=touched,
        retention_hours=config.privacy.vacuum_retention_hours,
    )
    _audit(spark, lake, report)
    log.info("forget %s: %s rows deleted", report.request_id, f"{sum(deleted.values()):,}")
    return report


def _member_condition(account: str, profiles: set[str]) -> Callable[[set[str]], Column]:
    def condition(columns: set[str]) -> Column:
        terms = []
        if "account_id" in columns:
            terms.append(F.col("account_id") == F.lit(account))
        if "profile_id" in columns and profiles:
            terms.append(F.col("profile_id").isin(*sorted(profiles)))
        if not terms:
            raise ValueError(f"no member column among {sorted(columns)}")
        result = terms[0]
        for term in terms[1:]:
            result = result | term
        return result

    return condition


def _profiles_of(spark: SparkSession, lake: lk.Lake, account: str) -> set[str]:
    """Every profile pseudonym seen with the account, in bronze and profile features."""
    places = [lake.bronze(s.name) for s in SOURCES.values() if _has_profiles(s)]
    places.append(lake.features("profile_daily"))
    found: set[str] = set()
    for path in places:
        if not lk.table_exists(spark, path):
            continue
        rows = (
            lk.read_table(spark, path)
            .filter(F.col("account_id") == F.lit(account))
            .select("profile_id")
            .distinct()
            .collect()
        )
        found.update(r["profile_id"] for r in rows if r["profile_id"])
    return found


def _has_profiles(source) -> bool:
    names = {f.name for f in source.bronze_fields}
    return {"account_id", "profile_id"} <= names


def _rows_deleted(table: DeltaTable) -> int:
    last = table.history(1).select("operation", "operationMetrics").first()
    if last["operation"] != "DELETE":
        return 0
    return int((last["operationMetrics"] or {}).get("numDeletedRows", 0))


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


def _audit(spark: SparkSession, lake: lk.Lake, report: ForgetReport) -> None:
    row = (
        report.request_id,
        dt.datetime.now(dt.UTC).replace(tzinfo=None),
        report.account_pseudonym,
        report.profiles,
        json.dumps(report.deleted, sort_keys=True),
        sum(report.deleted.values()),
        report.retention_hours,
    )
    schema = (
        "request_id string, requested_at timestamp, account_pseudonym string, profiles int, "
        "deleted_rows_by_table string, deleted_rows long, vacuum_retention_hours int"
    )
    lk.append(spark.createDataFrame([row], schema), lake.forget_requests)

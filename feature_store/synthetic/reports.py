"""Summaries of what is in the lake, for people (the demo, `marquee status`)."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features.build import COMMITTED, BuildReport
from feature_store.sources import SOURCES


def bronze_summary(spark: SparkSession, lake_root: str) -> str:
    """Bronze tables as text: rows, event dates and version each, then quarantine reasons."""
    lake = lk.Lake(lake_root)
    lines = [f"{'bronze table':<16}{'rows':>14}{'event dates':>14}{'delta version':>15}"]
    for name in SOURCES:
        path = lake.bronze(name)
        if not lk.table_exists(spark, path):
            lines.append(f"{name:<16}{'-':>14}")
            continue
        stats = (
            lk.read_table(spark, path)
            .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("event_date").alias("dates"))
            .first()
        )
        version = lk.table_version(spark, path)
        lines.append(f"{name:<16}{stats['rows']:>14,}{stats['dates']:>14}{version:>15}")
    if lk.table_exists(spark, lake.quarantine):
        reasons = (
            lk.read_table(spark, lake.quarantine)
            .groupBy("source", "reason")
            .count()
            .orderBy("source", F.desc("count"))
            .collect()
        )
        lines.append("")
        lines.append(f"{'quarantine':<16}{'reason':<28}{'rows':>10}")
        lines.extend(f"{r['source']:<16}{r['reason']:<28}{r['count']:>10,}" for r in reasons)
    return "\n".join(lines)


def feature_summary(builds: Sequence[BuildReport]) -> str:
    """Feature tables × as-of dates: rows committed, or why a partition was not."""
    dates = [report.as_of for report in builds]
    tables = list(dict.fromkeys(b.table for report in builds for b in report.builds))
    cells = {(b.table, report.as_of): b for report in builds for b in report.builds}
    lines = [f"{'feature table':<28}" + "".join(f"{d.isoformat():>13}" for d in dates)]
    for table in tables:
        row = f"{table:<28}"
        for date in dates:
            build = cells.get((table, date))
            if build is None:
                text = "-"
            elif build.status == COMMITTED:
                text = f"{build.rows:,}"
            else:
                text = build.status
            row += f"{text:>13}"
        lines.append(row)
    checks = sum(b.validation.evaluated for r in builds for b in r.builds if b.validation)
    failed = sum(len(b.validation.failed) for r in builds for b in r.builds if b.validation)
    lines.append(f"validation: {checks:,} checks run, {failed:,} failed")
    return "\n".join(lines)


def feature_log_summary(spark: SparkSession, lake_root: str, dates: Sequence) -> str:
    """Feature tables × as-of dates from the build log (``ops/feature_builds``): rows of
    each partition's latest build, or why it was not committed; the builds themselves
    ran elsewhere (the daily DAG's tasks)."""
    path = lk.Lake(lake_root).feature_builds
    if not lk.table_exists(spark, path):
        return "feature tables: nothing built yet"
    latest = Window.partitionBy("table", "as_of_date").orderBy(F.desc("built_at"))
    rows = (
        lk.read_table(spark, path)
        .filter(F.col("as_of_date").isin(list(dates)))
        .withColumn("attempt", F.row_number().over(latest))
        .filter(F.col("attempt") == 1)
        .select("table", "as_of_date", "status", "rows")
        .collect()
    )
    cells = {(r["table"], r["as_of_date"]): r for r in rows}
    tables = sorted({r["table"] for r in rows})
    lines = [f"{'feature table':<28}" + "".join(f"{d:%m-%d}".rjust(9) for d in dates)]
    for table in tables:
        row = f"{table:<28}"
        for date in dates:
            cell = cells.get((table, date))
            text = (
                "-"
                if cell is None
                else (f"{cell['rows']:,}" if cell["status"] == COMMITTED else cell["status"])
            )
            row += f"{text:>9}"
        lines.append(row)
    refused = sum(1 for r in rows if r["status"] != COMMITTED)
    lines.append(f"{len(rows)} partitions, {refused} not committed (validation or input)")
    return "\n".join(lines)

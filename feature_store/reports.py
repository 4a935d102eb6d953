"""Summaries of what is in the lake, for people (the demo, `marquee status`)."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.sources import SOURCES


def bronze_summary(spark: SparkSession, lake_root: str) -> str:
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

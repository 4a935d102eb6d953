"""Online feature snapshots: the latest features per entity, for serving systems.

`export_online` writes, for an as-of date, each table's newest row per key among
the partitions still within the table's TTL, as Parquet under
`<published>/online_features/<version>/<table>/`, with `manifest.json` listing the
row count, schema, source Delta version and the sha256 of every file. The version
folder is written under a staging name and renamed into place when complete, so a
reader never sees half a snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.features.definitions import AS_OF, FeatureTable
from feature_store.features.tables import REGISTRY

ARTIFACT = "online_features"
MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class OnlineSnapshot:
    version: str
    path: Path
    manifest: dict


def latest_per_key(rows: DataFrame, table: FeatureTable, *, as_of: dt.date) -> DataFrame:
    """Each key's newest row with as_of_date in [as_of - ttl, as_of]."""
    oldest = as_of - dt.timedelta(days=table.ttl_days)
    newest_first = Window.partitionBy(*table.keys).orderBy(F.col(AS_OF).desc())
    return (
        rows.filter((F.col(AS_OF) >= F.lit(oldest)) & (F.col(AS_OF) <= F.lit(as_of)))
        .withColumn("_n", F.row_number().over(newest_first))
        .filter(F.col("_n") == 1)
        .drop("_n")
    )


def export_online(
    spark: SparkSession, config: Config, as_of: dt.date, tables: Iterable[str] | None = None
) -> OnlineSnapshot:
    lake = lk.Lake(config.lake)
    chosen = [REGISTRY.get(n) for n in tables] if tables else list(REGISTRY)
    missing = [t.name for t in chosen if not lk.table_exists(spark, lake.features(t.name))]
    if missing:
        raise FileNotFoundError(
            f"export-online {as_of}: feature tables not built yet: {', '.join(missing)}"
        )
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    version = f"{as_of.strftime('%Y%m%d')}-{created.strftime('%Y%m%dT%H%M%SZ')}"
    root = Path(config.paths.published) / ARTIFACT
    staging = root / f".staging-{uuid.uuid4().hex}"
    manifest = {
        "artifact": ARTIFACT,
        "version": version,
        "as_of_date": as_of.isoformat(),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "tables": {},
    }
    try:
        for table in chosen:
            source = lake.features(table.name)
            table_version = lk.table_version(spark, source)
            rows = latest_per_key(
                lk.read_table(spark, source, version=table_version), table, as_of=as_of
            )
            target = staging / table.name
            rows.write.mode("overwrite").parquet(target.as_uri())
            manifest["tables"][table.name] = {
                "keys": list(table.keys),
                "feature_table_version": table_version,
                **describe_files(spark, target),
            }
        write_manifest(staging, manifest)
        final = root / version
        os.replace(staging, final)  # atomic on one filesystem: the version appears whole
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return OnlineSnapshot(version, final, manifest)


def describe_files(spark: SparkSession, folder: Path) -> dict:
    """Row count, schema and sha256 per data file of a Parquet folder."""
    frame = spark.read.parquet(folder.as_uri())
    files = {
        p.name: sha256_of(p) for p in sorted(folder.iterdir()) if not p.name.startswith((".", "_"))
    }
    return {
        "rows": frame.count(),
        "schema": json.loads(frame.schema.json()),
        "files": files,
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write manifest.json through a temporary file, so it is never seen half-written."""
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)


def snapshots(config: Config) -> list[Path]:
    root = Path(config.paths.published) / ARTIFACT
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())

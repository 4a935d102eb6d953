"""Publishing: model outputs and feature snapshots as versioned, verified folders.

`publish_artifact` reads one artifact's rows for an as-of date from its Delta table(s), each
pinned at its current version, and writes `<published>/<artifact>/<version>/` (Parquet per
table, then a signed `manifest.json`; layout: `serving`), then moves `<artifact>/latest`.
A version appears whole or not at all; versions sort by data date, so a backfill never moves
`latest` back; the same inputs published again write nothing. `forget_in_published`
rewrites the versions holding a member under new names. Publish and forget take one lock
per published root. Details: docs/registry-and-publishing.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store import serving, signing
from feature_store.config import Config
from feature_store.features.definitions import AS_OF
from feature_store.features.online import latest_per_key
from feature_store.features.tables import REGISTRY

log = logging.getLogger(__name__)

STAGING = ".staging"  # hidden: never listed as an artifact or version
LOCK = ".lock"
MEMBER_COLUMNS = frozenset({"account_id", "profile_id"})
UNREGISTERED = "unregistered"  # what the model writers put when no version was registered


class PublishError(RuntimeError):
    """An artifact cannot be published: missing source, no rows, unknown model version."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    name: str
    description: str
    model: str | None  # the registered MLflow model whose version the rows carry
    keys: tuple[str, ...]
    # One Delta table sliced on as_of_date; None: the feature tables, latest row per key.
    table: Callable[[lk.Lake], str] | None = None

    def sources(self, lake: lk.Lake, tables: list[str] | None = None) -> dict[str, str]:
        """Table name in the version -> Delta path it is read from."""
        if self.table is not None:
            if tables:
                raise PublishError(f"{self.name}: only online_features takes a table list")
            return {self.name: self.table(lake)}
        return {t: lake.features(REGISTRY.get(t).name) for t in tables or REGISTRY.names()}


# Where the model jobs write their batch outputs (recs/steps.py, churn/steps.py,
# forecast/steps.py write_outputs); the online features come from every feature table.
ARTIFACTS = {
    a.name: a
    for a in (
        Artifact(
            "recommendations",
            "top 50 titles per profile",
            "recommender",
            ("profile_id", "rank"),
            lambda lake: lake.recs("top_titles"),
        ),
        Artifact(
            "similar_titles",
            "the 20 most similar titles per title",
            "recommender",
            ("title_id", "rank"),
            lambda lake: lake.recs("similar_titles"),
        ),
        Artifact(
            "churn_scores",
            "every account's churn risk, band and reasons",
            "churn",
            ("account_id",),
            lambda lake: lake.predictions("churn_scores"),
        ),
        Artifact(
            "popularity_forecast",
            "views per region and title for the next 14 days",
            "popularity_forecast",
            ("region", "title_id", "forecast_date"),
            lambda lake: lake.predictions("popularity_forecast"),
        ),
        Artifact(
            "cdn_plan",
            "titles to pre-position per region within its storage budget",
            "popularity_forecast",
            ("region", "title_id"),
            lambda lake: lake.predictions("cdn_plan"),
        ),
        Artifact(
            "artwork_policy",
            "each title's artwork variants with their probabilities per viewer context",
            "artwork_policy",
            ("title_id", "segment", "device", "daypart", "artwork_id"),
            lambda lake: lake.predictions("artwork_policy"),
        ),
        Artifact(
            "online_features",
            "the latest feature row per entity within each table's TTL",
            None,
            (),
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Published:
    artifact: str
    version: str
    path: Path
    manifest: dict[str, Any]
    reused: bool  # the same inputs were already published: nothing was written
    latest: str
    removed: tuple[str, ...]  # versions deleted by retention


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What `publish_all` did for one artifact: published it, skipped it, or failed."""

    artifact: str
    published: Published | None = None
    error: str | None = None


@contextlib.contextmanager
def lock(root: str | os.PathLike[str]) -> Iterator[None]:
    """Exclusive lock on a published root (publish and forget); local filesystems only."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_all(
    spark: SparkSession,
    config: Config,
    names: list[str] | None = None,
    *,
    as_of: dt.date | None = None,
    tables: list[str] | None = None,
) -> list[Outcome]:
    """Publish ``names`` (default: every artifact with a source table); one failure does
    not stop the others, and publishes nothing for its own artifact. ``tables`` narrows
    online_features to some feature tables."""
    lake = lk.Lake(config.lake)
    if names is None:
        names = [
            a.name
            for a in ARTIFACTS.values()
            if any(lk.table_exists(spark, p) for p in a.sources(lake).values())
        ]
    outcomes = []
    for name in names:
        try:
            only = tables if ARTIFACTS[name].table is None else None
            published = publish_artifact(spark, config, name, as_of=as_of, tables=only)
            outcomes.append(Outcome(name, published))
        except PublishError as exc:
            log.error("publish %s failed: %s", name, exc)
            outcomes.append(Outcome(name, error=str(exc)))
        except Exception as exc:  # a Spark or I/O failure: the next artifact may still go
            log.exception("publish %s failed", name)
            first = (str(exc).strip().splitlines() or [""])[0]  # the trace went to the log
            outcomes.append(Outcome(name, error=f"{name}: {type(exc).__name__}: {first}"))
    return outcomes


def publish_artifact(
    spark: SparkSession,
    config: Config,
    name: str,
    *,
    as_of: dt.date | None = None,
    tables: list[str] | None = None,
) -> Published:
    """Publish one artifact as of ``as_of`` (default: the latest date in its source);
    ``tables`` narrows online_features to some feature tables."""
    if name not in ARTIFACTS:
        raise PublishError(f"unknown artifact {name!r} (known: {', '.join(ARTIFACTS)})")
    artifact = ARTIFACTS[name]
    try:
        sources = artifact.sources(lk.Lake(config.lake), tables)
    except KeyError as exc:
        raise PublishError(f"{name}: {exc.args[0]}") from None
    missing = [path for path in sources.values() if not lk.table_exists(spark, path)]
    if missing:
        raise PublishError(f"{name}: source table not found: {', '.join(missing)}")
    root = Path(config.paths.published)
    public_key = signing.public_key_text(signing.signing_key(config))  # fails before any work
    with lock(root):
        _clear_staging(root)
        versions = {t: lk.table_version(spark, p) for t, p in sources.items()}
        frames = {t: lk.read_table(spark, p, version=versions[t]) for t, p in sources.items()}
        as_of = as_of or _latest_as_of(name, frames)
        inputs = {
            "as_of_date": as_of.isoformat(),
            "sources": {t: {"path": p, "delta_version": versions[t]} for t, p in sources.items()},
        }
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        same = [
            v
            for v, m in _our_versions(root, name)
            if m.get("inputs_sha256") == digest and _signed_by(m, public_key)
        ]  # a version signed with another key would be refused by every pull: not reused
        if same:
            log.info("publish %s: inputs unchanged since version %s", name, same[-1])
            latest = _move_latest(root, name)
            folder = serving.artifact_dir(root, name) / same[-1]
            return Published(
                name, same[-1], folder, serving.load_manifest(folder), True, latest, ()
            )
        rows = {t: _rows(artifact, t, frame, as_of) for t, frame in frames.items()}
        if artifact.table is not None and rows[name].limit(1).count() == 0:
            latest_date = _latest_as_of(name, frames)
            raise PublishError(
                f"{name}: no rows for {AS_OF} {as_of} in {sources[name]} (latest: {latest_date})"
            )
        created = dt.datetime.now(dt.UTC)
        version = f"{as_of:%Y%m%d}-{created:%Y%m%dT%H%M%S}.{created.microsecond // 1000:03d}Z"
        final = _write_version(
            spark, config, root, artifact, version, created, as_of, rows, inputs, digest
        )
        latest = _move_latest(root, name)
        removed = _apply_retention(root, name, config.publish.retention_versions, version)
    manifest = serving.load_manifest(final)
    log.info("publish %s: version %s, %s rows, latest %s", name, version, manifest["rows"], latest)
    return Published(name, version, final, manifest, False, latest, removed)


def _latest_as_of(name: str, frames: dict[str, DataFrame]) -> dt.date:
    dates = [f.agg(F.max(AS_OF)).first()[0] for f in frames.values()]
    dates = [d for d in dates if d is not None]
    if not dates:
        raise PublishError(f"{name}: the source tables hold no rows")
    return max(dates)


def _rows(artifact: Artifact, table: str, frame: DataFrame, as_of: dt.date) -> DataFrame:
    if artifact.table is not None:
        return frame.filter(F.col(AS_OF) == F.lit(as_of))
    return latest_per_key(frame, REGISTRY.get(table), as_of=as_of)


def _write_version(spark, config, root, artifact, version, created, as_of, rows, inputs, digest):
    """Write the version in staging, manifest last, then rename it into place."""
    staging = root / STAGING / f"{artifact.name}-{uuid.uuid4().hex}"
    final = serving.artifact_dir(root, artifact.name) / version
    try:
        tables = {}
        for table, frame in rows.items():
            log.info("publish %s: writing %s", artifact.name, table)
            _write_parquet(frame, staging / table)
            source = inputs["sources"][table]
            keys = artifact.keys if artifact.table is not None else REGISTRY.get(table).keys
            tables[table] = {**_describe(spark, staging, table), "keys": list(keys),
                             "source": source}  # fmt: skip
            if artifact.table is None:  # the latest row per key: say how recent they are
                tables[table].update(_as_of_dates(staging / table, table, as_of))
        model, lineage, lineage_from = _model_lineage(spark, config, artifact, staging, inputs)
        manifest = {
            "manifest_version": serving.MANIFEST_VERSION,
            "artifact": artifact.name,
            "version": version,
            "description": artifact.description,
            "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "as_of_date": as_of.isoformat(),
            "format": serving.FORMAT,
            "model": model,
            "feature_table_versions": lineage,
            "feature_table_versions_from": lineage_from,
            "inputs_sha256": digest,
            "tables": tables,
            "rows": sum(t["rows"] for t in tables.values()),
            "files": _file_entries(staging, serving.files_in(staging)),
            "redactions": [],
        }
        _seal(staging, sign_manifest(config, manifest))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)  # the version appears whole, or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    serving.fsync_dir(final.parent)
    return final


def _write_parquet(frame: DataFrame, folder: Path) -> None:
    frame.write.mode("errorifexists").parquet(folder.as_uri())
    # Spark's _SUCCESS marker and .crc side files are not data: the manifest lists
    # exactly the Parquet files, and a pull refuses anything unlisted.
    for path in folder.iterdir():
        if path.name.startswith((".", "_")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _describe(spark: SparkSession, staging: Path, table: str) -> dict[str, Any]:
    """Rows (Parquet footers) and schema of a written table, as read back from its files."""
    import pyarrow.parquet as pq

    folder = staging / table
    schema = spark.read.parquet(folder.as_uri()).schema
    rows = sum(pq.read_metadata(p).num_rows for p in sorted(folder.glob("*.parquet")))
    return {
        "path": table,
        "rows": rows,
        "schema": [
            {"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable}
            for f in schema.fields
        ],
    }


def _file_entries(folder: Path, paths: list[str]) -> list[dict[str, Any]]:
    # hashlib releases the GIL: a few threads hash large versions in parallel.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(lambda p: serving.sha256_file(folder / p), paths))
    return [
        {"path": p, "bytes": (folder / p).stat().st_size, "sha256": d}
        for p, d in zip(paths, digests, strict=True)
    ]


def _as_of_dates(folder: Path, table: str, as_of: dt.date) -> dict[str, str | None]:
    """The newest and oldest as_of_date among a written table's rows (from the Parquet
    footers): a table whose latest partition is older than the snapshot's date says so."""
    dates = _column_range(sorted(folder.glob("*.parquet")), AS_OF)
    newest, oldest = (max(dates), min(dates)) if dates else (None, None)
    if newest is None:
        log.warning("online_features as of %s: %s has no rows within its TTL", as_of, table)
    elif newest < as_of:
        log.warning("online_features as of %s: %s is as of %s, %d day(s) behind: its "
                    "latest partition is older than the snapshot", as_of, table, newest,
                    (as_of - newest).days)  # fmt: skip
    else:
        log.info("online_features as of %s: %s is as of %s", as_of, table, newest)
    return {
        "as_of_date": newest and newest.isoformat(),
        "oldest_as_of_date": oldest and oldest.isoformat(),
    }


def _column_range(files: list[Path], column: str) -> list:
    """Every row group's min and max of ``column``; a file without statistics is read."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    values = []
    for path in files:
        meta = pq.read_metadata(path)
        groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
        stats = [
            g.column(i).statistics
            for g in groups
            for i in range(g.num_columns)
            if g.column(i).path_in_schema == column
        ]
        if all(s is not None and s.has_min_max for s in stats):
            values += [v for s in stats for v in (s.min, s.max)]
        else:
            found = pc.min_max(pq.read_table(path, columns=[column]).column(column))
            values += [v for v in (found["min"].as_py(), found["max"].as_py()) if v is not None]
    return values


def sign_manifest(config: Config, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest signed with the publisher's key (`publish.signing_key_file`): what
    every writer of a manifest (publish, forget's redaction) hands to `_seal`."""
    return signing.sign(manifest, signing.signing_key(config))


def _signed_by(manifest: dict[str, Any], public_key: str) -> bool:
    try:
        serving.check_signature(manifest, public_key)
    except serving.SignatureError:
        return False
    return True


def _seal(staging: Path, manifest: dict[str, Any]) -> None:
    """Check the manifest against the format (signed: `sign_manifest`), write it last,
    flush everything to disk."""
    serving.check_manifest(manifest, artifact=manifest["artifact"], version=manifest["version"])
    (staging / serving.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    serving.fsync_tree(staging)


# ---- the model a version came from ------------------------------------------------------


def _model_lineage(spark, config, artifact, staging, inputs):
    """(model, feature-table versions, where those came from) for the manifest."""
    read = {t: s["delta_version"] for t, s in inputs["sources"].items()}
    if artifact.model is None:
        return None, read, "tables_read"
    frame = spark.read.parquet((staging / artifact.name).as_uri())
    if "model_version" not in frame.columns:
        raise PublishError(f"{artifact.name}: the rows have no model_version column")
    found = {r[0] for r in frame.select("model_version").distinct().collect()}
    found = {v for v in found if v not in (None, UNREGISTERED)}
    if len(found) > 1:
        raise PublishError(f"{artifact.name}: rows of several model versions {sorted(found)}")
    if not found:
        return {"name": artifact.model, "version": None, "run_id": None}, read, "tables_read"
    return _registry_lookup(config, artifact.model, found.pop(), read)


def _registry_lookup(config, name: str, version: str, read: dict[str, int]):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from feature_store.tracking import tracking_uri

    uri = tracking_uri(config)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise PublishError(f"the rows name {name} version {version} but there is no registry {uri}")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        found = client.get_model_version(name, version)
    except MlflowException as exc:
        raise PublishError(
            f"the rows name {name} version {version}, which the registry at {uri} does not have"
        ) from exc
    tags = dict(found.tags or {})
    run_id = found.run_id or tags.get("run_id")
    model = {
        "name": name,
        "version": str(version),
        "run_id": run_id,
        "data_window": {k: v for k, v in sorted(tags.items()) if k.startswith("data.")},
    }
    lineage, origin = _lineage(tags), "model_version_tags"
    if not lineage and run_id:  # the training jobs log them as run parameters
        lineage, origin = _lineage(client.get_run(run_id).data.params), "mlflow_run_params"
    return (model, lineage, origin) if lineage else (model, read, "tables_read")


def _lineage(values: dict[str, str]) -> dict[str, int | str]:
    """``lineage.<table>.version`` entries as {table: version}."""
    found = {}
    for key, value in values.items():
        if key.startswith("lineage.") and key.endswith(".version"):
            table = key.removeprefix("lineage.").removesuffix(".version")
            found[table] = int(value) if str(value).isdigit() else value
    return found


# ---- versions, latest and retention -----------------------------------------------------


def _our_versions(root: Path, name: str) -> list[tuple[str, dict[str, Any]]]:
    """Versions in this format with a readable manifest, oldest first."""
    found = []
    for version in serving.list_versions(root, name):
        try:
            folder = serving.artifact_dir(root, name) / version
            manifest = serving.load_manifest(folder, artifact=name, version=version)
        except serving.ManifestError:
            continue
        found.append((version, manifest))
    return found


def _move_latest(root: Path, name: str) -> str | None:
    """Point `latest` at the highest version (a no-op when it already does)."""
    ours = _our_versions(root, name)
    if not ours:
        return None
    highest = ours[-1][0]
    try:
        current = serving.latest_version(root, name)
    except serving.ArtifactError:
        current = None
    if current != highest:
        serving.write_text_atomic(serving.artifact_dir(root, name) / serving.LATEST, highest + "\n")
    return highest


def _apply_retention(root: Path, name: str, keep: int, published: str) -> tuple[str, ...]:
    versions = [v for v, _ in _our_versions(root, name)]
    spared = {serving.latest_version(root, name), published}
    doomed = [v for v in versions[:-keep] if v not in spared]
    for version in doomed:
        _remove_version(root, name, version)
    if doomed:
        log.info("publish %s: retention removed %s", name, ", ".join(doomed))
    return tuple(doomed)


def _remove_version(root: Path, name: str, version: str) -> None:
    # Renamed out first: readers see the version or nothing, never half a deletion.
    retired = root / STAGING / f".retired-{name}-{version}-{uuid.uuid4().hex}"
    retired.parent.mkdir(parents=True, exist_ok=True)
    os.rename(serving.artifact_dir(root, name) / version, retired)
    shutil.rmtree(retired)


def _clear_staging(root: Path) -> None:
    """Remove what crashed runs left in staging (it may hold a forgotten member's rows).
    Only called under the lock, so no run is writing there."""
    staging = root / STAGING
    if staging.is_dir():
        for path in staging.iterdir():
            shutil.rmtree(path, ignore_errors=True)


# ---- forgetting ---------------------------------------------------------------------------


def forget_in_published(
    spark: SparkSession, config: Config, keys: DataFrame, request_id: str
) -> dict[str, int]:
    """Replace every retained version that holds a member of ``keys`` (one string column
    of pseudonyms) by a redacted copy under a new version name, and remove it; returns
    {old version folder: rows removed}. The caller holds `lock` (forget does).

    A new name, not a rewrite in place: a copy pulled earlier is then visibly stale, and
    `serving.pull` replaces it instead of reporting it "already present"."""
    root = Path(config.paths.published)
    _clear_staging(root)
    removed: dict[str, int] = {}
    for name in serving.list_artifacts(root):
        for version in serving.list_versions(root, name):
            folder = serving.artifact_dir(root, name) / version
            try:
                manifest = serving.load_manifest(folder, artifact=name, version=version)
            except serving.ManifestError as exc:
                # Unservable (pull refuses it: damaged, or an online snapshot of the format
                # before `publish`) and perhaps holding the member: removed.
                log.warning("forget: removing unreadable version %s: %s", folder, exc)
                _remove_version(root, name, version)
                continue
            counts = _redact_version(spark, config, folder, manifest, keys, request_id)
            if counts:
                removed[str(folder)] = sum(counts.values())
        _move_latest(root, name)
    return removed


def redacted_version_name(version: str, redactions: int) -> str:
    """``<version>.r<n>`` for the n-th redaction of a version's content: sorts right
    after the version it replaces, so `latest` and retention keep their order."""
    base = re.sub(r"\.r[0-9]+$", "", version)
    return f"{base}.r{redactions}"


def _member_rows(spark: SparkSession, folder: Path, info: dict, keys: DataFrame):
    """(rows without the member, how many were removed) of one table of a version, or
    None when the table has no member column. Anti-joins on the keys: no id literal."""
    columns = [c["name"] for c in info["schema"] if c["name"] in MEMBER_COLUMNS]
    if not columns:
        return None
    rows = spark.read.parquet((folder / info["path"]).as_uri())
    kept = rows
    for column in columns:
        kept = kept.join(F.broadcast(keys), F.col(column) == keys[keys.columns[0]], "left_anti")
    removed = rows.count() - kept.count()
    return (kept, removed) if removed else None


def _redact_version(spark, config, folder, manifest, keys, request_id) -> dict[str, int]:
    root = Path(config.paths.published)
    counts, kept = {}, {}
    for table, info in manifest["tables"].items():
        found = _member_rows(spark, folder, info, keys)
        if found:
            kept[table], counts[table] = found
    if not counts:
        return {}
    name = manifest["artifact"]
    try:  # never re-sign what the publisher did not write: a forget must not launder it
        serving.verify(folder, artifact=name, version=folder.name,
                       public_key=signing.public_key_text(signing.signing_key(config)))  # fmt: skip
    except serving.ArtifactError as exc:
        log.warning("forget: removing version %s, which fails verification: %s", folder, exc)
        _remove_version(root, name, folder.name)
        return counts
    redactions = [*manifest.get("redactions", [])]
    version = redacted_version_name(folder.name, len(redactions) + 1)
    staging = root / STAGING / f"{name}-forget-{uuid.uuid4().hex}"
    final = folder.with_name(version)
    try:
        new = json.loads(json.dumps(manifest))
        entries = [e for e in manifest["files"] if e["path"].split("/")[0] not in counts]
        for entry in entries:  # unchanged tables: linked, not copied (files never change)
            _link_or_copy(folder / entry["path"], staging / entry["path"])
        for table, frame in kept.items():
            _write_parquet(frame, staging / table)
            new["tables"][table].update(_describe(spark, staging, table))
            paths = [p for p in serving.files_in(staging) if p.split("/")[0] == table]
            entries += _file_entries(staging, paths)
        new["version"] = version
        new["files"] = sorted(entries, key=lambda e: e["path"])
        new["rows"] = sum(t["rows"] for t in new["tables"].values())
        new["redactions"] = [
            *redactions,
            {"request_id": request_id, "redacted_at": _now_text(), "rows_removed": counts,
             "replaces_version": folder.name},
        ]  # fmt: skip
        _seal(staging, sign_manifest(config, new))
        if final.exists():  # left by a forget that failed before removing `folder`
            _remove_version(root, name, version)
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    serving.fsync_dir(final.parent)
    _move_latest(root, name)  # before the old version goes: `latest` never dangles
    _remove_version(root, name, folder.name)
    log.info("forget: %s rows removed from %s, now version %s", sum(counts.values()), folder,
             version)  # fmt: skip
    return counts


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _now_text() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")

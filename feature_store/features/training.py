"""Point-in-time correct training sets.

A feature table holds one row per entity key per `as_of_date` (features summarise events up
to the END of that date) and the time it was committed (`written_at`). A spine row (entity
keys + a timestamp `ts`) gets the row with the latest as-of date strictly before
`to_date(ts)` and no older than the table's TTL (`as_of_date >= to_date(ts) - ttl_days`),
else nulls; with `written_before`, rows written after it are invisible and the search falls
back to the latest older row written in time. Spine rows are never dropped or duplicated;
feature columns are `<table>__<feature>`. The spine is read twice: persist an expensive one.
Why, and how the join runs: docs/feature-store.md and docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk
from feature_store.features.definitions import AS_OF, WRITTEN_AT, FeatureRegistry, FeatureTable
from feature_store.features.tables import REGISTRY

FeatureRequest = tuple[FeatureTable, DataFrame, Sequence[str]]

SEPARATOR = "__"
_PREFIX = "__pit_"
_SPINE = f"{_PREFIX}spine"  # struct of the spine's non-key columns (null on feature rows)
_ORDER = f"{_PREFIX}order"  # day * 2 (+2 for features of as_of, +1 for spine rows of date)
_DATE = f"{_PREFIX}date"  # the spine row's date (null on feature rows)
_FEATURES = f"{_PREFIX}features"  # struct of as-of date and features (null on spine rows)
_AS_OF_FIELD = "as_of"
_TIMESTAMP_TYPES = (T.TimestampType, T.TimestampNTZType, T.DateType)


def feature_column_name(table: str, feature: str) -> str:
    """The training-set column of `feature` of `table`: ``<table>__<feature>``."""
    return f"{table}{SEPARATOR}{feature}"


def point_in_time_join(
    spine: DataFrame,
    requests: Sequence[FeatureRequest],
    *,
    timestamp_col: str = "ts",
    written_before: dt.datetime | None = None,
) -> DataFrame:
    """Add the point-in-time correct features of each request to every spine row.

    Each request is (table definition, the table's rows, feature names wanted); the
    rows need the table's keys, `as_of_date`, `written_at` and the features. The
    spine needs every requested table's keys and `timestamp_col` (a timestamp or a
    date). A naive `written_before` is taken as UTC. Spine columns come first, in
    their order and types, then `<table>__<feature>` per request and feature.
    """
    _validate(spine, requests, timestamp_col, written_before)
    cutoff = _as_utc(written_before) if written_before is not None else None
    # The spine's first and last dates: scalar subqueries on the spine as given (never
    # on a previous table's result), shared by all tables.
    date = F.to_date(_col(timestamp_col))
    bounds = (spine.select(F.min(date)).scalar(), spine.select(F.max(date)).scalar())
    result = spine
    for table, rows, features in requests:
        result = _join_one(result, table, rows, tuple(features), timestamp_col, cutoff, bounds)
    return result


def _validate(
    spine: DataFrame,
    requests: Sequence[FeatureRequest],
    timestamp_col: str,
    written_before: dt.datetime | None,
) -> None:
    _validate_spine(spine, timestamp_col)
    if written_before is not None and not isinstance(written_before, dt.datetime):
        raise ValueError(f"written_before must be a datetime, got {written_before!r}")
    if not requests:
        raise ValueError("no feature tables requested")
    columns = spine.columns
    seen_tables: set[str] = set()
    outputs: list[str] = []
    for request in requests:
        if len(request) != 3 or not isinstance(request[0], FeatureTable):
            raise ValueError("each request must be (FeatureTable, DataFrame, feature names)")
        table, rows, features = request
        if table.name in seen_tables:
            raise ValueError(f"feature table {table.name!r} is requested more than once")
        seen_tables.add(table.name)
        _validate_features(table, features)
        _validate_keys_and_rows(spine, table, rows, features, timestamp_col, written_before)
        names = [feature_column_name(table.name, f) for f in features]
        clashes = [n for n in names if n in columns or n in outputs]
        if clashes:
            raise ValueError(f"the spine or another request already has columns {clashes}")
        outputs.extend(names)


def _validate_spine(spine: DataFrame, timestamp_col: str) -> None:
    """The spine has the timestamp column, of a time type, and no reserved names."""
    columns = spine.columns
    if timestamp_col not in columns:
        raise ValueError(f"spine has no timestamp column {timestamp_col!r}; columns: {columns}")
    ts_type = spine.schema[timestamp_col].dataType
    if not isinstance(ts_type, _TIMESTAMP_TYPES):
        raise ValueError(
            f"spine column {timestamp_col!r} must be a timestamp or date, "
            f"got {ts_type.simpleString()}"
        )
    internal = [c for c in columns if c.startswith(_PREFIX)]
    if internal:
        raise ValueError(f"spine columns {internal} use the reserved prefix {_PREFIX!r}")


def _validate_features(table: FeatureTable, features: Sequence[str]) -> None:
    """A non-empty sequence of the table's declared features, none twice."""
    if isinstance(features, str):
        raise ValueError(f"{table.name}: feature names must be a sequence, not the string")
    if not features:
        raise ValueError(f"{table.name}: no features requested")
    unknown = [f for f in features if f not in table.feature_names]
    if unknown:
        raise ValueError(
            f"{table.name}: unknown features {unknown}; declared: {', '.join(table.feature_names)}"
        )
    repeated = sorted({f for f in features if list(features).count(f) > 1})
    if repeated:
        raise ValueError(f"{table.name}: features requested more than once: {repeated}")


def _validate_keys_and_rows(
    spine: DataFrame,
    table: FeatureTable,
    rows: DataFrame,
    features: Sequence[str],
    timestamp_col: str,
    written_before: dt.datetime | None,
) -> None:
    """The spine has the table's keys (not its timestamp), the rows have every column
    the join reads, and the keys have the same types on both sides."""
    columns = spine.columns
    missing_keys = [k for k in table.keys if k not in columns]
    if missing_keys:
        raise ValueError(
            f"spine lacks key columns {missing_keys} of feature table {table.name!r} "
            f"(keys {list(table.keys)}); spine columns: {columns}"
        )
    if timestamp_col in table.keys:
        raise ValueError(f"{table.name}: the timestamp column cannot be a key")
    needed = [*table.keys, AS_OF, *features]
    if written_before is not None:
        needed.append(WRITTEN_AT)
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise ValueError(f"rows of feature table {table.name!r} lack columns {missing}")
    for key in table.keys:
        left, right = spine.schema[key].dataType, rows.schema[key].dataType
        if left != right:
            raise ValueError(
                f"{table.name}: key {key!r} is {left.simpleString()} in the spine but "
                f"{right.simpleString()} in the feature rows"
            )


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _col(name: str) -> Column:
    """A column by its exact name (dots and other characters are not paths)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _days(column: Column) -> Column:
    return F.datediff(column, F.lit(dt.date(1970, 1, 1)))


def _join_one(
    spine: DataFrame,
    table: FeatureTable,
    rows: DataFrame,
    features: tuple[str, ...],
    timestamp_col: str,
    cutoff: dt.datetime | None,
    bounds: tuple[Column, Column],
) -> DataFrame:
    keys = list(table.keys)
    payload = [c for c in spine.columns if c not in keys]
    # Both sides of the union have the same columns: each side's own are null on the other.
    feature_type = T.StructType(
        [T.StructField(_AS_OF_FIELD, T.DateType())]
        + [T.StructField(f, rows.schema[f].dataType) for f in features]
    )
    spine_type = T.StructType([spine.schema[c] for c in payload])
    spine_side = _spine_side(spine, keys, payload, timestamp_col, feature_type)
    feature_side = _feature_side(rows, table, features, cutoff, bounds, spine_type)
    latest = _latest_features(spine_side.unionByName(feature_side), keys)
    fresh = F.col(_FEATURES).getField(_AS_OF_FIELD) >= F.date_sub(F.col(_DATE), table.ttl_days)
    return latest.select(
        *[_col(c) if c in keys else F.col(_SPINE).getField(c).alias(c) for c in spine.columns],
        *[
            F.when(fresh, F.col(_FEATURES).getField(f)).alias(feature_column_name(table.name, f))
            for f in features
        ],
    )


def _spine_side(
    spine: DataFrame,
    keys: list[str],
    payload: list[str],
    timestamp_col: str,
    feature_type: T.StructType,
) -> DataFrame:
    """The spine rows in the union's shape: keys, the other columns packed in one
    struct, ordered after the features of the day before, their date, no features."""
    date = F.to_date(_col(timestamp_col))
    return spine.select(
        *[F.col(k) for k in keys],
        F.struct(*[_col(c) for c in payload]).alias(_SPINE),
        (_days(date) * 2 + 1).alias(_ORDER),
        date.alias(_DATE),
        F.lit(None).cast(feature_type).alias(_FEATURES),
    )


def _feature_side(
    rows: DataFrame,
    table: FeatureTable,
    features: tuple[str, ...],
    cutoff: dt.datetime | None,
    bounds: tuple[Column, Column],
    spine_type: T.StructType,
) -> DataFrame:
    """The feature rows some spine row could use, in the union's shape: keys, no spine
    columns, their order, no date, and the as-of date and features packed in one struct."""
    keys = list(table.keys)
    feature_struct = F.struct(
        F.col(AS_OF).alias(_AS_OF_FIELD), *[_col(f).alias(f) for f in features]
    )
    visible = F.lit(True)
    for key in keys:
        visible = visible & F.col(key).isNotNull()
    visible = visible & F.col(AS_OF).isNotNull()
    if cutoff is not None:
        visible = visible & (F.col(WRITTEN_AT) <= F.lit(cutoff))
    # Only rows that some spine row could use enter the shuffle.
    first, last = bounds
    in_range = (F.col(AS_OF) >= F.date_sub(first, table.ttl_days)) & (F.col(AS_OF) < last)
    return rows.where(visible & in_range).select(
        *[F.col(k) for k in keys],
        F.lit(None).cast(spine_type).alias(_SPINE),
        # A row of as-of date d may serve spine dates after d: order it as day d + 1,
        # before the spine rows of that day (odd), after those of day d.
        (_days(F.col(AS_OF)) * 2 + 2).alias(_ORDER),
        F.lit(None).cast(T.DateType()).alias(_DATE),
        feature_struct.alias(_FEATURES),
    )


def _latest_features(union: DataFrame, keys: list[str]) -> DataFrame:
    """The spine rows, each with the features of the latest feature row ordered before
    it among its keys' rows (one running `last` over the union)."""
    window = (
        Window.partitionBy(*keys)
        .orderBy(_ORDER)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return union.select(
        *keys,
        _SPINE,
        _DATE,
        F.last(_FEATURES, ignorenulls=True).over(window).alias(_FEATURES),
    ).where(F.col(_SPINE).isNotNull())


# --- training sets from the lake -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """A point-in-time joined frame and what it was built from (its lineage)."""

    frame: DataFrame
    table_versions: dict[str, int]
    features: dict[str, tuple[str, ...]]
    written_before: dt.datetime | None
    timestamp_col: str

    def lineage(self) -> dict:
        """What the set was built from, as JSON-ready values (for a run's record)."""
        return {
            "table_versions": dict(self.table_versions),
            "features": {t: list(f) for t, f in self.features.items()},
            "columns": [
                feature_column_name(t, f) for t, names in self.features.items() for f in names
            ],
            "written_before": self.written_before.isoformat() if self.written_before else None,
            "timestamp_col": self.timestamp_col,
        }


def parse_feature_request(
    features: Mapping[str, Sequence[str]] | Sequence[str],
    registry: FeatureRegistry,
) -> dict[str, tuple[str, ...]]:
    """Normalize `{table: [features]}` or `["table:feature", "table", ...]` to
    `{table: (features...)}` in request order ("table" alone means all its features)."""
    if isinstance(features, str):
        raise ValueError("features must be a mapping or a list of 'table:feature' strings")
    wanted: dict[str, list[str]] = {}
    if isinstance(features, Mapping):
        for table_name, names in features.items():
            if isinstance(names, str):
                raise ValueError(f"features of {table_name!r} must be a list, not a string")
            wanted.setdefault(table_name, []).extend(names)
    else:
        for item in features:
            if not isinstance(item, str) or not item:
                raise ValueError(f"feature request {item!r} is not 'table' or 'table:feature'")
            table_name, sep, feature = item.partition(":")
            if sep and not feature:
                raise ValueError(f"feature request {item!r} names no feature")
            names = [feature] if sep else list(_table(registry, table_name).feature_names)
            wanted.setdefault(table_name, []).extend(names)
    if not wanted:
        raise ValueError("no features requested")
    result: dict[str, tuple[str, ...]] = {}
    for table_name, names in wanted.items():
        table = _table(registry, table_name)
        if not names:
            raise ValueError(f"{table_name}: no features requested")
        unknown = [n for n in names if n not in table.feature_names]
        if unknown:
            raise ValueError(
                f"{table_name}: unknown features {unknown}; "
                f"declared: {', '.join(table.feature_names)}"
            )
        result[table_name] = tuple(dict.fromkeys(names))  # drop repeats, keep order
    return result


def _table(registry: FeatureRegistry, name: str) -> FeatureTable:
    try:
        return registry.get(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def get_training_set(
    spark: SparkSession,
    lake_root: str,
    spine: DataFrame,
    features: Mapping[str, Sequence[str]] | Sequence[str],
    *,
    timestamp_col: str = "ts",
    written_before: dt.datetime | None = None,
    versions: Mapping[str, int] | None = None,
    registry: FeatureRegistry | None = None,
) -> TrainingSet:
    """Point-in-time join of `spine` with feature tables read from `<lake_root>/features/`.

    Each table is read at one Delta version, recorded in `table_versions`: its
    current version, or exactly `versions[table]` (time travel) so that a training
    set can be rebuilt from its lineage.
    """
    registry = REGISTRY if registry is None else registry
    wanted = parse_feature_request(features, registry)
    if versions is not None:
        missing = [t for t in wanted if t not in versions]
        extra = [t for t in versions if t not in wanted]
        if missing or extra:
            raise ValueError(
                f"versions must name exactly the requested tables {list(wanted)}: "
                f"missing {missing}, not requested {extra}"
            )
    table_versions: dict[str, int] = {}
    requests: list[FeatureRequest] = []
    for table_name, names in wanted.items():
        table = registry.get(table_name)
        path = lk.Lake(lake_root).features(table_name)
        if not lk.table_exists(spark, path):
            raise ValueError(f"feature table {table_name!r} has no Delta table at {path}")
        if versions is None:
            version = lk.table_version(spark, path)
        else:
            version = versions[table_name]
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise ValueError(f"version of {table_name!r} must be an int >= 0, got {version!r}")
        rows = lk.read_table(spark, path, version=version).select(
            *table.keys, AS_OF, WRITTEN_AT, *names
        )
        table_versions[table_name] = version
        requests.append((table, rows, names))
    frame = point_in_time_join(
        spine, requests, timestamp_col=timestamp_col, written_before=written_before
    )
    return TrainingSet(
        frame=frame,
        table_versions=table_versions,
        features=wanted,
        written_before=written_before,
        timestamp_col=timestamp_col,
    )


def log_lineage_to_mlflow(
    training_set: TrainingSet, *, artifact_file: str = "training_set.json"
) -> dict:
    """Record a training set's lineage on the active MLflow run: a param per table
    version, the requested features as tags, and the whole lineage as a JSON artifact."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_lineage_to_mlflow needs an active MLflow run (mlflow.start_run())")
    lineage = training_set.lineage()
    params = {f"training_set.{t}.version": v for t, v in training_set.table_versions.items()}
    params["training_set.timestamp_col"] = training_set.timestamp_col
    params["training_set.written_before"] = lineage["written_before"] or "none"
    mlflow.log_params(params)
    mlflow.set_tags(
        {f"training_set.{t}.features": ",".join(f) for t, f in training_set.features.items()}
    )
    mlflow.log_dict(lineage, artifact_file)
    return lineage

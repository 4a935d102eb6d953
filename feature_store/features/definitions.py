"""Feature definitions as data: entities, columns, expectations, tables, the registry.

Everything a feature table promises is declared here once and used everywhere:
the builder selects exactly the declared columns in the declared types, the
validation gate turns the declarations into a Great Expectations suite, the
point-in-time join reads the keys, as-of column and TTL, and `marquee features
describe` prints them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pyspark.sql import types as T

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

AS_OF = "as_of_date"  # features in the partition summarise events up to the end of this date
WRITTEN_AT = "written_at"  # when the partition was committed (for leakage cut-offs)
WINDOWS = (1, 7, 28)  # the windows, in days, of the windowed feature columns
UNKNOWN_SEGMENT = "unknown"  # the segment of a profile with no viewing to judge it by


@dataclasses.dataclass(frozen=True)
class Entity:
    name: str
    keys: tuple[str, ...]
    description: str


@dataclasses.dataclass(frozen=True)
class FeatureColumn:
    """One column of a feature table and the checks its values must pass."""

    name: str
    dtype: str  # Spark SQL type name: double, long, int, string, date, timestamp
    description: str
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] = ()

    @property
    def spark_type(self) -> T.DataType:
        return T._parse_datatype_string(self.dtype)  # noqa: SLF001 - public in all but name


@dataclasses.dataclass(frozen=True)
class TransformInputs:
    """What a table's transform is given by the build: the bronze sources the table
    declares, by name and pinned at the versions the build records (bronze viewing comes
    as the views instead when its transform is a ``FromViews``), the rows of its upstream
    feature tables for the same as-of dates, and the dates."""

    as_of_dates: tuple[dt.date, ...]
    bronze: Mapping[str, DataFrame]
    views: DataFrame | None
    upstream: Mapping[str, DataFrame]
    broadcast_max_rows: int  # a frame up to this many rows may be broadcast to a join


Transform = Callable[[TransformInputs], "DataFrame"]


@dataclasses.dataclass(frozen=True)
class FromViews:
    """A transform of the views (bronze viewing reduced to one row per profile x session x
    title, kept day by day in silver/views) that takes each other declared source by its
    name: ``compute(views, <source>=..., as_of_dates=...)``."""

    compute: Callable[..., DataFrame]

    def __call__(self, inputs: TransformInputs) -> DataFrame:
        return self.compute(inputs.views, **inputs.bronze, as_of_dates=inputs.as_of_dates)


@dataclasses.dataclass(frozen=True)
class FeatureTable:
    """A daily feature table: one row per entity key per as-of date."""

    name: str
    entity: Entity
    keys: tuple[str, ...]  # unique per as-of date: the entity's keys plus any sub-keys
    description: str
    owner: str
    ttl_days: int  # a row may serve requests up to this many days after its as-of date
    lookback_days: int  # event dates its windows cover: (as_of - lookback, as_of]
    sources: tuple[str, ...]  # bronze tables read
    columns: tuple[FeatureColumn, ...]  # keys first, then features
    freshness_column: str  # a timestamp column: its maximum must be recent
    max_staleness_hours: int
    max_row_change: float = 0.5  # allowed relative change of the row count day over day
    min_rows: int = 1
    upstream_tables: tuple[str, ...] = ()  # feature tables of the same as-of date it reads
    # computes the rows of every as-of date from the inputs; the build calls it
    transform: Transform | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"feature table {self.name}: duplicate column names")
        missing = [k for k in (*self.keys, self.freshness_column) if k not in names]
        if missing:
            raise ValueError(f"feature table {self.name}: undeclared columns {missing}")
        if AS_OF in names or WRITTEN_AT in names:
            raise ValueError(
                f"feature table {self.name}: {AS_OF}/{WRITTEN_AT} are added by the builder"
            )

    @property
    def from_views(self) -> bool:
        """Whether the transform reads the views instead of bronze viewing."""
        return isinstance(self.transform, FromViews)

    def column(self, name: str) -> FeatureColumn:
        """The declared column `name`; raises `KeyError` when there is none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"feature table {self.name} has no column {name!r}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.name not in self.keys)

    @property
    def schema(self) -> T.StructType:
        """The stored schema: declared columns, then the as-of date and write time."""
        return T.StructType(
            [T.StructField(c.name, c.spark_type, c.nullable) for c in self.columns]
            + [
                T.StructField(AS_OF, T.DateType(), False),
                T.StructField(WRITTEN_AT, T.TimestampType(), False),
            ]
        )


@dataclasses.dataclass(frozen=True)
class Dimension:
    """Reference data several models share, read as known at the end of a date: each
    key's newest record in a bronze source up to that date. It has no partitions of its
    own; models read it through the feature store (`features.retrieval`)."""

    name: str
    entity: Entity
    source: str  # the bronze source whose records it keeps, newest per key
    description: str
    owner: str
    columns: tuple[str, ...]  # the entity's keys first

    def __post_init__(self) -> None:
        if self.columns[: len(self.entity.keys)] != self.entity.keys:
            raise ValueError(f"dimension {self.name}: columns must start with the entity's keys")


class FeatureRegistry:
    """The declared feature tables, by name."""

    def __init__(self, tables: tuple[FeatureTable, ...]):
        self._tables = {t.name: t for t in tables}
        if len(self._tables) != len(tables):
            raise ValueError("feature table names must be unique")

    def __iter__(self):
        return iter(self._tables.values())

    def __len__(self) -> int:
        return len(self._tables)

    def names(self) -> list[str]:
        """The table names, in declaration order."""
        return list(self._tables)

    def get(self, name: str) -> FeatureTable:
        """The table `name`; raises `KeyError` naming the declared ones when unknown."""
        try:
            return self._tables[name]
        except KeyError:
            raise KeyError(
                f"unknown feature table {name!r}; declared: {', '.join(self._tables)}"
            ) from None

    def entities(self) -> list[Entity]:
        """The entities of the tables, each once, in the order first met."""
        seen: dict[str, Entity] = {}
        for table in self:
            seen.setdefault(table.entity.name, table.entity)
        return list(seen.values())


def describe(table: FeatureTable) -> str:
    """A human-readable page about one table (for `marquee features describe`)."""
    lines = [
        f"{table.name}: {table.description}",
        f"  entity      {table.entity.name} (keys: {', '.join(table.keys)})",
        f"  as-of       {AS_OF} (events up to the end of that date); TTL {table.ttl_days} days",
        f"  reads       bronze {', '.join(table.sources)} over the last {table.lookback_days} days",
        f"  owner       {table.owner}",
        f"  checks      non-null and ranges per column, unique keys per {AS_OF}, row count"
        f" within ±{table.max_row_change:.0%} of the previous day (at least {table.min_rows}),"
        f" max({table.freshness_column}) no older than {table.max_staleness_hours} h",
        "  columns:",
    ]
    for col in table.columns:
        bounds = []
        if col.min_value is not None and col.max_value is not None:
            bounds.append(f"{col.min_value:g} to {col.max_value:g}")
        elif col.min_value is not None:
            bounds.append(f">= {col.min_value:g}")
        elif col.max_value is not None:
            bounds.append(f"<= {col.max_value:g}")
        if col.allowed:
            bounds.append("one of " + "/".join(col.allowed))
        if col.nullable:
            bounds.append("nullable")
        extra = f"  ({'; '.join(bounds)})" if bounds else ""
        lines.append(f"    {col.name:<34}{col.dtype:<10}{col.description}{extra}")
    return "\n".join(lines)

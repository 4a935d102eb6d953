"""Synthetic streaming-service data from a hidden ground truth.

`generate` draws the world (effects and catalogue), the members and their
activity, saves the truth under `<lake>/ground_truth/`, and writes daily landing
files for every source. The result depends only on the seed and the sizes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk
from feature_store.privacy import pseudonymize
from feature_store.sources import SOURCES, Source
from feature_store.synthetic import activity, members, records
from feature_store.synthetic.artwork import ArtworkLogging
from feature_store.synthetic.landing import write_landing
from feature_store.synthetic.world import Catalogue, WorldParams, draw_catalogue

log = logging.getLogger(__name__)

_SESSION_COLUMNS = (
    "profile_idx",
    "k",
    "account_idx",
    "account_id",
    "profile_id",
    "session_id",
    "day",
    "region",
    "region_idx",
    "device_idx",
    "local_hour",
    "hour_group",
    "start_seconds",
    "segment",
    "top_genres",
)
_MEMBER_IDS = ("account_id", "profile_id")
_TASKS_PER_CORE = 4


@dataclasses.dataclass(frozen=True)
class GenerationSpec:
    seed: int
    accounts: int
    titles: int
    days: int
    start_date: dt.date
    dirty_share: float
    late_share: float
    sessions_per_day: float
    landing_compression: str = "none"
    # The first history_days days go straight into bronze (`generate` only): a platform
    # adopting Marquee brings its history in tables; only the newest days arrive as files.
    history_days: int = 0
    # How the artwork shown is chosen (uniform unless told): logged with its probability.
    artwork_logging: ArtworkLogging = ArtworkLogging()

    def __post_init__(self) -> None:
        if not 0 <= self.history_days < self.days:
            raise ValueError(
                f"history_days must be from 0 to days - 1 = {self.days - 1}, "
                f"got {self.history_days}"
            )

    @property
    def end_date(self) -> dt.date:
        return self.start_date + dt.timedelta(days=self.days - 1)

    @property
    def dates(self) -> list[dt.date]:
        return [self.start_date + dt.timedelta(days=d) for d in range(self.days)]

    @property
    def landing_dates(self) -> list[dt.date]:
        """The days written as landing files (after the history written to bronze)."""
        return self.dates[self.history_days :]


@dataclasses.dataclass(frozen=True)
class GenerationResult:
    spec: GenerationSpec
    landing_counts: dict[str, dict[str, int]]  # source -> {lines, late, <dirty kind>: n}
    seconds_by_stage: dict[str, float]

    @property
    def lines(self) -> int:
        return sum(c["lines"] for c in self.landing_counts.values())


class _Stopwatch:
    """Seconds per named stage, logged as each one ends."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 2)
        self._clock = now
        log.info("generate: %s done in %.1fs", name, self.timings[name])


def generate(
    spark: SparkSession,
    lake_root: str,
    spec: GenerationSpec,
    *,
    pseudonymization_key: str | None = None,
) -> GenerationResult:
    """Draw the world and write daily landing files (with dirty records) for every source.

    With ``spec.history_days``, the records of those first days go straight into bronze
    instead, clean, as `generate_bronze` writes them (which needs the pseudonymization
    key); the landing files start the day after.
    """
    if spec.history_days and not pseudonymization_key:
        raise ValueError("history_days > 0 writes bronze rows: pass the pseudonymization key")
    lake = lk.Lake(lake_root)
    stage = _Stopwatch()
    key = pseudonymization_key if spec.history_days else None
    world, landing_records, history_records = _draw(
        spark, lake, spec, stage, pseudonymization_key=key
    )
    first_landing = spec.landing_dates[0]
    counts = {}
    for name, frame in landing_records.items():
        source = SOURCES[name]
        if history_records:
            history = dataclasses.replace(spec, days=spec.history_days, history_days=0)
            _write_bronze(spark, lake, source, history_records[name], history, None)
            frame = frame.filter(F.to_date(F.col(source.ts_field)) >= F.lit(first_landing))
        counts[name] = write_landing(
            frame.select(*[f.name for f in source.fields]),
            source=source,
            root=lake.root,
            seed=spec.seed,
            start=first_landing,
            days=len(spec.landing_dates),
            dirty_share=spec.dirty_share,
            late_share=spec.late_share,
            compression=spec.landing_compression,
        )
        stage(f"landing {name}")
    _write_manifest(spark, lake, spec, world, counts)
    return GenerationResult(spec, counts, stage.timings)


def generate_bronze(
    spark: SparkSession, lake_root: str, spec: GenerationSpec, *, pseudonymization_key: str
) -> GenerationResult:
    """Draw the same world but write clean records straight into the bronze tables.

    For benchmarks of what comes after ingestion (feature builds at millions of
    members): it skips the landing JSON and its parsing, which dominate the cost of a
    full generate + ingest. The rows are what ingestion would keep from clean landing
    files: declared bronze columns, member ids pseudonymized with the same keyed hash,
    partitioned by event date. No dirty or late records.
    """
    lake = lk.Lake(lake_root)
    stage = _Stopwatch()
    world, _, records = _draw(spark, lake, spec, stage, pseudonymization_key=pseudonymization_key)
    counts = {}
    for name, frame in records.items():
        counts[name] = {
            "lines": _write_bronze(spark, lake, SOURCES[name], frame, spec, None),
            "late": 0,
        }
        stage(f"bronze {name}")
    _write_manifest(spark, lake, spec, world, counts)
    return GenerationResult(spec, counts, stage.timings)


def _write_bronze(
    spark: SparkSession,
    lake: lk.Lake,
    source: Source,
    records: DataFrame,
    spec: GenerationSpec,
    pseudonymization_key: str | None,
) -> int:
    """Replace the source's bronze table with its clean records of ``spec``'s days;
    returns the number of rows (``pseudonymization_key``: see `bronze_records`)."""
    rows = bronze_records(
        records, source=source, spec=spec, pseudonymization_key=pseudonymization_key
    )
    observation = Observation(f"bronze_{source.name}")
    with (
        lk.concurrent_partition_writes(spark),
        lk.without_dictionaries(spark, source.scattered_columns),
    ):
        lk.overwrite(
            rows.observe(observation, F.count(F.lit(1)).alias("rows")),
            lake.bronze(source.name),
            partition_by=["event_date"],
        )
    return int(observation.get["rows"])


def bronze_records(
    records: DataFrame, *, source: Source, spec: GenerationSpec, pseudonymization_key: str | None
) -> DataFrame:
    """A source's clean records in its bronze shape (see `generate_bronze`); without a
    pseudonymization key the records' member ids are pseudonyms already."""
    ts = F.col(source.ts_field)
    columns = []
    for f in source.bronze_fields:
        value = F.col(f.name)
        if f.pseudonymize and pseudonymization_key:
            value = pseudonymize(value, pseudonymization_key)
        if isinstance(f.dtype, T.AtomicType):  # nested fields already have their shape
            value = value.cast(f.dtype)
        columns.append(value.alias(f.name))
    return (
        records.filter(F.to_date(ts).between(F.lit(spec.start_date), F.lit(spec.end_date)))
        .select(*columns, F.to_date(ts).alias("event_date"))
        .withColumn("ingest_date", F.col("event_date"))
        .withColumn("source_file", F.lit("generate_bronze"))
    )


def _draw(
    spark: SparkSession,
    lake: lk.Lake,
    spec: GenerationSpec,
    stage: _Stopwatch,
    *,
    pseudonymization_key: str | None = None,
) -> tuple[WorldParams, dict[str, DataFrame], dict[str, DataFrame] | None]:
    """Save the ground truth and return the records of every source (lazy DataFrames):
    with the member ids, and with ``pseudonymization_key`` also with their keyed
    pseudonyms as bronze holds them (else None). The ground truth keeps the ids."""
    world = WorldParams.draw(spec.seed)
    truth = lake.ground_truth
    catalogue, titles = _save_catalogue(spark, truth, spec)
    stage("catalogue")
    accounts = members.accounts(
        spark, seed=spec.seed, n_accounts=spec.accounts, days=spec.days, world=world
    )
    accounts = _saved(spark, accounts, f"{truth}/accounts")
    stage("accounts")
    profiles = _saved(spark, members.profiles(accounts, seed=spec.seed), f"{truth}/profiles")
    stage("profiles")
    sessions = _session_choices(profiles, catalogue, spec, world, pseudonymization_key)
    # Not partitioned by day: a partitioned write sorts every task's rows first.
    sessions = _saved(spark, sessions, f"{truth}/sessions")
    stage("sessions")
    landing_sessions, history_sessions = _split_sessions(sessions, spec.history_days)
    records = _source_records(spec, world, titles, accounts, profiles, landing_sessions)
    if not pseudonymization_key:
        return world, records, None
    pseudonymized = _source_records(
        spec,
        world,
        titles,
        *_pseudonymized(accounts, profiles, pseudonymization_key),
        history_sessions.withColumns({c: F.col(f"{c}_pseudonym") for c in _MEMBER_IDS}),
    )
    return world, records, pseudonymized


# A session's events fall on UTC dates from the day before its local day (UTC offsets up
# to +10 h) to the day after (-8 h, and views running past midnight): a margin of two.
_SPILL_DAYS = 2


def _split_sessions(sessions: DataFrame, history_days: int) -> tuple[DataFrame, DataFrame]:
    """The sessions whose events can reach the landing days, and those that can reach the
    history: each part's records are then filtered by date exactly, but no longer made
    for all the window's days only to keep a few."""
    if not history_days:
        return sessions, sessions
    day = F.col("day")
    return (
        sessions.filter(day >= history_days - _SPILL_DAYS),
        sessions.filter(day < history_days + _SPILL_DAYS),
    )


def _save_catalogue(
    spark: SparkSession, truth: str, spec: GenerationSpec
) -> tuple[Catalogue, DataFrame]:
    """Draw the catalogue and save its titles and title regions as truth; return it with
    the titles as a DataFrame."""
    catalogue = draw_catalogue(spec.seed, spec.titles, spec.start_date, spec.days)
    titles = spark.createDataFrame(_arrays_to_lists(catalogue.titles)).withColumn(
        "artwork_styles", F.col("artwork_styles").cast("array<int>")
    )
    lk.overwrite(titles, f"{truth}/titles")
    lk.overwrite(spark.createDataFrame(catalogue.title_regions), f"{truth}/title_regions")
    return catalogue, titles


def _saved(spark: SparkSession, frame: DataFrame, path: str) -> DataFrame:
    """Write ``frame`` as truth at ``path`` and read it back, so that later steps read
    the saved rows instead of recomputing them."""
    lk.overwrite(frame, path)
    return lk.read_table(spark, path)


def _session_choices(
    profiles: DataFrame,
    catalogue: Catalogue,
    spec: GenerationSpec,
    world: WorldParams,
    pseudonymization_key: str | None,
) -> DataFrame:
    """The profiles' sessions with their candidates and choices, in the columns saved
    as truth (with the members' pseudonyms when there is a key)."""
    # A few even partitions per core, so that no task runs alone at the end: 500,000
    # accounts' five files of profiles were read as two splits of 3:2.
    cores = profiles.sparkSession.sparkContext.defaultParallelism
    session_profiles = profiles.repartition(_TASKS_PER_CORE * cores, "profile_idx")
    keep = list(_SESSION_COLUMNS)
    if pseudonymization_key:
        # Hashed once per profile and carried by its sessions, not on each event row
        # (~250M at 2M accounts x 30 days, four SHA-256 per row): on 4.3M viewing events
        # that halved computing the bronze rows (8.0 s to 4.0 s).
        session_profiles = session_profiles.select(
            "*", *[_pseudonym(c, pseudonymization_key) for c in _MEMBER_IDS]
        )
        keep += [f"{c}_pseudonym" for c in _MEMBER_IDS]
    sessions = activity.sessions(
        session_profiles,
        seed=spec.seed,
        start=spec.start_date,
        days=spec.days,
        sessions_per_day=spec.sessions_per_day,
        world=world,
    )
    return activity.choices(
        sessions,
        catalogue,
        seed=spec.seed,
        world=world,
        keep=tuple(keep),
        logging=spec.artwork_logging,
    )


def _pseudonymized(
    accounts: DataFrame, profiles: DataFrame, pseudonymization_key: str
) -> tuple[DataFrame, DataFrame]:
    """Accounts and profiles with the member ids replaced by their pseudonyms."""
    accounts = accounts.withColumn(
        "account_id", pseudonymize(F.col("account_id"), pseudonymization_key)
    )
    profiles = profiles.withColumns(
        {c: pseudonymize(F.col(c), pseudonymization_key) for c in _MEMBER_IDS}
    )
    return accounts, profiles


def _source_records(
    spec: GenerationSpec,
    world: WorldParams,
    titles: DataFrame,
    accounts: DataFrame,
    profiles: DataFrame,
    sessions: DataFrame,
) -> dict[str, DataFrame]:
    """Every source's records, from the saved truth (lazy DataFrames)."""
    views = activity.views(sessions, seed=spec.seed, world=world)
    changes = records.plan_changes(accounts, seed=spec.seed, days=spec.days)
    return {
        "titles": records.title_records(titles, seed=spec.seed, start=spec.start_date),
        "accounts": records.account_records(
            accounts, changes, seed=spec.seed, start=spec.start_date
        ),
        "profiles": records.profile_records(profiles, seed=spec.seed, start=spec.start_date),
        "subscriptions": records.subscription_records(
            accounts, changes, seed=spec.seed, start=spec.start_date, days=spec.days
        ),
        "viewing": activity.viewing_events(views, seed=spec.seed),
        "impressions": activity.impressions(sessions, titles, seed=spec.seed),
        "ratings": activity.ratings(views, seed=spec.seed),
        "searches": activity.searches(views, seed=spec.seed),
    }


def _pseudonym(column: str, key: str):
    return pseudonymize(F.col(column), key).alias(f"{column}_pseudonym")


def _write_manifest(
    spark: SparkSession, lake: lk.Lake, spec: GenerationSpec, world: WorldParams, counts: dict
) -> None:
    truth = lake.ground_truth
    manifest = {
        "spec": {**dataclasses.asdict(spec), "start_date": spec.start_date.isoformat()},
        "world": dataclasses.asdict(world),
        "landing_counts": counts,
    }
    lk.write_text(spark, f"{truth}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True))


def load_manifest(spark: SparkSession, lake_root: str) -> dict:
    """The generation's manifest (spec, world, landing counts) from the ground truth."""
    return json.loads(lk.read_text(spark, f"{lk.Lake(lake_root).ground_truth}/manifest.json"))


def _arrays_to_lists(frame):
    out = frame.copy()
    for column in ("genre_vec", "factors"):
        out[column] = out[column].map(lambda a: [float(x) for x in a])
    return out


__all__ = ["GenerationResult", "GenerationSpec", "generate", "load_manifest"]

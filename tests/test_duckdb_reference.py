"""The DuckDB reference of the feature benchmark (`bench/duckdb_features.py`) computes
the same feature rows as the Spark build, value by value.

One Spark build over the hand-made world (`feature_world`) plus a seeded random one:
window edges, sessions across midnight, versioned dimensions with `event_ts` ties,
titles missing from the catalogue, records after the as-of date, rated-only pairs,
cancelled accounts, impressions of unknown profiles."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pandas as pd
import pytest
from conftest import load_bench_module, make_config
from feature_world import AS_OF, bronze_frame, world
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features.build import build_features
from feature_store.features.definitions import AS_OF as AS_OF_COLUMN
from feature_store.features.tables import REGISTRY
from feature_store.sources import DEVICES, GENRES, PLANS, REGIONS, SOURCES

pytestmark = pytest.mark.integration


ref = load_bench_module("duckdb_features")
TABLES = [t.name for t in REGISTRY]
PANDAS_TYPES = {"string": object, "long": "Int64", "int": "Int64", "double": "float64"}


@pytest.fixture(scope="module")
def builds(spark, tmp_path_factory) -> dict:
    """The hand-made world plus a seeded random one as bronze Delta tables, every feature
    table built for AS_OF by Spark (`build_features`) and by DuckDB; rows per engine."""
    config = make_config(tmp_path_factory.mktemp("duckdb-reference"))
    lake = lk.Lake(config.lake)
    hand_made, randomized = world(spark), random_world(spark, seed=7, as_of=AS_OF)
    for name, frame in hand_made.items():
        more = randomized[name].withColumn("event_id", F.concat(F.lit("r-"), "event_id"))
        both = frame.unionByName(more)
        both.write.format("delta").partitionBy("event_date").save(lake.bronze(name))
    report = build_features(spark, config, AS_OF)
    assert report.ok, report.format_table()
    by_spark = {
        t: lk.read_table(spark, lake.features(t))
        .filter(F.col(AS_OF_COLUMN) == F.lit(AS_OF))
        .toPandas()
        for t in TABLES
    }
    files = {s: lk.read_table(spark, lake.bronze(s)).inputFiles() for s in SOURCES}
    con = duckdb.connect()
    ref.register_bronze(con, files)
    by_duckdb = {}
    for t in TABLES:
        rows = ref.build_table(con, t, AS_OF)
        by_duckdb[t] = con.table(t).df()
        assert rows == len(by_duckdb[t])
    con.close()
    return {"spark": by_spark, "duckdb": by_duckdb}


def aligned(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The declared columns in declared order, comparable dtypes, sorted by the keys."""
    declared = REGISTRY.get(table)
    out = pd.DataFrame(index=frame.index)
    for column in declared.columns:
        values = frame[column.name]
        if column.dtype == "timestamp":
            out[column.name] = pd.to_datetime(values).astype("datetime64[ns]")
        else:
            out[column.name] = values.astype(PANDAS_TYPES[column.dtype])
    out = out.sort_values(list(declared.keys)).reset_index(drop=True)
    assert not out.duplicated(list(declared.keys)).any(), f"{table}: duplicate keys"
    return out


def assert_same_rows(table: str, builds: dict) -> None:
    by_spark = aligned(table, builds["spark"][table])
    by_duckdb = aligned(table, builds["duckdb"][table])
    assert len(by_spark) > 0, f"{table}: the world gives no rows to compare"
    pd.testing.assert_frame_equal(by_duckdb, by_spark, check_exact=False, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("table", TABLES)
def test_duckdb_reference_gives_the_rows_of_the_spark_build(builds, table):
    assert_same_rows(table, builds)


def test_artwork_daily_needs_profile_daily_first():
    con = duckdb.connect()
    with pytest.raises(ValueError, match="build profile_daily first"):
        ref.build_table(con, "artwork_daily", AS_OF)


# --- a seeded random bronze world ------------------------------------------------------


def random_world(spark, *, seed: int, as_of: dt.date) -> dict:
    """Bronze rows spread over ~65 days around the as-of date (a few after it).

    Timestamps are unique per entity, so `min_by`/`max_by` have no ties; dimension
    versions do tie on `event_ts` (then the smallest `event_id` wins).
    """
    rnd = random.Random(seed)
    regions = list(REGIONS)[:4]
    midnight = dt.datetime.combine(as_of, dt.time())
    used: set[dt.datetime] = set()

    def moment(first_day: int, last_day: int) -> dt.datetime:
        """A unique second between `first_day` and `last_day` days after as_of (midnight)."""
        while True:
            t = midnight + dt.timedelta(seconds=rnd.randrange(first_day * 86400, last_day * 86400))
            if t not in used:
                used.add(t)
                return t

    def days_around(first: int, last: int) -> int:
        """Days from as_of, as often 0 or 1 (the edges) as anything else."""
        return rnd.choice([rnd.randint(first, last), 0, 1])

    titles = []
    title_ids = [f"t{i:02d}" for i in range(40)]
    for title in title_ids:
        versions = rnd.randint(1, 3)
        tied = moment(-80, 3)
        for _ in range(versions):
            art = [{"artwork_id": f"{title}-{a}", "style": "dark"} for a in "ab"]
            titles.append(
                {
                    "event_ts": tied if rnd.random() < 0.3 else moment(-80, 3),
                    "title_id": title,
                    "name": title,
                    "kind": rnd.choice(["movie", "series"]),
                    "genres": rnd.sample(GENRES, rnd.randint(1, 3)),
                    "cast": ["c"],
                    "release_date": as_of + dt.timedelta(days=days_around(-400, 20)),
                    "duration_minutes": rnd.randint(20, 150),
                    "available_regions": rnd.sample(regions, rnd.randint(1, len(regions))),
                    "artwork": art,
                }
            )
    watchable = [*title_ids, "t98"]  # t98: not in the catalogue

    accounts, profiles, subscriptions = [], [], []
    viewing, ratings, searches, impressions = [], [], [], []
    for a in range(30):
        account = f"a{a:02d}"
        region = rnd.choice(regions)
        for _ in range(rnd.randint(1, 2)):
            accounts.append(
                {
                    "event_ts": moment(-70, 2),
                    "account_id": account,
                    "country": REGIONS[region][0],
                    "region": region,
                    "plan": rnd.choice(PLANS),
                    "signup_date": as_of + dt.timedelta(days=days_around(-500, 2)),
                    "household_size": 2,
                }
            )
        for _ in range(rnd.randint(0, 4)):
            subscriptions.append(
                {
                    "event_ts": moment(-60, 2),
                    "account_id": account,
                    "event_type": rnd.choice(
                        ["signup", "plan_change", "payment_failure", "cancel"]
                    ),
                    "plan": rnd.choice(PLANS),
                }
            )
        for p in range(rnd.randint(1, 4)):
            profile = f"{account}-p{p}"
            for _ in range(rnd.choice([1, 1, 2])):
                profiles.append(
                    {"event_ts": moment(-70, 3), "account_id": account, "profile_id": profile}
                )
            member = {"account_id": account, "profile_id": profile}
            for s in range(rnd.randint(0, 12)):
                start = moment(-65, 1)
                device = rnd.choice(DEVICES)
                view_region = region if rnd.random() < 0.9 else rnd.choice(regions)
                for title in rnd.sample(watchable, rnd.randint(1, 2)):
                    view = random_view(
                        rnd, start, member, f"{profile}-s{s}", title, device, view_region
                    )
                    viewing += view
                    start = view[-1]["event_ts"] + dt.timedelta(seconds=rnd.randint(1, 600))
            for _ in range(rnd.randint(0, 5)):
                ratings.append(
                    {
                        **member,
                        "event_ts": moment(-60, 1),
                        "title_id": rnd.choice(title_ids[:10]),  # often the same pair
                        "thumbs": rnd.choice(["up", "down"]),
                    }
                )
            for _ in range(rnd.randint(0, 3)):
                searches.append(
                    {
                        **member,
                        "event_ts": moment(-35, 1),
                        "query": "q",
                        "results_count": 1,
                        "device": "tv",
                    }
                )
            for _ in range(rnd.randint(0, 10)):
                title = rnd.choice(title_ids)
                impressions.append(
                    {
                        **member,
                        "event_ts": moment(-35, 1),
                        "session_id": "s",
                        "title_id": title,
                        "artwork_id": f"{title}-{rnd.choice('ab')}",
                        "page_row": "top_picks",
                        "row_position": 1,
                        "clicked": rnd.random() < 0.3,
                        "device": "tv",
                        "region": region,
                    }
                )
    # An impression of a profile that no profile_daily row knows: segment 'unknown'.
    impressions.append({**impressions[0], "event_ts": moment(-1, 0), "profile_id": "zz-p0"})
    frames = {
        "titles": titles,
        "accounts": accounts,
        "profiles": profiles,
        "subscriptions": subscriptions,
        "viewing": viewing,
        "ratings": ratings,
        "searches": searches,
        "impressions": impressions,
    }
    return {name: bronze_frame(spark, name, rows) for name, rows in frames.items()}


def random_view(rnd, start, member, session, title, device, region) -> list[dict]:
    """play, up to two pauses, then stop or complete: one view of up to three hours."""
    offset = REGIONS[region][1]
    events, at = [], start
    kinds = ["play", *["pause"] * rnd.randint(0, 2), rnd.choice(["stop", "complete"])]
    for kind in kinds:
        seconds = 0 if kind == "play" else rnd.randint(60, 3600)
        at = at + dt.timedelta(seconds=seconds)
        events.append(
            {
                **member,
                "event_ts": at,
                "session_id": session,
                "title_id": title,
                "event_type": kind,
                "watch_seconds": seconds,
                "position_seconds": seconds,
                "device": device,
                "region": region,
                "local_hour": (at.hour + offset) % 24,
            }
        )
    return events

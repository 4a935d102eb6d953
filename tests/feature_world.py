"""A tiny hand-made bronze lake for feature tests: every number is easy to check.

As of 2026-01-10:
- titles: t1 drama movie, 100 min, released 2025-01-01, in gb and de;
  t2 comedy+family, 50 min, released 2026-01-09, gb only; t3 announced for 2026-02-01.
- account a1 (gb, premium, since 2025-01-10) with profiles p1 and p2; account a2 (de,
  basic, since 2026-01-01) with p3, which never watches; a2 has a payment failure on
  2026-01-03. Account a3 signed up and cancelled (not an active account).
- p1: s1 on 01-10 at 20h on tv watches t1 to the end (6000 s), s2 on 01-05 at 20h on tv
  watches 1500 s of t2, s4 on 01-10 at 22h on tv watches t1 again (600 s); thumbs up t1.
- p2: s3 on 2025-12-20 at 8h on mobile, 3600 s of t1 (not finished); one search on 01-08.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from feature_store.sources import SOURCES

AS_OF = dt.date(2026, 1, 10)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def bronze_frame(spark: SparkSession, source: str, rows: list[dict]) -> DataFrame:
    """Rows in the bronze schema of `source`; unspecified fields are null."""
    fields = SOURCES[source].bronze_fields
    schema = T.StructType(
        [T.StructField(f.name, f.dtype) for f in fields]
        + [
            T.StructField("event_date", T.DateType()),
            T.StructField("ingest_date", T.DateType()),
            T.StructField("source_file", T.StringType()),
        ]
    )
    data = []
    for i, row in enumerate(rows):
        event_ts = row["event_ts"]
        full = {
            "event_id": f"{source}-{i}",
            **row,
            "event_date": event_ts.date(),
            "ingest_date": event_ts.date(),
            "source_file": "fixture",
        }
        data.append(tuple(full.get(f.name) for f in schema.fields))
    return spark.createDataFrame(data, schema)


def view_events(
    profile, account, session, title, start, seconds, *, complete, device, hour, region
):
    """play at start, then stop/complete at the end: two events of one view."""
    begin = ts(start)
    common = {
        "account_id": account,
        "profile_id": profile,
        "session_id": session,
        "title_id": title,
        "device": device,
        "region": region,
        "local_hour": hour,
    }
    return [
        {**common, "event_ts": begin, "event_type": "play", "watch_seconds": 0},
        {
            **common,
            "event_ts": begin + dt.timedelta(seconds=seconds),
            "event_type": "complete" if complete else "stop",
            "watch_seconds": seconds,
        },
    ]


def world(spark: SparkSession, member_id=lambda raw: raw) -> dict[str, DataFrame]:
    """The bronze tables; `member_id` maps a1/p1... (e.g. to real pseudonyms)."""
    art = [{"artwork_id": "t1-a", "style": "dark"}, {"artwork_id": "t1-b", "style": "bright"}]
    titles = [
        {
            "event_ts": ts("2026-01-01T00:00:00"),
            "title_id": "t1",
            "name": "One",
            "kind": "movie",
            "genres": ["drama"],
            "cast": ["x"],
            "release_date": dt.date(2025, 1, 1),
            "duration_minutes": 100,
            "available_regions": ["gb", "de"],
            "artwork": art,
        },
        {
            "event_ts": ts("2026-01-01T00:00:00"),
            "title_id": "t2",
            "name": "Two",
            "kind": "series",
            "genres": ["comedy", "family"],
            "cast": ["y"],
            "release_date": dt.date(2026, 1, 9),
            "duration_minutes": 50,
            "available_regions": ["gb"],
            "artwork": [],
        },
        {
            "event_ts": ts("2026-01-01T00:00:00"),
            "title_id": "t3",
            "name": "Three",
            "kind": "movie",
            "genres": ["horror"],
            "cast": ["z"],
            "release_date": dt.date(2026, 2, 1),
            "duration_minutes": 90,
            "available_regions": ["gb"],
            "artwork": [],
        },
    ]
    accounts = [
        {
            "event_ts": ts("2026-01-01T00:00:00"),
            "account_id": "a1",
            "country": "GB",
            "region": "gb",
            "plan": "standard",
            "signup_date": dt.date(2025, 1, 10),
            "household_size": 2,
        },
        # a newer version of a1: the plan changed
        {
            "event_ts": ts("2026-01-04T00:00:00"),
            "account_id": "a1",
            "country": "GB",
            "region": "gb",
            "plan": "premium",
            "signup_date": dt.date(2025, 1, 10),
            "household_size": 2,
        },
        {
            "event_ts": ts("2026-01-01T00:00:00"),
            "account_id": "a2",
            "country": "DE",
            "region": "de",
            "plan": "basic",
            "signup_date": dt.date(2026, 1, 1),
            "household_size": 1,
        },
        {
            "event_ts": ts("2026-01-01T00:00:00"),
            "account_id": "a3",
            "country": "DE",
            "region": "de",
            "plan": "basic",
            "signup_date": dt.date(2026, 1, 1),
            "household_size": 1,
        },
    ]
    profiles = [
        {"event_ts": ts("2026-01-01T00:00:00"), "account_id": a, "profile_id": p}
        for a, p in (("a1", "p1"), ("a1", "p2"), ("a2", "p3"), ("a3", "p4"))
    ]
    subscriptions = [
        {
            "event_ts": ts("2026-01-03T10:00:00"),
            "account_id": "a2",
            "event_type": "payment_failure",
            "plan": "basic",
        },
        {
            "event_ts": ts("2026-01-04T00:00:00"),
            "account_id": "a1",
            "event_type": "plan_change",
            "plan": "premium",
            "previous_plan": "standard",
        },
        {
            "event_ts": ts("2026-01-02T00:00:00"),
            "account_id": "a3",
            "event_type": "cancel",
            "plan": "basic",
        },
    ]
    viewing = [
        *view_events(
            "p1",
            "a1",
            "s1",
            "t1",
            "2026-01-10T20:00:00",
            6000,
            complete=True,
            device="tv",
            hour=20,
            region="gb",
        ),
        *view_events(
            "p1",
            "a1",
            "s2",
            "t2",
            "2026-01-05T20:00:00",
            1500,
            complete=False,
            device="tv",
            hour=20,
            region="gb",
        ),
        *view_events(
            "p1",
            "a1",
            "s4",
            "t1",
            "2026-01-10T22:00:00",
            600,
            complete=False,
            device="tv",
            hour=22,
            region="gb",
        ),
        *view_events(
            "p2",
            "a1",
            "s3",
            "t1",
            "2025-12-20T08:00:00",
            3600,
            complete=False,
            device="mobile",
            hour=8,
            region="gb",
        ),
    ]
    ratings = [
        {
            "event_ts": ts("2026-01-10T21:45:00"),
            "account_id": "a1",
            "profile_id": "p1",
            "title_id": "t1",
            "thumbs": "up",
        },
    ]
    searches = [
        {
            "event_ts": ts("2026-01-08T12:00:00"),
            "account_id": "a1",
            "profile_id": "p2",
            "query": "one",
            "results_count": 3,
            "device": "mobile",
        },
    ]
    impressions = [
        {
            "event_ts": ts(f"2026-01-{day}T19:00:00"),
            "account_id": {"p1": "a1", "p3": "a2"}[profile],
            "profile_id": profile,
            "session_id": "s",
            "title_id": "t1",
            "artwork_id": art_id,
            "page_row": "top_picks",
            "row_position": 1,
            "clicked": clicked,
            "device": "tv",
            "region": "gb",
        }
        for day, profile, art_id, clicked in (
            ("10", "p1", "t1-a", True),
            ("10", "p1", "t1-a", False),
            ("09", "p1", "t1-b", False),
            ("10", "p3", "t1-a", False),
        )
    ]
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
    for rows in frames.values():
        for row in rows:
            for column in ("account_id", "profile_id"):
                if column in row:
                    row[column] = member_id(row[column])
    return {name: bronze_frame(spark, name, rows) for name, rows in frames.items()}

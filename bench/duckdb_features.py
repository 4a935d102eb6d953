"""The six feature tables in DuckDB SQL: a reference to time Spark against.

`bench_features.py` builds every feature table for one as-of date with Spark
(`feature_store.features.build`) and then the same rows with DuckDB over the same
bronze Parquet files (the active files of each bronze Delta table). For the
comparison to be fair the SQL here computes exactly what `transforms.py` computes:
the same windows, filters, joins, tie-breaks and null handling, the declared columns
in the declared types (`conform`). `tests/test_duckdb_reference.py` checks that, value
by value, against `build_features`.

Mirrored from the Spark build:
- `views`: the one pre-aggregation (profile, account, session, title) over the longest
  lookback of the tables that read it (56 days), computed once per as-of date and
  reused, as `build_features` persists it (`build_table` keeps it as a temp table);
- dimension snapshots (`latest_version`): newest `event_ts`, then smallest `event_id`,
  among records with `event_date <= as_of`;
- `artwork_daily` reads the viewer's segment from `profile_daily` of the same date,
  so build `profile_daily` first on the same connection (as `build_features` does).

Not mirrored: deletion vectors (the files are read whole; bronze tables do not use them).
"""

from __future__ import annotations

import datetime as dt
import re
import time

import duckdb

from feature_store.features.definitions import AS_OF
from feature_store.features.tables import REGISTRY, UNKNOWN_SEGMENT, WINDOWS
from feature_store.sources import DAYPARTS, DEVICES, GENRES, SEGMENTS

BRONZE = (
    "viewing",
    "impressions",
    "ratings",
    "searches",
    "subscriptions",
    "accounts",
    "profiles",
    "titles",
)
VIEW_TABLES = {t.name for t in REGISTRY if t.from_views}  # the tables built from views
VIEW_LOOKBACK_DAYS = max(REGISTRY.get(t).lookback_days for t in VIEW_TABLES)
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "long": "BIGINT",
    "int": "INTEGER",
    "double": "DOUBLE",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}
HOURS = "watch_seconds::DOUBLE / 3600"  # transforms._hours, per view row
_VIEWS_PREFIX = "_views_"  # build_table's temp tables of views, one per as-of date


def register_bronze(con: duckdb.DuckDBPyConnection, files_by_source: dict[str, list[str]]) -> None:
    """One view per bronze source over its Parquet files; `event_date` from the folder names."""
    con.execute("SET TimeZone = 'UTC'")  # as the Spark session: dates of timestamps in UTC
    for source in BRONZE:
        files = [re.sub(r"^file:(//)?", "", f) for f in files_by_source.get(source, [])]
        if not files:
            raise ValueError(f"bronze {source}: no Parquet files given")
        listed = ", ".join(_text(f) for f in files)
        con.execute(
            f"CREATE OR REPLACE VIEW {source} AS SELECT * FROM read_parquet([{listed}], "
            "hive_partitioning = true, hive_types = {'event_date': DATE})"
        )
    for name in _tables(con, temporary=True):
        if name.startswith(_VIEWS_PREFIX):
            con.execute(f"DROP TABLE {name}")  # views of the files registered before


def table_sql(table: str, as_of: dt.date, *, views: str | None = None) -> str:
    """The SELECT for one feature table: declared columns, declared types, `as_of_date`.

    `views`: a relation holding `views_sql(as_of)` to reuse; by default it is inlined.
    """
    body = _BODIES[table](as_of)  # KeyError for an unknown table
    shared = f"SELECT * FROM {views}" if views else views_sql(as_of)
    columns = ",\n  ".join(
        f"CAST({c.name} AS {DUCKDB_TYPES[c.dtype]}) AS {c.name}"
        for c in REGISTRY.get(table).columns
    )
    prefix = f"views AS ({shared}),\n" if table in VIEW_TABLES else ""
    return f"WITH {prefix}{body}\nSELECT\n  {columns},\n  {_date(as_of)} AS {AS_OF}\nFROM result"


def build_table(con: duckdb.DuckDBPyConnection, table: str, as_of: dt.date) -> int:
    """CREATE OR REPLACE TABLE <table> AS its SELECT; returns the row count."""
    views = None
    if table in VIEW_TABLES:
        views = f"{_VIEWS_PREFIX}{as_of:%Y%m%d}"
        con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {views} AS {views_sql(as_of)}")
    if table == "artwork_daily" and "profile_daily" not in _tables(con, temporary=False):
        raise ValueError("artwork_daily reads profile_daily: build profile_daily first")
    con.execute(f"CREATE OR REPLACE TABLE {table} AS {table_sql(table, as_of, views=views)}")
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def build_all(
    files_by_source: dict[str, list[str]], as_of: dt.date, *, threads: int, memory: str
) -> dict:
    """Every feature table of ``as_of`` over the bronze files: seconds and rows per table."""
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}; SET memory_limit = '{memory}'")
    register_bronze(con, files_by_source)
    tables = {}
    started = time.perf_counter()
    for table in REGISTRY:
        table_started = time.perf_counter()
        rows = build_table(con, table.name, as_of)
        tables[table.name] = {
            "rows": rows,
            "seconds": round(time.perf_counter() - table_started, 3),
        }
        print(f"duckdb {table.name}: {rows:,} rows, {tables[table.name]['seconds']} s", flush=True)
    con.close()
    return {"seconds": round(time.perf_counter() - started, 2), "tables": tables}


def ratios(spark_build: dict, duck: dict) -> dict:
    """Spark / DuckDB per table: the whole build (compute, validate, write) and compute
    only. ``spark_build``: seconds, and per table rows, seconds and seconds by step."""
    result = {}
    for name, ours in spark_build["tables"].items():
        theirs = duck["tables"][name]["seconds"]
        result[name] = {
            "rows_equal": ours["rows"] == duck["tables"][name]["rows"],
            "build_vs_duckdb": round(ours["seconds"] / theirs, 2),
            "compute_vs_duckdb": round(ours["steps"]["compute"] / theirs, 2),
        }
    compute = sum(t["steps"]["compute"] for t in spark_build["tables"].values())
    result["total"] = {
        "build_vs_duckdb": round(spark_build["seconds"] / duck["seconds"], 2),
        "compute_vs_duckdb": round(compute / duck["seconds"], 2),
    }
    return result


def views_sql(as_of: dt.date) -> str:
    """transforms.views: one row per (profile, account, session, title) in the lookback."""
    # One extra day read, and views are kept by the day they started (see transforms.views).
    return f"""
SELECT profile_id, account_id, session_id, title_id,
  min(region) AS region,
  min(device) AS device,
  arg_min_null(local_hour, event_ts) AS local_hour,
  min(event_ts) AS start_ts,
  max(event_ts) AS last_ts,
  sum(watch_seconds)::BIGINT AS watch_seconds,
  bool_or(event_type = 'complete') AS completed,
  min(event_ts)::DATE AS event_date,
  {_days_ago("min(event_ts)::DATE", as_of)} AS days_ago
FROM viewing
WHERE {_in_window(as_of, VIEW_LOOKBACK_DAYS + 1)}
GROUP BY profile_id, account_id, session_id, title_id
HAVING {_days_ago("min(event_ts)::DATE", as_of)} < {VIEW_LOOKBACK_DAYS}"""


# --- helpers ---------------------------------------------------------------------------


def _tables(con: duckdb.DuckDBPyConnection, *, temporary: bool) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary = ?", [temporary]
    ).fetchall()
    return {name for (name,) in rows}


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _date(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _days_ago(date_expr: str, as_of: dt.date) -> str:
    return f"({_date(as_of)} - {date_expr})"


def _in_window(as_of: dt.date, days: int, column: str = "event_date") -> str:
    first = as_of - dt.timedelta(days=days - 1)
    return f"{column} BETWEEN {_date(first)} AND {_date(as_of)}"


def _latest(source: str, key: str, as_of: dt.date, columns: str) -> str:
    """transforms.latest_version: newest event_ts, then smallest event_id, up to as_of."""
    return f"""SELECT {columns} FROM {source}
  WHERE event_date <= {_date(as_of)}
  QUALIFY row_number() OVER (
    PARTITION BY {key} ORDER BY event_ts DESC NULLS LAST, event_id ASC NULLS FIRST) = 1"""


def _hours_if(condition: str) -> str:
    return f"sum(CASE WHEN {condition} THEN {HOURS} ELSE 0.0 END)"


def _share(part: str, total: str) -> str:
    return f"CASE WHEN {total} > 0 THEN {part} / {total} ELSE 0.0 END"


def _recent_things(keys: str, thing: str, prefix: str) -> str:
    """transforms._recent_things: distinct `thing`s per window, from their latest day."""
    counts = ", ".join(f"count_if(_d < {w}) AS {prefix}_{w}d" for w in WINDOWS)
    return f"""SELECT {keys}, {counts} FROM (
    SELECT {keys}, {thing}, min(days_ago) AS _d FROM v GROUP BY {keys}, {thing})
  GROUP BY {keys}"""


def _zero(columns: list[str]) -> str:
    return ",\n  ".join(f"coalesce({c}, 0) AS {c}" for c in columns)


# --- the tables: CTEs ending in `result` ----------------------------------------------


def _profile_daily(as_of: dt.date) -> str:
    lookback = 28
    total = f"sum({HOURS})"
    genre_hours = {g: _hours_if(f"list_contains(genres, {_text(g)})") for g in GENRES}
    device_hours = {d: _hours_if(f"device = {_text(d)}") for d in DEVICES}
    daypart_hours = {
        p: _hours_if(f"local_hour BETWEEN {a} AND {b}") for p, (a, b) in DAYPARTS.items()
    }
    shares = [
        *[f"{_share(h, total)} AS share_genre_{g}_28d" for g, h in genre_hours.items()],
        *[f"{_share(h, total)} AS share_device_{d}_28d" for d, h in device_hours.items()],
        *[f"{_share(h, total)} AS share_daypart_{p}_28d" for p, h in daypart_hours.items()],
    ]
    counts = [
        *[f"sum_watch_hours_{w}d" for w in WINDOWS],
        "_hours_prior_21d",
        *[f"count_sessions_{w}d" for w in WINDOWS],
        *[f"count_distinct_titles_{w}d" for w in WINDOWS],
        "count_views_28d",
        *[f"share_genre_{g}_28d" for g in GENRES],
        *[f"share_device_{d}_28d" for d in DEVICES],
        *[f"share_daypart_{p}_28d" for p in DAYPARTS],
        "count_thumbs_up_28d",
        "count_thumbs_down_28d",
        "count_searches_28d",
    ]
    # transforms._segment: greatest (score, name); the score summed in the same order.
    scored = ", ".join(
        "{'score': 0 + "
        + " + ".join(f"share_genre_{g}_28d" for g in genres)
        + f", 'name': {_text(name)}}}"
        for name, genres in SEGMENTS.items()
    )
    hours_by_window = ",\n    ".join(
        f"{_hours_if(f'days_ago < {w}')} AS sum_watch_hours_{w}d" for w in WINDOWS
    )
    share_columns = ",\n    ".join(shares)
    return f"""catalogue AS ({_latest("titles", "title_id", as_of, "title_id, genres")}),
v AS (
  SELECT views.*, catalogue.genres
  FROM views LEFT JOIN catalogue USING (title_id)
  WHERE days_ago < {lookback}),
activity AS (
  SELECT profile_id, account_id,
    {hours_by_window},
    {_hours_if("days_ago >= 7")} AS _hours_prior_21d,
    count(*) AS count_views_28d,
    avg(completed::DOUBLE) AS completion_rate_28d,
    {share_columns},
    max(start_ts) AS last_watch_ts
  FROM v GROUP BY profile_id, account_id),
sessions AS ({_recent_things("profile_id", "session_id", "count_sessions")}),
distinct_titles AS ({_recent_things("profile_id", "title_id", "count_distinct_titles")}),
thumbs AS (
  SELECT profile_id,
    count_if(thumbs = 'up') AS count_thumbs_up_28d,
    count_if(thumbs = 'down') AS count_thumbs_down_28d
  FROM ratings WHERE {_in_window(as_of, lookback)} GROUP BY profile_id),
searched AS (
  SELECT profile_id, count(*) AS count_searches_28d
  FROM searches WHERE {_in_window(as_of, lookback)} GROUP BY profile_id),
known AS ({_latest("profiles", "profile_id", as_of, "profile_id, account_id AS _known_account")}),
filled AS (
  SELECT profile_id,
  coalesce(account_id, _known_account) AS account_id,
  completion_rate_28d,
  last_watch_ts,
  {_zero(counts)}
  FROM known
  FULL JOIN activity USING (profile_id)
  LEFT JOIN sessions USING (profile_id)
  LEFT JOIN distinct_titles USING (profile_id)
  LEFT JOIN thumbs USING (profile_id)
  LEFT JOIN searched USING (profile_id)),
scored AS (SELECT *, greatest({scored}) AS _best FROM filled),
result AS (
  SELECT *,
    CASE WHEN _best.score > 0 THEN _best.name ELSE {_text(UNKNOWN_SEGMENT)} END AS segment,
    {_days_ago("last_watch_ts::DATE", as_of)} AS days_since_last_watch,
    sum_watch_hours_7d / 7 - _hours_prior_21d / 21
      AS trend_watch_hours_per_day_7d_vs_prior_21d
  FROM scored)"""


def _account_daily(as_of: dt.date) -> str:
    lookback = 30
    zeros = [
        "count_payment_failures_30d",
        "count_plan_changes_30d",
        "count_profiles",
        "count_active_profiles_7d",
        "count_active_profiles_28d",
        "sum_watch_hours_7d",
        "sum_watch_hours_28d",
        "_hours_prior_21d",
        "count_sessions_28d",
    ]
    return f"""subs AS (SELECT * FROM subscriptions WHERE event_date <= {_date(as_of)}),
cancelled AS (
  SELECT account_id FROM subs GROUP BY account_id
  HAVING arg_max_null(event_type, event_ts) = 'cancel'),
recent_subs AS (
  SELECT account_id,
    count_if(event_type = 'payment_failure') AS count_payment_failures_30d,
    count_if(event_type = 'plan_change') AS count_plan_changes_30d,
    max(event_ts) AS _last_subscription_ts
  FROM subs WHERE {_in_window(as_of, lookback)} GROUP BY account_id),
state AS ({_latest("accounts", "account_id", as_of, "account_id, region, plan, signup_date")}),
household AS (
  SELECT account_id, count(*) AS count_profiles
  FROM ({_latest("profiles", "profile_id", as_of, "account_id")}) GROUP BY account_id),
v AS (SELECT * FROM views WHERE days_ago < {lookback}),
watched AS (
  SELECT account_id,
    {_hours_if("days_ago < 7")} AS sum_watch_hours_7d,
    {_hours_if("days_ago < 28")} AS sum_watch_hours_28d,
    {_hours_if("days_ago BETWEEN 7 AND 27")} AS _hours_prior_21d,
    max(start_ts) AS _last_watch_ts
  FROM v GROUP BY account_id),
sessions AS (
  SELECT account_id, count(*) AS count_sessions_28d FROM (
    SELECT DISTINCT account_id, profile_id, session_id FROM v WHERE days_ago < 28)
  GROUP BY account_id),
active AS (
  SELECT account_id,
    count_if(_d < 7) AS count_active_profiles_7d,
    count_if(_d < 28) AS count_active_profiles_28d
  FROM (SELECT account_id, profile_id, min(days_ago) AS _d FROM v GROUP BY ALL)
  GROUP BY account_id),
filled AS (
  SELECT account_id, region, plan, signup_date, _last_watch_ts, _last_subscription_ts,
  {_zero(zeros)}
  FROM state
  ANTI JOIN cancelled USING (account_id)
  LEFT JOIN recent_subs USING (account_id)
  LEFT JOIN household USING (account_id)
  LEFT JOIN watched USING (account_id)
  LEFT JOIN sessions USING (account_id)
  LEFT JOIN active USING (account_id)),
result AS (
  SELECT *,
    greatest({_days_ago("signup_date", as_of)}, 0) AS tenure_days,
    sum_watch_hours_7d / 7 - _hours_prior_21d / 21
      AS trend_watch_hours_per_day_7d_vs_prior_21d,
    {_days_ago("_last_watch_ts::DATE", as_of)} AS days_since_last_watch,
    greatest(_last_watch_ts, _last_subscription_ts) AS last_activity_ts
  FROM filled)"""


def _title_daily(as_of: dt.date) -> str:
    lookback = 28
    keys = "title_id, region"
    zeros = [
        *[f"count_views_{w}d" for w in WINDOWS],
        *[f"sum_watch_hours_{w}d" for w in WINDOWS],
        *[f"count_unique_viewers_{w}d" for w in WINDOWS],
    ]
    per_window = ",\n    ".join(
        [f"count_if(days_ago < {w}) AS count_views_{w}d" for w in WINDOWS]
        + [f"{_hours_if(f'days_ago < {w}')} AS sum_watch_hours_{w}d" for w in WINDOWS]
    )
    columns = "title_id, release_date, available_regions"
    return f"""catalogue AS ({_latest("titles", "title_id", as_of, columns)}),
v AS (SELECT * FROM views WHERE days_ago < {lookback}),
audience AS (
  SELECT {keys},
    {per_window},
    avg(completed::DOUBLE) AS completion_rate_28d,
    max(start_ts) AS last_view_ts
  FROM v GROUP BY {keys}),
viewers AS ({_recent_things(keys, "profile_id", "count_unique_viewers")}),
available AS (
  SELECT title_id, unnest(available_regions) AS region,
    {_days_ago("release_date", as_of)} AS days_since_release
  FROM catalogue WHERE release_date <= {_date(as_of)}),
filled AS (
  SELECT {keys}, days_since_release, completion_rate_28d, last_view_ts,
  {_zero(zeros)}
  FROM available
  LEFT JOIN audience USING (title_id, region)
  LEFT JOIN viewers USING (title_id, region)),
result AS (
  SELECT *, rank() OVER (PARTITION BY region ORDER BY count_views_7d DESC NULLS LAST)
    AS rank_popularity_7d
  FROM filled)"""


def _region_title_daily(as_of: dt.date) -> str:
    return f"""result AS (
  SELECT region, title_id,
    count(*) AS count_views,
    sum({HOURS}) AS sum_watch_hours,
    count(DISTINCT profile_id) AS count_unique_viewers,
    max(last_ts) AS last_view_ts
  FROM views WHERE days_ago = 0 GROUP BY region, title_id)"""


def _profile_title_interactions(as_of: dt.date) -> str:
    lookback = 56
    keys = "profile_id, title_id"
    zeros = [
        "count_views",
        "count_completions",
        "count_rewatches",
        "max_watch_fraction",
        "sum_watch_hours",
    ]
    # Unknown or zero runtime: 1 for a completed view, else 0 (transforms._watch_fraction).
    fraction = (
        "CASE WHEN _runtime_seconds > 0 THEN least(watch_seconds / _runtime_seconds, 1.0::DOUBLE)"
        " WHEN completed THEN 1.0::DOUBLE ELSE 0.0::DOUBLE END"
    )
    return f"""runtime AS (
  SELECT title_id, duration_minutes * 60 AS _runtime_seconds
  FROM ({_latest("titles", "title_id", as_of, "title_id, duration_minutes")})),
v AS (
  SELECT views.*, runtime._runtime_seconds,
    -- a rewatch starts after the first completed view of the title
    start_ts > min(CASE WHEN completed THEN start_ts END)
      OVER (PARTITION BY profile_id, title_id) AS _rewatch
  FROM views LEFT JOIN runtime USING (title_id)
  WHERE days_ago < {lookback}),
watched AS (
  SELECT {keys},
    count(*) AS count_views,
    count_if(completed) AS count_completions,
    count_if(_rewatch) AS count_rewatches,
    max({fraction}) AS max_watch_fraction,
    sum({HOURS}) AS sum_watch_hours,
    max(last_ts) AS _last_view_ts
  FROM v GROUP BY {keys}),
rated AS (
  SELECT {keys},
    arg_max_null(thumbs, event_ts) AS _thumbs,
    max(event_ts) AS _last_rating_ts
  FROM ratings WHERE {_in_window(as_of, lookback)} GROUP BY {keys}),
filled AS (
  SELECT {keys}, _last_view_ts, _last_rating_ts,
  {_zero(zeros)},
  CASE _thumbs WHEN 'up' THEN 1 WHEN 'down' THEN -1 ELSE 0 END AS thumbs
  FROM watched FULL JOIN rated USING (profile_id, title_id)),
result AS (
  SELECT *,
    greatest(
      max_watch_fraction + count_completions + 0.5::DOUBLE * count_rewatches
        + 2.0::DOUBLE * (thumbs = 1)::DOUBLE - 3.0::DOUBLE * (thumbs = -1)::DOUBLE,
      0.0::DOUBLE) AS confidence,
    greatest(_last_view_ts, _last_rating_ts) AS last_interaction_ts
  FROM filled)"""


def _artwork_daily(as_of: dt.date) -> str:
    lookback = 28
    return f"""shown AS (
  SELECT title_id, artwork_id, clicked, event_ts,
    coalesce(segment, {_text(UNKNOWN_SEGMENT)}) AS segment,
    event_date = {_date(as_of)} AS _today
  FROM impressions
  LEFT JOIN (SELECT profile_id, segment FROM profile_daily) USING (profile_id)
  WHERE {_in_window(as_of, lookback)}),
result AS (
  SELECT title_id, artwork_id, segment,
    count_if(_today) AS count_impressions_1d,
    count_if(_today AND clicked) AS count_clicks_1d,
    count(*) AS count_impressions_28d,
    count_if(clicked) AS count_clicks_28d,
    max(event_ts) AS last_impression_ts,
    count_if(clicked) / count(*) AS ctr_28d
  FROM shown GROUP BY title_id, artwork_id, segment)"""


_BODIES = {
    "profile_daily": _profile_daily,
    "account_daily": _account_daily,
    "title_daily": _title_daily,
    "region_title_daily": _region_title_daily,
    "profile_title_interactions": _profile_title_interactions,
    "artwork_daily": _artwork_daily,
}

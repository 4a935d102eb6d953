"""Feature transforms: bronze DataFrames in, one feature table's rows out.

Pure functions (no reads, writes or actions) over an explicit as-of date. Event
inputs are first reduced to *views* (one row per profile, session and title), the
one pre-aggregation every table reuses; counts of distinct things per window are
taken from per-thing rows (the most recent day a title or session was seen) rather
than with `countDistinct` per window, which multiplies the rows Spark shuffles.

Windows end on the as-of date inclusive: `days_ago` 0 is the as-of date itself, a
7-day window is `days_ago < 7`.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from feature_store.features.definitions import AS_OF, WRITTEN_AT, FeatureTable
from feature_store.features.tables import UNKNOWN_SEGMENT, WINDOWS
from feature_store.sources import DAYPARTS, DEVICES, GENRES, SEGMENTS

SECONDS_PER_HOUR = 3600.0
VIEW_MARGIN_DAYS = 1  # views last less than a day: see `views`


def _days_ago(as_of: dt.date, date_col: Column) -> Column:
    return F.datediff(F.lit(as_of), date_col)


def in_window(
    df: DataFrame, *, as_of: dt.date, days: int, date_col: str = "event_date"
) -> DataFrame:
    """Rows whose `date_col` lies in (as_of - days, as_of]; prunes Delta partitions."""
    first = as_of - dt.timedelta(days=days - 1)
    return df.filter((F.col(date_col) >= F.lit(first)) & (F.col(date_col) <= F.lit(as_of)))


def latest_version(df: DataFrame, *, key: str, as_of: dt.date) -> DataFrame:
    """The newest record per key among those with event_date <= as_of (a dimension snapshot)."""
    newest_first = Window.partitionBy(key).orderBy(F.col("event_ts").desc(), F.col("event_id"))
    return (
        df.filter(F.col("event_date") <= F.lit(as_of))
        .withColumn("_n", F.row_number().over(newest_first))
        .filter(F.col("_n") == 1)
        .drop("_n")
    )


def views(viewing: DataFrame, *, as_of: dt.date, lookback_days: int) -> DataFrame:
    """One row per (profile, session, title) watched in the window ending on `as_of`.

    Columns: profile_id, account_id, session_id, title_id, region, device,
    local_hour (at the start), start_ts, last_ts, watch_seconds, completed,
    event_date (of the start) and days_ago; clustered by profile (see `with_days_ago`).
    """
    days = window_days(as_of, lookback_days)
    return with_days_ago(views_started_on(viewing, days=days, until=as_of), as_of=as_of)


def window_days(as_of: dt.date, days: int) -> list[dt.date]:
    """The dates of the window of ``days`` days ending on ``as_of``, oldest first."""
    return [as_of - dt.timedelta(days=d) for d in range(days - 1, -1, -1)]


def views_started_on(viewing: DataFrame, *, days, until: dt.date | None = None) -> DataFrame:
    """The views that started on the given days, from the viewing events.

    A view belongs to the day it started. The events of the day before and the day
    after each day are read too, so that a view crossing midnight is seen whole: one
    that started the evening before is left out rather than entering as a shorter view
    starting after midnight, one that runs past midnight keeps its later events.
    With `until`, no event dated after it is read: features as of a date must not see
    the minutes a view ran past that date's midnight.
    """
    days = sorted(set(days))
    margin = dt.timedelta(days=VIEW_MARGIN_DAYS)
    read = sorted({d + k * margin for d in days for k in (-1, 0, 1)})
    if until is not None:
        read = [d for d in read if d <= until]
    events = viewing.filter(F.col("event_date").isin(read)).select(
        "profile_id",
        "account_id",
        "session_id",
        "title_id",
        "region",
        "device",
        "local_hour",
        "event_ts",
        "event_type",
        "watch_seconds",
    )
    # Grouped without repartitioning first: the events of one view sit together in
    # the files, so Spark combines them before the shuffle (about 5 events per view).
    out = events.groupBy("profile_id", "account_id", "session_id", "title_id").agg(
        F.min("region").alias("region"),
        F.min("device").alias("device"),
        F.min_by("local_hour", "event_ts").alias("local_hour"),
        F.min("event_ts").alias("start_ts"),
        F.max("event_ts").alias("last_ts"),
        F.sum("watch_seconds").alias("watch_seconds"),
        F.max(F.col("event_type") == "complete").alias("completed"),
    )
    return out.filter(F.to_date("start_ts").isin(days))


def with_days_ago(view_rows: DataFrame, *, as_of: dt.date) -> DataFrame:
    """Views with event_date (of the start) and days_ago, clustered by profile: every
    later aggregation by profile then reuses this one shuffle."""
    return (
        view_rows.repartition("profile_id")
        .withColumn("event_date", F.to_date("start_ts"))
        .withColumn("days_ago", _days_ago(as_of, F.col("event_date")))
    )


def catalogue(titles: DataFrame, *, as_of: dt.date) -> DataFrame:
    """The catalogue as known at the end of the as-of date: released or not."""
    return latest_version(titles, key="title_id", as_of=as_of).select(
        "title_id",
        "kind",
        "genres",
        "cast",
        "release_date",
        "duration_minutes",
        "available_regions",
        "artwork",
    )


def _hours(condition: Column | None = None) -> Column:
    hours = F.col("watch_seconds") / SECONDS_PER_HOUR
    return F.sum(hours if condition is None else F.when(condition, hours).otherwise(0.0))


def _count_if(condition: Column) -> Column:
    return F.count(F.when(condition, F.lit(1)))


def _share(part: Column, total: Column) -> Column:
    return F.when(total > 0, part / total).otherwise(F.lit(0.0))


def _recent_things(view_rows: DataFrame, keys: list[str], thing: str, prefix: str) -> DataFrame:
    """Per `keys`: how many distinct `thing`s were seen in each window."""
    per_thing = view_rows.groupBy(*keys, thing).agg(F.min("days_ago").alias("_d"))
    return per_thing.groupBy(*keys).agg(
        *[_count_if(F.col("_d") < w).alias(f"{prefix}_{w}d") for w in WINDOWS]
    )


def profile_daily(
    view_rows: DataFrame,
    *,
    profiles: DataFrame,
    titles: DataFrame,
    ratings: DataFrame,
    searches: DataFrame,
    as_of: dt.date,
) -> DataFrame:
    """One row per profile known by the as-of date (inactive profiles get zeros)."""
    lookback = 28
    v = view_rows.filter(F.col("days_ago") < lookback).join(
        F.broadcast(catalogue(titles, as_of=as_of).select("title_id", "genres")), "title_id", "left"
    )
    total = _hours()
    activity = v.groupBy("profile_id", "account_id").agg(
        *[_hours(F.col("days_ago") < w).alias(f"sum_watch_hours_{w}d") for w in WINDOWS],
        _hours(F.col("days_ago") >= 7).alias("_hours_prior_21d"),
        F.count(F.lit(1)).alias("count_views_28d"),
        F.avg(F.col("completed").cast("double")).alias("completion_rate_28d"),
        *[
            _share(_hours(F.array_contains("genres", g)), total).alias(f"share_genre_{g}_28d")
            for g in GENRES
        ],
        *[
            _share(_hours(F.col("device") == d), total).alias(f"share_device_{d}_28d")
            for d in DEVICES
        ],
        *[
            _share(_hours(F.col("local_hour").between(a, b)), total).alias(f"share_daypart_{p}_28d")
            for p, (a, b) in DAYPARTS.items()
        ],
        F.max("start_ts").alias("last_watch_ts"),
    )
    sessions = _recent_things(v, ["profile_id"], "session_id", "count_sessions")
    distinct_titles = _recent_things(v, ["profile_id"], "title_id", "count_distinct_titles")

    thumbs = (
        in_window(ratings, as_of=as_of, days=lookback)
        .groupBy("profile_id")
        .agg(
            _count_if(F.col("thumbs") == "up").alias("count_thumbs_up_28d"),
            _count_if(F.col("thumbs") == "down").alias("count_thumbs_down_28d"),
        )
    )
    searched = (
        in_window(searches, as_of=as_of, days=lookback)
        .groupBy("profile_id")
        .agg(F.count(F.lit(1)).alias("count_searches_28d"))
    )
    known = latest_version(profiles, key="profile_id", as_of=as_of).select(
        "profile_id", F.col("account_id").alias("_known_account")
    )
    joined = (
        known.join(activity, "profile_id", "full")
        .join(sessions, "profile_id", "left")
        .join(distinct_titles, "profile_id", "left")
        .join(thumbs, "profile_id", "left")
        .join(searched, "profile_id", "left")
    )
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
    filled = joined.fillna(0, subset=counts).withColumn(
        "account_id", F.coalesce("account_id", "_known_account")
    )
    return filled.select(
        "*",
        _segment().alias("segment"),
        _days_ago(as_of, F.to_date("last_watch_ts")).alias("days_since_last_watch"),
        (F.col("sum_watch_hours_7d") / 7 - F.col("_hours_prior_21d") / 21).alias(
            "trend_watch_hours_per_day_7d_vs_prior_21d"
        ),
    ).drop("_known_account", "_hours_prior_21d")


def _segment() -> Column:
    """The segment whose genres take the largest share of watch hours ('unknown' if none)."""
    scored = [
        F.struct(
            sum(F.col(f"share_genre_{g}_28d") for g in genres).alias("score"),
            F.lit(name).alias("name"),
        )
        for name, genres in SEGMENTS.items()
    ]
    best = F.greatest(*scored)
    return F.when(best["score"] > 0, best["name"]).otherwise(F.lit(UNKNOWN_SEGMENT))


def account_daily(
    view_rows: DataFrame,
    *,
    accounts: DataFrame,
    profiles: DataFrame,
    subscriptions: DataFrame,
    as_of: dt.date,
) -> DataFrame:
    """One row per account signed up and not cancelled by the end of the as-of date."""
    lookback = 30
    subs = subscriptions.filter(F.col("event_date") <= F.lit(as_of))
    cancelled = (
        subs.groupBy("account_id")
        .agg(F.max_by("event_type", "event_ts").alias("_last_event"))
        .filter(F.col("_last_event") == "cancel")
        .select("account_id")
    )
    recent_subs = (
        in_window(subs, as_of=as_of, days=lookback)
        .groupBy("account_id")
        .agg(
            _count_if(F.col("event_type") == "payment_failure").alias("count_payment_failures_30d"),
            _count_if(F.col("event_type") == "plan_change").alias("count_plan_changes_30d"),
            F.max("event_ts").alias("_last_subscription_ts"),
        )
    )
    state = latest_version(accounts, key="account_id", as_of=as_of).select(
        "account_id", "region", "plan", "signup_date"
    )
    household = (
        latest_version(profiles, key="profile_id", as_of=as_of)
        .groupBy("account_id")
        .agg(F.count(F.lit(1)).alias("count_profiles"))
    )
    v = view_rows.filter(F.col("days_ago") < lookback)
    watched = v.groupBy("account_id").agg(
        _hours(F.col("days_ago") < 7).alias("sum_watch_hours_7d"),
        _hours(F.col("days_ago") < 28).alias("sum_watch_hours_28d"),
        _hours(F.col("days_ago").between(7, 27)).alias("_hours_prior_21d"),
        F.max("start_ts").alias("_last_watch_ts"),
    )
    sessions = (
        v.filter(F.col("days_ago") < 28)
        .groupBy("account_id", "profile_id", "session_id")
        .agg(F.lit(1).alias("_one"))
        .groupBy("account_id")
        .agg(F.count(F.lit(1)).alias("count_sessions_28d"))
    )
    active = (
        v.groupBy("account_id", "profile_id")
        .agg(F.min("days_ago").alias("_d"))
        .groupBy("account_id")
        .agg(
            _count_if(F.col("_d") < 7).alias("count_active_profiles_7d"),
            _count_if(F.col("_d") < 28).alias("count_active_profiles_28d"),
        )
    )
    joined = (
        state.join(cancelled, "account_id", "left_anti")
        .join(recent_subs, "account_id", "left")
        .join(household, "account_id", "left")
        .join(watched, "account_id", "left")
        .join(sessions, "account_id", "left")
        .join(active, "account_id", "left")
    )
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
    return joined.fillna(0, subset=zeros).select(
        "account_id",
        "region",
        "plan",
        F.greatest(_days_ago(as_of, F.col("signup_date")), F.lit(0)).alias("tenure_days"),
        "count_payment_failures_30d",
        "count_plan_changes_30d",
        "count_profiles",
        "count_active_profiles_7d",
        "count_active_profiles_28d",
        "sum_watch_hours_7d",
        "sum_watch_hours_28d",
        "count_sessions_28d",
        (F.col("sum_watch_hours_7d") / 7 - F.col("_hours_prior_21d") / 21).alias(
            "trend_watch_hours_per_day_7d_vs_prior_21d"
        ),
        _days_ago(as_of, F.to_date("_last_watch_ts")).alias("days_since_last_watch"),
        F.greatest("_last_watch_ts", "_last_subscription_ts").alias("last_activity_ts"),
    )


def title_daily(view_rows: DataFrame, *, titles: DataFrame, as_of: dt.date) -> DataFrame:
    """One row per released title and region where it is available."""
    lookback = 28
    v = view_rows.filter(F.col("days_ago") < lookback)
    keys = ["title_id", "region"]
    audience = v.groupBy(*keys).agg(
        *[_count_if(F.col("days_ago") < w).alias(f"count_views_{w}d") for w in WINDOWS],
        *[_hours(F.col("days_ago") < w).alias(f"sum_watch_hours_{w}d") for w in WINDOWS],
        F.avg(F.col("completed").cast("double")).alias("completion_rate_28d"),
        F.max("start_ts").alias("last_view_ts"),
    )
    viewers = _recent_things(v, keys, "profile_id", "count_unique_viewers")
    available = (
        catalogue(titles, as_of=as_of)
        .filter(F.col("release_date") <= F.lit(as_of))
        .select(
            "title_id",
            F.explode("available_regions").alias("region"),
            _days_ago(as_of, F.col("release_date")).alias("days_since_release"),
        )
    )
    zeros = [
        *[f"count_views_{w}d" for w in WINDOWS],
        *[f"sum_watch_hours_{w}d" for w in WINDOWS],
        *[f"count_unique_viewers_{w}d" for w in WINDOWS],
    ]
    joined = (
        available.join(audience, keys, "left").join(viewers, keys, "left").fillna(0, subset=zeros)
    )
    by_region = Window.partitionBy("region").orderBy(F.col("count_views_7d").desc())
    return joined.withColumn("rank_popularity_7d", F.rank().over(by_region))


def region_title_daily(view_rows: DataFrame, *, as_of: dt.date) -> DataFrame:
    """Views, hours and viewers per region and title started on the as-of date."""
    return (
        view_rows.filter(F.col("days_ago") == 0)
        .groupBy("region", "title_id")
        .agg(
            F.count(F.lit(1)).alias("count_views"),
            _hours().alias("sum_watch_hours"),
            F.count_distinct("profile_id").alias("count_unique_viewers"),
            F.max("last_ts").alias("last_view_ts"),
        )
    )


def _watch_fraction() -> Column:
    """Share of the runtime one view watched, at most 1. A title whose runtime is not
    in the catalogue (or is zero) counts 1 when the view completed and 0 otherwise."""
    runtime = F.col("_runtime_seconds")
    return (
        F.when(runtime > 0, F.least(F.col("watch_seconds") / runtime, F.lit(1.0)))
        .when(F.col("completed"), F.lit(1.0))
        .otherwise(F.lit(0.0))
    )


def profile_title_interactions(
    view_rows: DataFrame, *, titles: DataFrame, ratings: DataFrame, as_of: dt.date
) -> DataFrame:
    """Implicit feedback per profile and title over the lookback (56 days)."""
    lookback = 56
    runtime = catalogue(titles, as_of=as_of).select(
        "title_id", (F.col("duration_minutes") * 60).alias("_runtime_seconds")
    )
    v = view_rows.filter(F.col("days_ago") < lookback).join(
        F.broadcast(runtime), "title_id", "left"
    )
    # A rewatch is a view that starts after the first completed view of that title.
    pair = Window.partitionBy("profile_id", "title_id")
    first_completion = F.min(F.when(F.col("completed"), F.col("start_ts"))).over(pair)
    v = v.withColumn("_rewatch", F.col("start_ts") > first_completion)
    watched = v.groupBy("profile_id", "title_id").agg(
        F.count(F.lit(1)).alias("count_views"),
        _count_if(F.col("completed")).alias("count_completions"),
        _count_if(F.col("_rewatch")).alias("count_rewatches"),
        F.max(_watch_fraction()).alias("max_watch_fraction"),
        _hours().alias("sum_watch_hours"),
        F.max("last_ts").alias("_last_view_ts"),
    )
    rated = (
        in_window(ratings, as_of=as_of, days=lookback)
        .groupBy("profile_id", "title_id")
        .agg(
            F.max_by("thumbs", "event_ts").alias("_thumbs"),
            F.max("event_ts").alias("_last_rating_ts"),
        )
    )
    joined = watched.join(rated, ["profile_id", "title_id"], "full")
    thumbs = F.when(F.col("_thumbs") == "up", 1).when(F.col("_thumbs") == "down", -1).otherwise(0)
    filled = joined.fillna(
        0,
        subset=[
            "count_views",
            "count_completions",
            "count_rewatches",
            "max_watch_fraction",
            "sum_watch_hours",
        ],
    ).withColumn("thumbs", thumbs)
    confidence = (
        F.col("max_watch_fraction")
        + F.col("count_completions")
        + 0.5 * F.col("count_rewatches")
        + 2.0 * (F.col("thumbs") == 1).cast("double")
        - 3.0 * (F.col("thumbs") == -1).cast("double")
    )
    return filled.select(
        "profile_id",
        "title_id",
        "count_views",
        "count_completions",
        "count_rewatches",
        "max_watch_fraction",
        "sum_watch_hours",
        "thumbs",
        F.greatest(confidence, F.lit(0.0)).alias("confidence"),
        F.greatest("_last_view_ts", "_last_rating_ts").alias("last_interaction_ts"),
    )


def artwork_daily(
    impressions: DataFrame,
    *,
    profile_segments: DataFrame,
    as_of: dt.date,
    broadcast_segments: bool = False,
) -> DataFrame:
    """Impressions and clicks per title, artwork and the viewer's segment (as of the date).

    `profile_segments`: profile_id and segment (from profile_daily of the same date).
    `broadcast_segments`: look the segments up in a copy held by every task, so the
    impressions are aggregated where they are read instead of shuffled to the join.
    """
    lookback = 28
    segments = profile_segments.select("profile_id", "segment")
    shown = (
        in_window(impressions, as_of=as_of, days=lookback)
        .select("profile_id", "title_id", "artwork_id", "clicked", "event_ts", "event_date")
        .join(F.broadcast(segments) if broadcast_segments else segments, "profile_id", "left")
        .withColumn("segment", F.coalesce("segment", F.lit(UNKNOWN_SEGMENT)))
        .withColumn("_today", F.col("event_date") == F.lit(as_of))
    )
    return (
        shown.groupBy("title_id", "artwork_id", "segment")
        .agg(
            _count_if(F.col("_today")).alias("count_impressions_1d"),
            _count_if(F.col("_today") & F.col("clicked")).alias("count_clicks_1d"),
            F.count(F.lit(1)).alias("count_impressions_28d"),
            _count_if(F.col("clicked")).alias("count_clicks_28d"),
            F.max("event_ts").alias("last_impression_ts"),
        )
        .withColumn("ctr_28d", F.col("count_clicks_28d") / F.col("count_impressions_28d"))
    )


def conform(
    frame: DataFrame, table: FeatureTable, *, as_of: dt.date, written_at: dt.datetime
) -> DataFrame:
    """Exactly the declared columns, in the declared order and types, plus the stamps."""
    return frame.select(
        *[F.col(c.name).cast(c.spark_type).alias(c.name) for c in table.columns],
        F.lit(as_of).alias(AS_OF),
        F.lit(written_at).cast("timestamp").alias(WRITTEN_AT),
    )

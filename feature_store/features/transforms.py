"""Feature transforms: bronze DataFrames in, one feature table's rows out, for a set of as-of dates.

Pure functions (no reads, writes or actions); every row they return carries its
`as_of_date`. A range of dates is one Spark job, not a loop: each input row is tagged with
every as-of date whose window holds it (`tag_as_of`), and every groupBy, window and join is
keyed by `as_of_date` as well. Windows end on the as-of date inclusive: `days_ago` 0 is the
as-of date itself, a 7-day window is `days_ago < 7`. Event inputs are first reduced to
*views* (`complete_views`, `cut_views`). How the rows are kept few: docs/feature-store.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from feature_store.features.definitions import (
    AS_OF,
    UNKNOWN_SEGMENT,
    WINDOWS,
    WRITTEN_AT,
    FeatureTable,
)
from feature_store.sources import DAYPARTS, DEVICES, GENRES, SEGMENTS

SECONDS_PER_HOUR = 3600.0
VIEW_MARGIN_DAYS = 1  # views last less than a day: see `complete_views`
# True for a view as features dated on its start day see it: cut at that day's midnight.
CUT = "cut_at_midnight"
# who watched what, where and when: the keys of a view and of its events
_VIEW_KEYS = (
    "profile_id",
    "account_id",
    "session_id",
    "title_id",
    "region",
    "device",
    "local_hour",
)
VIEW_COLUMNS = (
    *_VIEW_KEYS,
    "start_ts",
    "last_ts",
    "watch_seconds",
    "completed",
    "event_date",  # the day the view started
    CUT,
)
_EVENT_COLUMNS = (
    *_VIEW_KEYS,
    "event_ts",
    "event_type",
    "watch_seconds",
)

# ----------------------------------------------------------------------- as-of dates


def as_of_frame(spark: SparkSession, as_of_dates: Sequence[dt.date]) -> DataFrame:
    """The as-of dates as a one-column frame, small enough to be sent to every task."""
    dates = sorted(set(as_of_dates))
    if not dates:
        raise ValueError("no as-of dates given")
    return spark.createDataFrame([(d,) for d in dates], f"{AS_OF} date")


def tag_as_of(
    df: DataFrame,
    *,
    as_of_dates: Sequence[dt.date],
    lookback_days: int,
    date_col: str = "event_date",
    also: Callable[[Column], Column] | None = None,
) -> DataFrame:
    """Each row once per as-of date whose window (as_of - lookback, as_of] holds its
    `date_col`, with `as_of_date` and `days_ago`. `also(days_ago)`: a further condition
    on the pair. Only the partitions some window needs are read."""
    first = min(as_of_dates) - dt.timedelta(days=lookback_days - 1)
    pruned = df.filter(F.col(date_col).between(F.lit(first), F.lit(max(as_of_dates))))
    dates = as_of_frame(df.sparkSession, as_of_dates).withColumnRenamed(AS_OF, "_as_of")
    days_ago = F.datediff(F.col("_as_of"), F.col(date_col))
    condition = (days_ago >= 0) & (days_ago < lookback_days)
    if also is not None:
        condition = condition & also(days_ago)
    return (
        pruned.join(F.broadcast(dates), condition)
        .withColumn("days_ago", days_ago)
        .withColumnRenamed("_as_of", AS_OF)
    )


def latest_versions(df: DataFrame, *, key: str, as_of_dates: Sequence[dt.date]) -> DataFrame:
    """Per as-of date, the newest record per key among those with event_date <= as_of (a
    dimension snapshot per date), with `as_of_date`."""
    newest_first = Window.partitionBy(key, AS_OF).orderBy(
        F.col("event_ts").desc(), F.col("event_id")
    )
    return (
        _up_to_as_of(df, as_of_dates)
        .withColumn("_n", F.row_number().over(newest_first))
        .filter(F.col("_n") == 1)
        .drop("_n")
    )


def latest_version(df: DataFrame, *, key: str, as_of: dt.date) -> DataFrame:
    """The newest record per key among those with event_date <= as_of (one snapshot)."""
    return latest_versions(df, key=key, as_of_dates=[as_of]).drop(AS_OF)


def _up_to_as_of(df: DataFrame, as_of_dates: Sequence[dt.date]) -> DataFrame:
    """Each row once per as-of date on or after its event_date, with `as_of_date`."""
    dates = as_of_frame(df.sparkSession, as_of_dates).withColumnRenamed(AS_OF, "_as_of")
    return (
        df.filter(F.col("event_date") <= F.lit(max(as_of_dates)))
        .join(F.broadcast(dates), F.col("event_date") <= F.col("_as_of"))
        .withColumnRenamed("_as_of", AS_OF)
    )


def catalogues(titles: DataFrame, *, as_of_dates: Sequence[dt.date]) -> DataFrame:
    """The catalogue as known at the end of each as-of date: released or not."""
    return latest_versions(titles, key="title_id", as_of_dates=as_of_dates).select(
        "title_id",
        AS_OF,
        "kind",
        "genres",
        "cast",
        "release_date",
        "duration_minutes",
        "available_regions",
        "artwork",
    )


def catalogue(titles: DataFrame, *, as_of: dt.date) -> DataFrame:
    """The catalogue as known at the end of the as-of date: released or not."""
    return catalogues(titles, as_of_dates=[as_of]).drop(AS_OF)


# ------------------------------------------------------------------------------ views


def complete_views(viewing: DataFrame, *, days: Sequence[dt.date]) -> DataFrame:
    """The views that started on `days`, each seen whole (`VIEW_COLUMNS`, not cut).

    A view belongs to the day it started. The events of the day before and the day
    after each day are read too, so that a view crossing midnight is seen whole: one
    that started the evening before is left out rather than entering as a shorter view
    starting after midnight, one that runs past midnight keeps its later events.
    """
    days = sorted(set(days))
    margin = dt.timedelta(days=VIEW_MARGIN_DAYS)
    read = sorted({d + k * margin for d in days for k in (-1, 0, 1)})
    events = viewing.filter(F.col("event_date").isin(read)).select(*_EVENT_COLUMNS)
    started = F.to_date("start_ts")
    return (
        _views_of(events)
        .filter(started.isin(days))
        .withColumn("event_date", started)
        .withColumn(CUT, F.lit(False))
        .select(*VIEW_COLUMNS)
    )


def cut_views(viewing: DataFrame, *, as_of_dates: Sequence[dt.date]) -> DataFrame:
    """For each as-of date, the views started on it as features dated that day see them:
    made from its events and the day before's only, since what a view did after the
    as-of date's midnight is that date's future. All dates in one job: each event is
    tagged with the days it can be cut at, its own and the next."""
    dates = sorted(set(as_of_dates))
    margin = dt.timedelta(days=VIEW_MARGIN_DAYS)
    read = sorted({d - k * margin for d in dates for k in (0, 1)})
    cut_days = F.explode(F.array(F.col("event_date"), F.date_add("event_date", VIEW_MARGIN_DAYS)))
    events = (
        viewing.filter(F.col("event_date").isin(read))
        .select(*_EVENT_COLUMNS, cut_days.alias("_cut_day"))
        .filter(F.col("_cut_day").isin(dates))
    )
    return (
        _views_of(events, "_cut_day")
        .filter(F.to_date("start_ts") == F.col("_cut_day"))
        .withColumnRenamed("_cut_day", "event_date")
        .withColumn(CUT, F.lit(True))
        .select(*VIEW_COLUMNS)
    )


def _views_of(events: DataFrame, *extra_keys: str) -> DataFrame:
    # Grouped without repartitioning first: the events of one view sit together in
    # the files, so Spark combines them before the shuffle (about 5 events per view).
    return events.groupBy("profile_id", "account_id", "session_id", "title_id", *extra_keys).agg(
        F.min("region").alias("region"),
        F.min("device").alias("device"),
        F.min_by("local_hour", "event_ts").alias("local_hour"),
        F.min("event_ts").alias("start_ts"),
        F.max("event_ts").alias("last_ts"),
        F.sum("watch_seconds").alias("watch_seconds"),
        F.max(F.col("event_type") == "complete").alias("completed"),
    )


def complete_view_days(as_of_dates: Sequence[dt.date], lookback_days: int) -> list[dt.date]:
    """The days whose complete views the windows of the as-of dates hold: every window
    day but the as-of date itself, whose views are cut at its midnight."""
    return sorted(
        {d - dt.timedelta(days=k) for d in set(as_of_dates) for k in range(1, lookback_days)}
    )


def range_views(
    viewing: DataFrame, *, as_of_dates: Sequence[dt.date], lookback_days: int
) -> DataFrame:
    """Every view the windows of the as-of dates hold, straight from the viewing events:
    the complete views of the earlier days, the cut views of the as-of dates."""
    cut = cut_views(viewing, as_of_dates=as_of_dates)
    days = complete_view_days(as_of_dates, lookback_days)
    return complete_views(viewing, days=days).unionByName(cut) if days else cut


def tag_views(views: DataFrame, *, as_of_dates: Sequence[dt.date], lookback_days: int) -> DataFrame:
    """Views (or rows summed per view day) tagged with the as-of dates that see them: a
    view cut at midnight by its own day's date only, a complete view by later dates."""
    return tag_as_of(
        views,
        as_of_dates=as_of_dates,
        lookback_days=lookback_days,
        also=lambda days_ago: (days_ago == 0) == F.col(CUT),
    )


def views(viewing: DataFrame, *, as_of: dt.date, lookback_days: int) -> DataFrame:
    """One row per (profile, session, title) watched in the window ending on `as_of`, as
    features of that date see it: `VIEW_COLUMNS` with `as_of_date` and `days_ago`."""
    return tag_views(
        range_views(viewing, as_of_dates=[as_of], lookback_days=lookback_days),
        as_of_dates=[as_of],
        lookback_days=lookback_days,
    )


# ---------------------------------------------------------------------------- helpers


def _days_since(date_col: Column) -> Column:
    return F.datediff(F.col(AS_OF), date_col)


def _hours(condition: Column | None = None) -> Column:
    seconds = F.col("watch_seconds")
    picked = seconds if condition is None else F.when(condition, seconds).otherwise(0)
    return F.sum(picked) / SECONDS_PER_HOUR


def _count_if(condition: Column) -> Column:
    return F.count(F.when(condition, F.lit(1)))


def _sum_if(condition: Column, column: str) -> Column:
    return F.sum(F.when(condition, F.col(column)).otherwise(0))


def _share(part: Column, total: Column) -> Column:
    return F.when(total > 0, part / total).otherwise(F.lit(0.0))


def _recent_things(rows: DataFrame, keys: list[str], thing: str, prefix: str) -> DataFrame:
    """Per `keys`: how many distinct `thing`s were seen in each window."""
    per_thing = rows.groupBy(*keys, thing).agg(F.min("days_ago").alias("_d"))
    return per_thing.groupBy(*keys).agg(
        *[_count_if(F.col("_d") < w).alias(f"{prefix}_{w}d") for w in WINDOWS]
    )


def _zero_when_absent(joined: DataFrame, *, rates: Sequence[str] = ()) -> DataFrame:
    """Keys an outer join found no events for: their counts, sums and shares are 0, while
    ``rates`` (nothing to divide by) stay null. Non-numeric columns are left as they are."""
    return joined.fillna(0, subset=[c for c in joined.columns if c not in rates])


# ---------------------------------------------------------------------- profile_daily


def profile_daily(
    views: DataFrame,
    *,
    profiles: DataFrame,
    titles: DataFrame,
    ratings: DataFrame,
    searches: DataFrame,
    as_of_dates: Sequence[dt.date],
) -> DataFrame:
    """One row per profile known by each as-of date (inactive profiles get zeros)."""
    lookback = 28
    keys = ["profile_id", AS_OF]
    genres = catalogues(titles, as_of_dates=as_of_dates).select("title_id", AS_OF, "genres")
    v = tag_views(views, as_of_dates=as_of_dates, lookback_days=lookback).join(
        F.broadcast(genres), ["title_id", AS_OF], "left"
    )
    thumbs = (
        tag_as_of(ratings, as_of_dates=as_of_dates, lookback_days=lookback)
        .groupBy(*keys)
        .agg(
            _count_if(F.col("thumbs") == "up").alias("count_thumbs_up_28d"),
            _count_if(F.col("thumbs") == "down").alias("count_thumbs_down_28d"),
        )
    )
    searched = (
        tag_as_of(searches, as_of_dates=as_of_dates, lookback_days=lookback)
        .groupBy(*keys)
        .agg(F.count(F.lit(1)).alias("count_searches_28d"))
    )
    known = latest_versions(profiles, key="profile_id", as_of_dates=as_of_dates).select(
        *keys, F.col("account_id").alias("_known_account")
    )
    joined = (
        known.join(_profile_activity(v), keys, "full")
        .join(_recent_things(v, keys, "session_id", "count_sessions"), keys, "left")
        .join(_recent_things(v, keys, "title_id", "count_distinct_titles"), keys, "left")
        .join(thumbs, keys, "left")
        .join(searched, keys, "left")
    )
    filled = _zero_when_absent(joined, rates=("completion_rate_28d",)).withColumn(
        "account_id", F.coalesce("account_id", "_known_account")
    )
    return filled.select(
        "*",
        _segment().alias("segment"),
        _days_since(F.to_date("last_watch_ts")).alias("days_since_last_watch"),
        (F.col("sum_watch_hours_7d") / 7 - F.col("_hours_prior_21d") / 21).alias(
            "trend_watch_hours_per_day_7d_vs_prior_21d"
        ),
    ).drop("_known_account", "_hours_prior_21d")


def _profile_activity(v: DataFrame) -> DataFrame:
    """Watch time by window, genre, device and daypart per profile and as-of date."""
    total = _hours()
    return v.groupBy("profile_id", "account_id", AS_OF).agg(
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


# ---------------------------------------------------------------------- account_daily


def account_daily(
    views: DataFrame,
    *,
    accounts: DataFrame,
    profiles: DataFrame,
    subscriptions: DataFrame,
    as_of_dates: Sequence[dt.date],
) -> DataFrame:
    """One row per account signed up and not cancelled by the end of each as-of date."""
    lookback = 30
    keys = ["account_id", AS_OF]
    cancelled = (
        _up_to_as_of(subscriptions, as_of_dates)
        .groupBy(*keys)
        .agg(F.max_by("event_type", "event_ts").alias("_last_event"))
        .filter(F.col("_last_event") == "cancel")
        .select(*keys)
    )
    recent_subs = (
        tag_as_of(subscriptions, as_of_dates=as_of_dates, lookback_days=lookback)
        .groupBy(*keys)
        .agg(
            _count_if(F.col("event_type") == "payment_failure").alias("count_payment_failures_30d"),
            _count_if(F.col("event_type") == "plan_change").alias("count_plan_changes_30d"),
            F.max("event_ts").alias("_last_subscription_ts"),
        )
    )
    state = latest_versions(accounts, key="account_id", as_of_dates=as_of_dates).select(
        *keys, "region", "plan", "signup_date"
    )
    household = (
        latest_versions(profiles, key="profile_id", as_of_dates=as_of_dates)
        .groupBy(*keys)
        .agg(F.count(F.lit(1)).alias("count_profiles"))
    )
    v = tag_views(views, as_of_dates=as_of_dates, lookback_days=lookback)
    joined = (
        state.join(cancelled, keys, "left_anti")
        .join(recent_subs, keys, "left")
        .join(household, keys, "left")
        .join(_account_viewing(v), keys, "left")
    )
    internal = ("signup_date", "_hours_prior_21d", "_last_watch_ts", "_last_subscription_ts")
    return (
        _zero_when_absent(joined)
        .select(
            "*",
            F.greatest(_days_since(F.col("signup_date")), F.lit(0)).alias("tenure_days"),
            (F.col("sum_watch_hours_7d") / 7 - F.col("_hours_prior_21d") / 21).alias(
                "trend_watch_hours_per_day_7d_vs_prior_21d"
            ),
            _days_since(F.to_date("_last_watch_ts")).alias("days_since_last_watch"),
            F.greatest("_last_watch_ts", "_last_subscription_ts").alias("last_activity_ts"),
        )
        .drop(*internal)
    )


def _account_viewing(v: DataFrame) -> DataFrame:
    """Watch time, sessions and active profiles per account and as-of date."""
    keys = ["account_id", AS_OF]
    watched = v.groupBy(*keys).agg(
        _hours(F.col("days_ago") < 7).alias("sum_watch_hours_7d"),
        _hours(F.col("days_ago") < 28).alias("sum_watch_hours_28d"),
        _hours(F.col("days_ago").between(7, 27)).alias("_hours_prior_21d"),
        F.max("start_ts").alias("_last_watch_ts"),
    )
    sessions = (
        v.filter(F.col("days_ago") < 28)
        .groupBy(*keys, "profile_id", "session_id")
        .agg(F.lit(1).alias("_one"))
        .groupBy(*keys)
        .agg(F.count(F.lit(1)).alias("count_sessions_28d"))
    )
    active = (
        v.groupBy(*keys, "profile_id")
        .agg(F.min("days_ago").alias("_d"))
        .groupBy(*keys)
        .agg(
            _count_if(F.col("_d") < 7).alias("count_active_profiles_7d"),
            _count_if(F.col("_d") < 28).alias("count_active_profiles_28d"),
        )
    )
    return watched.join(sessions, keys, "left").join(active, keys, "left")


# ------------------------------------------------------------------ title tables


def title_daily(
    views: DataFrame, *, titles: DataFrame, as_of_dates: Sequence[dt.date]
) -> DataFrame:
    """One row per released title and region where it is available, per as-of date."""
    lookback = 28
    keys = ["title_id", "region", AS_OF]
    # Summed per title, region and view day first: few rows to repeat per as-of date.
    per_day = views.groupBy("title_id", "region", "event_date", CUT).agg(
        F.count(F.lit(1)).alias("_views"),
        F.sum("watch_seconds").alias("watch_seconds"),
        _count_if(F.col("completed")).alias("_completions"),
        F.count("completed").alias("_known_completions"),  # avg's denominator: not null
        F.max("start_ts").alias("_last_start"),
    )
    audience = (
        tag_views(per_day, as_of_dates=as_of_dates, lookback_days=lookback)
        .groupBy(*keys)
        .agg(
            *[_sum_if(F.col("days_ago") < w, "_views").alias(f"count_views_{w}d") for w in WINDOWS],
            *[_hours(F.col("days_ago") < w).alias(f"sum_watch_hours_{w}d") for w in WINDOWS],
            F.try_divide(F.sum("_completions"), F.sum("_known_completions")).alias(
                "completion_rate_28d"
            ),
            F.max("_last_start").alias("last_view_ts"),
        )
    )
    tagged = tag_views(views, as_of_dates=as_of_dates, lookback_days=lookback)
    viewers = _recent_things(tagged, keys, "profile_id", "count_unique_viewers")
    available = (
        catalogues(titles, as_of_dates=as_of_dates)
        .filter(F.col("release_date") <= F.col(AS_OF))
        .select(
            "title_id",
            AS_OF,
            F.explode("available_regions").alias("region"),
            _days_since(F.col("release_date")).alias("days_since_release"),
        )
    )
    joined = _zero_when_absent(
        available.join(audience, keys, "left").join(viewers, keys, "left"),
        rates=("completion_rate_28d",),
    )
    by_region = Window.partitionBy("region", AS_OF).orderBy(F.col("count_views_7d").desc())
    return joined.withColumn("rank_popularity_7d", F.rank().over(by_region))


def region_title_daily(views: DataFrame, *, as_of_dates: Sequence[dt.date]) -> DataFrame:
    """Views, hours and viewers per region and title started on each as-of date."""
    return (
        tag_views(views, as_of_dates=as_of_dates, lookback_days=1)
        .groupBy("region", "title_id", AS_OF)
        .agg(
            F.count(F.lit(1)).alias("count_views"),
            _hours().alias("sum_watch_hours"),
            F.count_distinct("profile_id").alias("count_unique_viewers"),
            F.max("last_ts").alias("last_view_ts"),
        )
    )


# --------------------------------------------------------- profile_title_interactions


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
    views: DataFrame, *, titles: DataFrame, ratings: DataFrame, as_of_dates: Sequence[dt.date]
) -> DataFrame:
    """Implicit feedback per profile and title over the lookback (56 days), per as-of date."""
    lookback = 56
    keys = ["profile_id", "title_id", AS_OF]
    runtime = catalogues(titles, as_of_dates=as_of_dates).select(
        "title_id", AS_OF, (F.col("duration_minutes") * 60).alias("_runtime_seconds")
    )
    v = tag_views(views, as_of_dates=as_of_dates, lookback_days=lookback).join(
        F.broadcast(runtime), ["title_id", AS_OF], "left"
    )
    # A rewatch is a view that starts after the first completed view of that title.
    pair = Window.partitionBy(*keys)
    first_completion = F.min(F.when(F.col("completed"), F.col("start_ts"))).over(pair)
    v = v.withColumn("_rewatch", F.col("start_ts") > first_completion)
    watched = v.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("count_views"),
        _count_if(F.col("completed")).alias("count_completions"),
        _count_if(F.col("_rewatch")).alias("count_rewatches"),
        F.max(_watch_fraction()).alias("max_watch_fraction"),
        _hours().alias("sum_watch_hours"),
        F.max("last_ts").alias("_last_view_ts"),
    )
    rated = (
        tag_as_of(ratings, as_of_dates=as_of_dates, lookback_days=lookback)
        .groupBy(*keys)
        .agg(
            F.max_by("thumbs", "event_ts").alias("_thumbs"),
            F.max("event_ts").alias("_last_rating_ts"),
        )
    )
    joined = watched.join(rated, keys, "full")
    thumbs = F.when(F.col("_thumbs") == "up", 1).when(F.col("_thumbs") == "down", -1).otherwise(0)
    counts = ["count_views", "count_completions", "count_rewatches"]
    filled = _zero_when_absent(joined)
    confidence = (
        F.col("max_watch_fraction")
        + F.col("count_completions")
        + 0.5 * F.col("count_rewatches")
        + 2.0 * (thumbs == 1).cast("double")
        - 3.0 * (thumbs == -1).cast("double")
    )
    return filled.select(
        *keys,
        *counts,
        "max_watch_fraction",
        "sum_watch_hours",
        thumbs.alias("thumbs"),
        F.greatest(confidence, F.lit(0.0)).alias("confidence"),
        F.greatest("_last_view_ts", "_last_rating_ts").alias("last_interaction_ts"),
    )


# ---------------------------------------------------------------------- artwork_daily


def artwork_daily(
    impressions: DataFrame,
    *,
    profile_segments: DataFrame,
    as_of_dates: Sequence[dt.date],
    broadcast_segments: bool = False,
) -> DataFrame:
    """Impressions and clicks per title, artwork and the viewer's segment, per as-of date.

    `profile_segments`: profile_id, as_of_date and segment (profile_daily of the dates).
    `broadcast_segments`: look the segments up in a copy held by every task, so the
    impressions are aggregated where they are read instead of shuffled to the join.
    """
    lookback = 28
    keys = ["profile_id", AS_OF]
    segments = profile_segments.select(*keys, "segment")
    # Summed per profile, title, artwork and day first: the segment is the profile's.
    per_day = impressions.groupBy("profile_id", "title_id", "artwork_id", "event_date").agg(
        F.count(F.lit(1)).alias("_shown"),
        _count_if(F.col("clicked")).alias("_clicks"),
        F.max("event_ts").alias("_last_shown"),
    )
    shown = (
        tag_as_of(per_day, as_of_dates=as_of_dates, lookback_days=lookback)
        .join(F.broadcast(segments) if broadcast_segments else segments, keys, "left")
        .withColumn("segment", F.coalesce("segment", F.lit(UNKNOWN_SEGMENT)))
    )
    today = F.col("days_ago") == 0
    return (
        shown.groupBy("title_id", "artwork_id", "segment", AS_OF)
        .agg(
            _sum_if(today, "_shown").alias("count_impressions_1d"),
            _sum_if(today, "_clicks").alias("count_clicks_1d"),
            F.sum("_shown").alias("count_impressions_28d"),
            F.sum("_clicks").alias("count_clicks_28d"),
            F.max("_last_shown").alias("last_impression_ts"),
        )
        .withColumn("ctr_28d", F.col("count_clicks_28d") / F.col("count_impressions_28d"))
    )


def conform(frame: DataFrame, table: FeatureTable, *, written_at: dt.datetime) -> DataFrame:
    """Exactly the declared columns, in the declared order and types, plus the stamps
    (`frame` carries each row's `as_of_date`)."""
    return frame.select(
        *[F.col(c.name).cast(c.spark_type).alias(c.name) for c in table.columns],
        F.col(AS_OF).cast("date").alias(AS_OF),
        F.lit(written_at).cast("timestamp").alias(WRITTEN_AT),
    )

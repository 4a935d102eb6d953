"""Feature transforms on the hand-made world of `feature_world` (values worked out by hand)."""

import datetime as dt

import pytest
from chispa import assert_approx_df_equality
from feature_world import AS_OF, bronze_frame, ts, view_events, world

from feature_store.features import transforms as tf
from feature_store.features.tables import REGISTRY
from feature_store.features.transforms import conform

WRITTEN = dt.datetime(2026, 1, 11, 1, 0)


@pytest.fixture(scope="module")
def bronze(spark):
    return world(spark)


@pytest.fixture(scope="module")
def view_rows(bronze):
    """The views every table of AS_OF reads: complete views of earlier days, the cut
    views of AS_OF itself."""
    return tf.range_views(bronze["viewing"], as_of_dates=[AS_OF], lookback_days=56).cache()


def check(spark, got, columns, expected_rows):
    expected = spark.createDataFrame(expected_rows, got.select(*columns).schema)
    assert_approx_df_equality(
        got.select(*columns),
        expected,
        precision=1e-6,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_views_collapse_events_into_one_row_per_session_and_title(spark, bronze):
    check(
        spark,
        tf.views(bronze["viewing"], as_of=AS_OF, lookback_days=56),
        ["profile_id", "session_id", "title_id", "watch_seconds", "completed", "days_ago"],
        [
            ("p1", "s1", "t1", 6000, True, 0),
            ("p1", "s2", "t2", 1500, False, 5),
            ("p1", "s4", "t1", 600, False, 0),
            ("p2", "s3", "t1", 3600, False, 21),
        ],
    )


def test_a_view_belongs_to_its_start_day_whatever_the_lookback(spark):
    """A view from 22:00 the evening before a 7-day window to 01:00 inside it is left
    out whole (it started outside), with the 7-day and the 28-day lookback alike."""
    first_day = AS_OF - dt.timedelta(days=6)
    evening = dt.datetime.combine(first_day - dt.timedelta(days=1), dt.time(22, 0))
    rows = view_events("p1", "a1", "late", "t1", evening.isoformat(), 3 * 3600,
                       complete=True, device="tv", hour=22, region="gb")  # fmt: skip
    rows += view_events("p1", "a1", "inside", "t2", f"{first_day}T08:00:00", 600,
                        complete=False, device="tv", hour=8, region="gb")  # fmt: skip
    viewing = bronze_frame(spark, "viewing", rows)
    columns = ["session_id", "watch_seconds", "days_ago"]
    for lookback in (7, 28):
        got = tf.views(viewing, as_of=AS_OF, lookback_days=lookback).filter("days_ago < 7")
        check(spark, got, columns, [("inside", 600, 6)])
    longer = tf.views(viewing, as_of=AS_OF, lookback_days=28)
    check(spark, longer, columns, [("inside", 600, 6), ("late", 3 * 3600, 7)])


def test_a_view_across_midnight_is_cut_for_its_start_day_and_whole_afterwards(spark):
    """As of its start day a view ends at midnight (the stop after it is the future); as of
    the next day the same view is whole. Both as-of dates in one pass, keyed by date."""
    day = AS_OF - dt.timedelta(days=1)
    rows = view_events("p1", "a1", "night", "t1", f"{day}T23:30:00", 3600,
                       complete=True, device="tv", hour=23, region="gb")  # fmt: skip
    viewing = bronze_frame(spark, "viewing", rows)
    dates = [day, AS_OF]
    views = tf.range_views(viewing, as_of_dates=dates, lookback_days=7)
    got = tf.tag_views(views, as_of_dates=dates, lookback_days=7)
    check(
        spark,
        got,
        ["as_of_date", "session_id", "watch_seconds", "completed", "last_ts", "days_ago"],
        [
            (day, "night", 0, False, ts(f"{day}T23:30:00"), 0),
            (AS_OF, "night", 3600, True, ts(f"{AS_OF}T00:30:00"), 1),
        ],
    )
    check(
        spark,
        tf.region_title_daily(views, as_of_dates=dates),
        ["as_of_date", "title_id", "count_views", "sum_watch_hours", "last_view_ts"],
        [(day, "t1", 1, 0.0, ts(f"{day}T23:30:00"))],
    )


def test_account_daily_takes_each_dates_own_snapshot(spark, bronze):
    """Three as-of dates (not contiguous) in one pass: a1's plan changes on 01-04, a2's
    payment fails on 01-03, a3 is cancelled on 01-02."""
    dates = [dt.date(2026, 1, 1), dt.date(2026, 1, 3), dt.date(2026, 1, 4)]
    views = tf.range_views(bronze["viewing"], as_of_dates=dates, lookback_days=30)
    got = tf.account_daily(
        views,
        accounts=bronze["accounts"],
        profiles=bronze["profiles"],
        subscriptions=bronze["subscriptions"],
        as_of_dates=dates,
    )
    check(
        spark,
        got,
        ["account_id", "as_of_date", "plan", "tenure_days", "count_payment_failures_30d",
         "count_plan_changes_30d", "count_profiles"],
        [
            ("a1", dates[0], "standard", 356, 0, 0, 2),
            ("a2", dates[0], "basic", 0, 0, 0, 1),
            ("a3", dates[0], "basic", 0, 0, 0, 1),
            ("a1", dates[1], "standard", 358, 0, 0, 2),
            ("a2", dates[1], "basic", 2, 1, 0, 1),
            ("a1", dates[2], "premium", 359, 0, 1, 2),
            ("a2", dates[2], "basic", 3, 1, 0, 1),
        ],
    )  # fmt: skip


def test_profile_daily_windows_shares_segment_and_inactive_profiles(spark, bronze, view_rows):
    got = tf.profile_daily(
        view_rows,
        profiles=bronze["profiles"],
        titles=bronze["titles"],
        ratings=bronze["ratings"],
        searches=bronze["searches"],
        as_of_dates=[AS_OF],
    )
    check(
        spark,
        got,
        [
            "profile_id",
            "account_id",
            "sum_watch_hours_1d",
            "sum_watch_hours_7d",
            "sum_watch_hours_28d",
            "count_sessions_1d",
            "count_sessions_7d",
            "count_sessions_28d",
            "count_distinct_titles_1d",
            "count_distinct_titles_28d",
            "count_views_28d",
            "completion_rate_28d",
            "share_genre_drama_28d",
            "share_genre_comedy_28d",
            "share_device_mobile_28d",
            "share_daypart_evening_28d",
            "share_daypart_morning_28d",
            "segment",
            "days_since_last_watch",
            "last_watch_ts",
            "trend_watch_hours_per_day_7d_vs_prior_21d",
            "count_thumbs_up_28d",
            "count_searches_28d",
        ],
        [
            ("p1", "a1", 6600 / 3600, 2.25, 2.25, 2, 3, 3, 1, 2, 3, 1 / 3, 6600 / 8100,
             1500 / 8100, 0.0, 1.0, 0.0, "drama_romance", 0, ts("2026-01-10T22:00:00"),
             2.25 / 7, 1, 0),
            ("p2", "a1", 0.0, 0.0, 1.0, 0, 0, 1, 0, 1, 1, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0,
             "drama_romance", 21, ts("2025-12-20T08:00:00"), -1 / 21, 0, 1),
            ("p3", "a2", 0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, None, 0.0, 0.0, 0.0, 0.0, 0.0,
             "unknown", None, None, 0.0, 0, 0),
            ("p4", "a3", 0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, None, 0.0, 0.0, 0.0, 0.0, 0.0,
             "unknown", None, None, 0.0, 0, 0),
        ],
    )  # fmt: skip


def test_account_daily_uses_latest_state_and_drops_cancelled_accounts(spark, bronze, view_rows):
    got = tf.account_daily(
        view_rows,
        accounts=bronze["accounts"],
        profiles=bronze["profiles"],
        subscriptions=bronze["subscriptions"],
        as_of_dates=[AS_OF],
    )
    check(
        spark,
        conform(got, REGISTRY.get("account_daily"), written_at=WRITTEN),
        [
            "account_id",
            "region",
            "plan",
            "tenure_days",
            "count_payment_failures_30d",
            "count_plan_changes_30d",
            "count_profiles",
            "count_active_profiles_7d",
            "count_active_profiles_28d",
            "sum_watch_hours_7d",
            "sum_watch_hours_28d",
            "count_sessions_28d",
            "trend_watch_hours_per_day_7d_vs_prior_21d",
            "days_since_last_watch",
            "last_activity_ts",
        ],
        [
            ("a1", "gb", "premium", 365, 0, 1, 2, 1, 2, 2.25, 3.25, 4, 2.25 / 7 - 1 / 21, 0,
             ts("2026-01-10T22:00:00")),
            ("a2", "de", "basic", 9, 1, 0, 1, 0, 0, 0.0, 0.0, 0, 0.0, None,
             ts("2026-01-03T10:00:00")),
        ],
    )  # fmt: skip


def test_title_daily_covers_released_titles_per_available_region(spark, bronze, view_rows):
    got = tf.title_daily(view_rows, titles=bronze["titles"], as_of_dates=[AS_OF])
    check(
        spark,
        got,
        [
            "title_id",
            "region",
            "count_views_1d",
            "count_views_7d",
            "count_views_28d",
            "sum_watch_hours_28d",
            "count_unique_viewers_1d",
            "count_unique_viewers_28d",
            "completion_rate_28d",
            "days_since_release",
            "rank_popularity_7d",
            "last_view_ts",
        ],
        [
            ("t1", "gb", 2, 2, 3, 6600 / 3600 + 1, 1, 2, 1 / 3, 374, 1,
             ts("2026-01-10T22:00:00")),
            ("t1", "de", 0, 0, 0, 0.0, 0, 0, None, 374, 1, None),
            ("t2", "gb", 0, 1, 1, 1500 / 3600, 0, 1, 0.0, 1, 2, ts("2026-01-05T20:00:00")),
        ],
    )  # fmt: skip


def test_region_title_daily_counts_the_as_of_date_only(spark, view_rows):
    got = tf.region_title_daily(view_rows, as_of_dates=[AS_OF])
    check(
        spark,
        got,
        ["region", "title_id", "count_views", "sum_watch_hours", "count_unique_viewers",
         "last_view_ts"],
        [("gb", "t1", 2, 6600 / 3600, 1, ts("2026-01-10T22:10:00"))],
    )  # fmt: skip


def test_interactions_count_rewatches_and_weigh_thumbs(spark, bronze, view_rows):
    got = tf.profile_title_interactions(
        view_rows, titles=bronze["titles"], ratings=bronze["ratings"], as_of_dates=[AS_OF]
    )
    check(
        spark,
        got,
        [
            "profile_id",
            "title_id",
            "count_views",
            "count_completions",
            "count_rewatches",
            "max_watch_fraction",
            "sum_watch_hours",
            "thumbs",
            "confidence",
            "last_interaction_ts",
        ],
        [
            ("p1", "t1", 2, 1, 1, 1.0, 6600 / 3600, 1, 4.5, ts("2026-01-10T22:10:00")),
            ("p1", "t2", 1, 0, 0, 0.5, 1500 / 3600, 0, 0.5, ts("2026-01-05T20:25:00")),
            ("p2", "t1", 1, 0, 0, 0.6, 1.0, 0, 0.6, ts("2025-12-20T09:00:00")),
        ],
    )


def test_a_title_missing_from_the_catalogue_counts_completion_not_a_full_watch(spark, bronze):
    rows = view_events("p1", "a1", "x1", "t-unknown", "2026-01-09T20:00:00", 300,
                       complete=False, device="tv", hour=20, region="gb")  # fmt: skip
    rows += view_events("p2", "a1", "x2", "t-unknown", "2026-01-09T21:00:00", 4000,
                        complete=True, device="tv", hour=21, region="gb")  # fmt: skip
    views = tf.range_views(
        bronze_frame(spark, "viewing", rows), as_of_dates=[AS_OF], lookback_days=56
    )
    got = tf.profile_title_interactions(
        views, titles=bronze["titles"], ratings=bronze["ratings"], as_of_dates=[AS_OF]
    )
    check(
        spark,
        got.filter("title_id = 't-unknown'"),
        ["profile_id", "max_watch_fraction", "confidence"],
        [("p1", 0.0, 0.0), ("p2", 1.0, 2.0)],
    )


def test_artwork_daily_splits_by_the_viewers_segment(spark, bronze):
    segments = spark.createDataFrame(
        [("p1", AS_OF, "drama_romance"), ("p3", AS_OF, "unknown")],
        "profile_id string, as_of_date date, segment string",
    )
    got = tf.artwork_daily(bronze["impressions"], profile_segments=segments, as_of_dates=[AS_OF])
    check(
        spark,
        got,
        [
            "title_id",
            "artwork_id",
            "segment",
            "count_impressions_1d",
            "count_clicks_1d",
            "count_impressions_28d",
            "count_clicks_28d",
            "ctr_28d",
            "last_impression_ts",
        ],
        [
            ("t1", "t1-a", "drama_romance", 2, 1, 2, 1, 0.5, ts("2026-01-10T19:00:00")),
            ("t1", "t1-b", "drama_romance", 0, 0, 1, 0, 0.0, ts("2026-01-09T19:00:00")),
            ("t1", "t1-a", "unknown", 1, 0, 1, 0, 0.0, ts("2026-01-10T19:00:00")),
        ],
    )


def test_conform_gives_exactly_the_declared_schema(bronze, view_rows):
    table = REGISTRY.get("region_title_daily")
    got = conform(tf.region_title_daily(view_rows, as_of_dates=[AS_OF]), table,
                  written_at=WRITTEN)  # fmt: skip
    assert [(f.name, f.dataType) for f in got.schema] == [
        (f.name, f.dataType) for f in table.schema
    ]
    assert got.select("as_of_date", "written_at").distinct().collect() == [(AS_OF, WRITTEN)]

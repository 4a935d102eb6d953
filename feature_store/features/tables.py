"""The declared entities and feature tables of the streaming service.

Column names follow `<agg>_<measure>_<window>`. A table's `lookback_days` is the
bronze event window its build reads; its TTL is how long a row may stand in for
missing newer data in a point-in-time join.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from feature_store.features import transforms as tf
from feature_store.features.definitions import (
    UNKNOWN_SEGMENT,
    WINDOWS,
    Dimension,
    Entity,
    FeatureColumn,
    FeatureRegistry,
    FeatureTable,
    FromViews,
    TransformInputs,
)
from feature_store.sources import DAYPARTS, DEVICES, GENRES, PLANS, REGIONS, SEGMENTS

ACCOUNT = Entity("account", ("account_id",), "A paying household (pseudonymized id).")
PROFILE = Entity("profile", ("profile_id",), "A viewer profile within an account.")
TITLE = Entity("title", ("title_id",), "A movie or series in the catalogue.")
REGION = Entity("region", ("region",), "A streaming region (country or part of one).")

OWNER_MEMBERS = "member-data@marquee"
OWNER_CONTENT = "content-data@marquee"


def _key(name: str, description: str, allowed: tuple[str, ...] = ()) -> FeatureColumn:
    return FeatureColumn(name, "string", description, allowed=allowed)


def _count(name: str, description: str) -> FeatureColumn:
    return FeatureColumn(name, "long", description, min_value=0)


def _hours(name: str, description: str, window_days: int | None = None) -> FeatureColumn:
    top = 24.0 * window_days if window_days else None
    return FeatureColumn(name, "double", description, min_value=0, max_value=top)


def _share(name: str, description: str, nullable: bool = False) -> FeatureColumn:
    return FeatureColumn(name, "double", description, nullable=nullable, min_value=0, max_value=1)


def _days(window: int) -> str:
    return "the as-of date" if window == 1 else f"the last {window} days"


def _windowed(make, stem: str, what: str, windows=WINDOWS) -> list[FeatureColumn]:
    return [make(f"{stem}_{w}d", f"{what} over {_days(w)}") for w in windows]


# --- each table's transform over the build's inputs (transforms.py computes the rows) ---


def _artwork_daily(i: TransformInputs) -> DataFrame:
    segments = i.upstream["profile_daily"]
    return tf.artwork_daily(
        i.bronze["impressions"],
        profile_segments=segments,
        as_of_dates=i.as_of_dates,
        broadcast_segments=segments.count() <= i.broadcast_max_rows,
    )


PROFILE_DAILY = FeatureTable(
    name="profile_daily",
    transform=FromViews(tf.profile_daily),
    entity=PROFILE,
    keys=("profile_id",),
    description="What a profile watched, when, where and how much: the recommender's context.",
    owner=OWNER_MEMBERS,
    ttl_days=7,
    lookback_days=28,
    sources=("viewing", "ratings", "searches", "titles", "profiles"),
    columns=(
        _key("profile_id", "pseudonymized profile id"),
        _key("account_id", "pseudonymized account the profile belongs to"),
        *[_hours(f"sum_watch_hours_{w}d", f"hours watched over {_days(w)}", w) for w in WINDOWS],
        *_windowed(_count, "count_sessions", "viewing sessions"),
        *_windowed(_count, "count_distinct_titles", "distinct titles watched"),
        _count("count_views_28d", "title views (one per session and title) over 28 days"),
        _share("completion_rate_28d", "share of views watched to the end, 28 days", True),
        *[
            _share(f"share_genre_{g}_28d", f"share of 28-day watch hours on {g} titles")
            for g in GENRES
        ],
        *[_share(f"share_device_{d}_28d", f"share of 28-day watch hours on {d}") for d in DEVICES],
        *[
            _share(f"share_daypart_{p}_28d", f"share of 28-day watch hours at local {a}-{b}h")
            for p, (a, b) in DAYPARTS.items()
        ],
        FeatureColumn(
            "segment",
            "string",
            "segment of the genre group watched most over 28 days",
            allowed=(*SEGMENTS, UNKNOWN_SEGMENT),
        ),
        FeatureColumn(
            "days_since_last_watch",
            "int",
            "days from the last view to the as-of date (null: none in 28 days)",
            nullable=True,
            min_value=0,
            max_value=27,
        ),
        FeatureColumn("last_watch_ts", "timestamp", "time of the last view", nullable=True),
        FeatureColumn(
            "trend_watch_hours_per_day_7d_vs_prior_21d",
            "double",
            "hours per day over the last 7 days minus hours per day over the 21 before",
            min_value=-24,
            max_value=24,
        ),
        _count("count_thumbs_up_28d", "thumbs up given over 28 days"),
        _count("count_thumbs_down_28d", "thumbs down given over 28 days"),
        _count("count_searches_28d", "searches over 28 days"),
    ),
    freshness_column="last_watch_ts",
    max_staleness_hours=48,
)

ACCOUNT_DAILY = FeatureTable(
    name="account_daily",
    transform=FromViews(tf.account_daily),
    entity=ACCOUNT,
    keys=("account_id",),
    description="Subscription state and household engagement: the churn features.",
    owner=OWNER_MEMBERS,
    ttl_days=7,
    lookback_days=30,
    sources=("accounts", "profiles", "subscriptions", "viewing"),
    columns=(
        _key("account_id", "pseudonymized account id"),
        _key("region", "home region", tuple(REGIONS)),
        _key("plan", "current plan", PLANS),
        FeatureColumn("tenure_days", "int", "days since signup", min_value=0),
        _count("count_payment_failures_30d", "failed payments over 30 days"),
        _count("count_plan_changes_30d", "plan changes over 30 days"),
        _count("count_profiles", "profiles in the household"),
        _count("count_active_profiles_7d", "profiles that watched over 7 days"),
        _count("count_active_profiles_28d", "profiles that watched over 28 days"),
        _hours("sum_watch_hours_7d", "household hours watched over 7 days", 7 * 5),
        _hours("sum_watch_hours_28d", "household hours watched over 28 days", 28 * 5),
        _count("count_sessions_28d", "household viewing sessions over 28 days"),
        FeatureColumn(
            "trend_watch_hours_per_day_7d_vs_prior_21d",
            "double",
            "household hours per day over 7 days minus hours per day over the 21 before",
            min_value=-120,
            max_value=120,
        ),
        FeatureColumn(
            "days_since_last_watch",
            "int",
            "days from the household's last view to the as-of date (null: none in 30 days)",
            nullable=True,
            min_value=0,
            max_value=29,
        ),
        FeatureColumn(
            "last_activity_ts",
            "timestamp",
            "last view or subscription event of the household",
            nullable=True,
        ),
    ),
    freshness_column="last_activity_ts",
    max_staleness_hours=48,
    max_row_change=0.2,
)

TITLE_DAILY = FeatureTable(
    name="title_daily",
    transform=FromViews(tf.title_daily),
    entity=TITLE,
    keys=("title_id", "region"),
    description="Audience of each available title in each region: popularity and reception.",
    owner=OWNER_CONTENT,
    ttl_days=3,
    lookback_days=28,
    sources=("viewing", "titles"),
    columns=(
        _key("title_id", "title id"),
        _key("region", "region where the title is available", tuple(REGIONS)),
        *_windowed(_count, "count_views", "views in the region"),
        *[
            _hours(f"sum_watch_hours_{w}d", f"hours watched in the region over {_days(w)}")
            for w in WINDOWS
        ],
        *_windowed(_count, "count_unique_viewers", "distinct profiles that watched"),
        _share("completion_rate_28d", "share of 28-day views watched to the end", True),
        FeatureColumn("days_since_release", "int", "days since the release date", min_value=0),
        FeatureColumn(
            "rank_popularity_7d",
            "int",
            "rank by 7-day views in the region (1 = most viewed; ties share a rank)",
            min_value=1,
        ),
        FeatureColumn("last_view_ts", "timestamp", "time of the last view", nullable=True),
    ),
    freshness_column="last_view_ts",
    max_staleness_hours=48,
    max_row_change=0.2,
)

REGION_TITLE_DAILY = FeatureTable(
    name="region_title_daily",
    transform=FromViews(tf.region_title_daily),
    entity=REGION,
    keys=("region", "title_id"),
    description="The daily viewing series per region and title (days without views omitted).",
    owner=OWNER_CONTENT,
    ttl_days=1,
    lookback_days=1,
    sources=("viewing",),
    columns=(
        _key("region", "region", tuple(REGIONS)),
        _key("title_id", "title id"),
        _count("count_views", "views started on the as-of date"),
        _hours("sum_watch_hours", "hours watched on the as-of date"),
        _count("count_unique_viewers", "distinct profiles that watched on the as-of date"),
        FeatureColumn("last_view_ts", "timestamp", "time of the last view that day"),
    ),
    freshness_column="last_view_ts",
    max_staleness_hours=48,
)

PROFILE_TITLE_INTERACTIONS = FeatureTable(
    name="profile_title_interactions",
    transform=FromViews(tf.profile_title_interactions),
    entity=PROFILE,
    keys=("profile_id", "title_id"),
    description="Implicit feedback per profile and title, the recommender's training signal.",
    owner=OWNER_MEMBERS,
    ttl_days=7,
    lookback_days=56,
    sources=("viewing", "ratings", "titles"),
    columns=(
        _key("profile_id", "pseudonymized profile id"),
        _key("title_id", "title id"),
        _count("count_views", "views (one per session) over the lookback"),
        _count("count_completions", "views watched to the end"),
        _count("count_rewatches", "views after the first completed one"),
        _share("max_watch_fraction", "largest share of the runtime watched in one view"),
        _hours("sum_watch_hours", "hours watched"),
        FeatureColumn(
            "thumbs",
            "int",
            "latest thumbs: 1 up, -1 down, 0 none",
            min_value=-1,
            max_value=1,
        ),
        FeatureColumn(
            "confidence",
            "double",
            "implicit confidence: max fraction + completions + rewatches/2 + 2*up - 3*down,"
            " floored at 0",
            min_value=0,
        ),
        FeatureColumn("last_interaction_ts", "timestamp", "last view or rating"),
    ),
    freshness_column="last_interaction_ts",
    max_staleness_hours=48,
)

ARTWORK_DAILY = FeatureTable(
    name="artwork_daily",
    transform=_artwork_daily,
    entity=TITLE,
    keys=("title_id", "artwork_id", "segment"),
    description="Impressions and clicks per artwork variant and member segment.",
    owner=OWNER_CONTENT,
    ttl_days=3,
    lookback_days=28,
    sources=("impressions",),
    upstream_tables=("profile_daily",),
    columns=(
        _key("title_id", "title id"),
        _key("artwork_id", "artwork variant shown"),
        _key("segment", "viewer's segment (profile_daily.segment)", (*SEGMENTS, UNKNOWN_SEGMENT)),
        _count("count_impressions_1d", "impressions on the as-of date"),
        _count("count_clicks_1d", "clicks on the as-of date"),
        _count("count_impressions_28d", "impressions over 28 days"),
        _count("count_clicks_28d", "clicks over 28 days"),
        _share("ctr_28d", "click-through rate over 28 days"),
        FeatureColumn("last_impression_ts", "timestamp", "time of the last impression"),
    ),
    freshness_column="last_impression_ts",
    max_staleness_hours=48,
)

REGISTRY = FeatureRegistry(
    (
        PROFILE_DAILY,
        ACCOUNT_DAILY,
        TITLE_DAILY,
        REGION_TITLE_DAILY,
        PROFILE_TITLE_INTERACTIONS,
        ARTWORK_DAILY,
    )
)

# The catalogue the recommender's content model, the forecast and the audience model share.
TITLE_CATALOGUE = Dimension(
    name="title_catalogue",
    entity=TITLE,
    source="titles",
    description="Each title as known at the end of a date, released or announced.",
    owner=OWNER_CONTENT,
    columns=(
        "title_id",
        "kind",
        "genres",
        "cast",
        "release_date",
        "duration_minutes",
        "episodes",
        "available_regions",
        "artwork",
    ),
)

DIMENSIONS = {d.name: d for d in (TITLE_CATALOGUE,)}

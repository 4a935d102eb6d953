"""Member activity from the hidden truth, with no shuffle.

A profile's sessions come from a thinned Poisson process: a rate from its
activity, scaled by its account's engagement on the day and a weekend boost, cut
off by signup and cancellation. Each session shows three titles (two drawn by
regional popularity of the day, one from one of the profile's favourite genres),
each with one of its artwork variants. The profile picks by utility plus Gumbel
noise against an outside option (watch nothing): taste, latent factors, context
(device x kind, local hour x genre) and artwork appeal (segment x style) all
shift the choice (scored in NumPy by `choice`, on numbers Spark draws). A watched
title is finished with a probability rising with its utility.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_type, to_arrow_schema

from feature_store.sources import DEVICES, GENRES, REGIONS
from feature_store.synthetic import choice
from feature_store.synthetic import rand as R
from feature_store.synthetic.artwork import ArtworkLogging
from feature_store.synthetic.members import engagement
from feature_store.synthetic.world import POPULARITY_SLOTS, Catalogue, WorldParams

CANDIDATES = choice.CANDIDATES
# Local hours at which the hour groups 1, 2 and 3 start (night, morning, midday, evening)
HOUR_GROUP_STARTS = (6, 11, 17)
_PAGE_ROWS = ("trending", "top_picks", "because_you_watched")


def sessions(
    profiles: DataFrame,
    *,
    seed: int,
    start: dt.date,
    days: int,
    sessions_per_day: float,
    world: WorldParams,
) -> DataFrame:
    """One row per session: profile, day, device, local hour, start time (UTC)."""
    p = F.col("profile_idx")
    max_factor = (
        F.exp(F.greatest(F.col("engagement_drift") * (days - 1), F.lit(0.0))) * world.weekend_boost
    )
    mean = F.col("activity") * sessions_per_day * days * max_factor
    slots = (F.ceil(mean * 1.5) + 2).cast("int")
    df = profiles.withColumn("_mean", mean).withColumn("_max_factor", max_factor)
    df = df.withColumn("k", F.explode(F.sequence(F.lit(0), slots - 1)))
    df = df.filter(R.uniform(seed, "keep", p, "k") < F.col("_mean") / slots)
    day = R.below(days, seed, "day", p, "k")
    df = df.withColumn("day", day)
    weekday = F.dayofweek(F.date_add(F.lit(start), F.col("day")))  # 1 = Sunday
    weekend = F.when(weekday.isin(1, 6, 7), world.weekend_boost).otherwise(1.0)
    accept = engagement(F.col("day")) * weekend / F.col("_max_factor")
    df = df.filter(
        (R.uniform(seed, "thin", p, "k") < accept)
        & (F.col("day") >= F.col("signup_day"))
        & (F.col("cancel_day").isNull() | (F.col("day") < F.col("cancel_day")))
    )

    lunch = ~F.col("is_kids") & (R.uniform(seed, "lunch", p, "k") < 0.15)
    hour = F.when(lunch, 12.5 + 0.6 * R.normal(seed, "lunch_hour", p, "k")).otherwise(
        F.col("peak_hour") + 2.0 * R.normal(seed, "hour", p, "k")
    )
    device = F.when(lunch & (R.uniform(seed, "lunch_device", p, "k") < 0.7), F.lit(1)).otherwise(
        F.when(R.uniform(seed, "habit", p, "k") < 0.7, F.col("preferred_device_idx")).otherwise(
            R.below(len(DEVICES), seed, "any_device", p, "k")
        )
    )
    local_hour = F.pmod(F.floor(hour), F.lit(24)).cast("int")
    offsets = F.array(*[F.lit(offset) for _, offset in REGIONS.values()])
    epoch0 = int(dt.datetime.combine(start, dt.time(), dt.UTC).timestamp())
    start_seconds = (
        F.lit(epoch0)
        + F.col("day") * 86400
        + (local_hour - F.element_at(offsets, F.col("region_idx") + 1)) * 3600
        + R.below(3600, seed, "second", p, "k")
    )
    return df.select(
        "*",
        F.lpad(F.lower(F.hex(F.xxhash64(F.lit(seed), F.lit("session"), p, "k"))), 16, "0").alias(
            "session_id"
        ),
        device.alias("device_idx"),
        local_hour.alias("local_hour"),
        _hour_group(local_hour).alias("hour_group"),
        start_seconds.alias("start_seconds"),
    ).drop("_mean", "_max_factor")


def _hour_group(local_hour):
    group = F.lit(len(HOUR_GROUP_STARTS))
    for index, start in reversed(list(enumerate(HOUR_GROUP_STARTS))):
        group = F.when(local_hour < start, index).otherwise(group)
    return group


def choices(
    sessions_df: DataFrame,
    catalogue: Catalogue,
    *,
    seed: int,
    world: WorldParams,
    keep: tuple[str, ...],
    logging: ArtworkLogging | None = None,
) -> DataFrame:
    """The sessions' `keep` columns with three candidate titles each (columns suffixed
    _0, _1, _2: `choice.CANDIDATE_FIELDS`) and `chosen`.

    Candidates 0 and 1 are a uniform slot of the session's region and day, so titles
    come by their popularity there; candidate 2 is any title of one of the profile's
    three favourite genres. Each shows one of its artwork variants, drawn by `logging`
    (uniform by default) with its probability. Spark draws the random numbers;
    `choice.Chooser` looks the titles up and scores them in NumPy, so a session never
    leaves its partition.
    """
    inputs = [c for c in choice.SCORING_INPUTS if c not in keep]
    drawn = sessions_df.select(*keep, *inputs, *_draws(seed, catalogue.genre_counts))
    fields = [drawn.schema[c] for c in keep]
    for i in range(CANDIDATES):
        fields += [
            T.StructField(f"{c}_{i}", from_arrow_type(t)) for c, t in choice.CANDIDATE_FIELDS
        ]
    schema = T.StructType([*fields, T.StructField("chosen", T.IntegerType(), False)])
    chooser = choice.Chooser.of(catalogue, world, keep, to_arrow_schema(schema), logging)
    return drawn.mapInArrow(chooser, schema)


def _draws(seed: int, genre_counts: list[int]) -> list[Column]:
    """Every random number a session's choice needs (`choice.DRAWS`)."""
    p, k = F.col("profile_idx"), F.col("k")
    slot_keys = [
        choice.popularity_key(
            F.col("day").cast("long"),
            F.col("region_idx"),
            R.below(POPULARITY_SLOTS, seed, f"slot{i}", p, k),
        )
        for i in (0, 1)
    ]
    genre = F.element_at(F.col("top_genres"), R.below(3, seed, "genre_pick", p, k) + 1)
    counts = F.array(*[F.lit(c) for c in genre_counts])
    pos = R.below(F.element_at(counts, genre + 1), seed, "genre_pos", p, k)
    columns = [
        *slot_keys,
        choice.genre_key(genre.cast("long"), pos, max(genre_counts)),
        *[R.uniform(seed, f"art{i}", p, k) for i in range(CANDIDATES)],
        *[R.gumbel(seed, f"gumbel{i}", p, k) for i in range(CANDIDATES)],
        R.gumbel(seed, "gumbel_outside", p, k),
    ]
    return [c.alias(name) for c, (name, _) in zip(columns, choice.DRAWS, strict=True)]


def impressions(choices_df: DataFrame, titles: DataFrame, *, seed: int) -> DataFrame:
    """Impression events: each valid candidate shown in a session, `clicked` if chosen,
    with the artwork shown, the title's variants it was drawn from and its probability."""
    shown = F.array(
        *[
            F.struct(
                F.lit(i).alias("i"),
                F.col(f"valid_{i}").alias("valid"),
                F.col(f"title_id_{i}").alias("title_id"),
                F.col(f"artwork_id_{i}").alias("artwork_id"),
                F.col(f"artwork_propensity_{i}").alias("artwork_propensity"),
                F.col(f"release_day_{i}").alias("release_day"),
            )
            for i in range(CANDIDATES)
        ]
    )
    variants = titles.select(
        F.col("title_id").alias("_title_id"), F.col("artwork_ids").alias("artwork_candidates")
    )
    df = (
        choices_df.select("*", F.explode(shown).alias("imp"))
        .filter(F.col("imp.valid"))
        .join(F.broadcast(variants), F.col("imp.title_id") == F.col("_title_id"))
    )
    i = F.col("imp.i")
    new_release = F.col("day") - F.col("imp.release_day") < 14
    page_row = F.when(new_release, F.lit("new_releases")).otherwise(
        F.element_at(F.array(*map(F.lit, _PAGE_ROWS)), i + 1)
    )
    return df.select(
        R.hex_id(seed, "impression", "profile_idx", "k", i).alias("event_id"),
        F.timestamp_seconds(F.col("start_seconds") + i).alias("event_ts"),
        "account_id",
        "profile_id",
        "session_id",
        F.col("imp.title_id").alias("title_id"),
        F.col("imp.artwork_id").alias("artwork_id"),
        "artwork_candidates",
        F.col("imp.artwork_propensity").alias("artwork_propensity"),
        page_row.alias("page_row"),
        R.below(10, seed, "row_position", "profile_idx", "k", i).alias("row_position"),
        (F.col("chosen") == i).alias("clicked"),
        _device(),
        "region",
    )


def _device() -> Column:
    return F.element_at(F.array(*map(F.lit, DEVICES)), F.col("device_idx") + 1).alias("device")


def views(choices_df: DataFrame, *, seed: int, world: WorldParams) -> DataFrame:
    """Sessions where a title was chosen, with what was watched of it."""
    df = choices_df.filter(F.col("chosen") >= 0)

    def chosen(name: str) -> Column:
        column = F.col(f"{name}_2")
        for i in reversed(range(CANDIDATES - 1)):
            column = F.when(F.col("chosen") == i, F.col(f"{name}_{i}")).otherwise(column)
        return column

    p, k = F.col("profile_idx"), F.col("k")
    utility = chosen("utility")
    finish = R.sigmoid(
        world.completion_intercept + world.completion_slope * utility + chosen("quality")
    )
    completed = R.uniform(seed, "complete", p, k) < finish
    duration = chosen("duration_minutes") * 60
    fraction = F.when(completed, 1.0).otherwise(0.05 + 0.85 * R.uniform(seed, "fraction", p, k))
    pauses = sum((R.uniform(seed, f"pause{j}", p, k) < 0.35).cast("int") for j in range(4))
    return df.select(
        "*",
        chosen("title_id").alias("title_id"),
        chosen("name").alias("title_name"),
        utility.alias("utility"),
        completed.alias("completed"),
        F.floor(duration * fraction).cast("int").alias("watched_seconds"),
        pauses.alias("pauses"),
    )


def viewing_events(views_df: DataFrame, *, seed: int) -> DataFrame:
    """play, then pause/play pairs, then stop or complete; watch_seconds sum to the view."""
    n = F.col("pauses")
    df = views_df.withColumn("e", F.explode(F.sequence(F.lit(0), 2 * n + 1)))
    e = F.col("e")
    segment = F.floor(F.col("watched_seconds") / (n + 1)).cast("int")
    pauses_before = F.floor(e / 2).cast("int")
    last = e == 2 * n + 1
    position = F.when(last, F.col("watched_seconds")).otherwise(
        pauses_before * segment + F.when(e % 2 == 1, segment).otherwise(0)
    )
    event_type = (
        F.when(e == 0, F.lit("play"))
        .when(last & F.col("completed"), F.lit("complete"))
        .when(last, F.lit("stop"))
        .when(e % 2 == 1, F.lit("pause"))
        .otherwise(F.lit("play"))
    )
    watch = (
        F.when(e == 0, 0)
        .when(e % 2 == 1, segment)
        .when(last, F.col("watched_seconds") - n * segment)
        .otherwise(0)
    )
    ts = F.col("start_seconds") + 20 + position + pauses_before * 180
    return df.select(
        R.hex_id(seed, "view_event", "profile_idx", "k", e).alias("event_id"),
        F.timestamp_seconds(ts).alias("event_ts"),
        "account_id",
        "profile_id",
        "session_id",
        "title_id",
        event_type.alias("event_type"),
        watch.cast("int").alias("watch_seconds"),
        position.cast("int").alias("position_seconds"),
        _device(),
        "region",
        "local_hour",
    )


def ratings(views_df: DataFrame, *, seed: int) -> DataFrame:
    """Thumbs after some views (completed ones more often), up when the noisy utility is high."""
    p, k = F.col("profile_idx"), F.col("k")
    rates = F.when(F.col("completed"), 0.15).otherwise(0.04)
    liked = F.col("utility") + 0.5 * R.normal(seed, "thumbs_noise", p, k) > 1.0
    return views_df.filter(R.uniform(seed, "rates", p, k) < rates).select(
        R.hex_id(seed, "rating", p, k).alias("event_id"),
        F.timestamp_seconds(F.col("start_seconds") + F.col("watched_seconds") + 60).alias(
            "event_ts"
        ),
        "account_id",
        "profile_id",
        "title_id",
        F.when(liked, F.lit("up")).otherwise(F.lit("down")).alias("thumbs"),
    )


def searches(views_df: DataFrame, *, seed: int) -> DataFrame:
    """Some views start with a search: for a word of the title's name, or its genre."""
    p, k = F.col("profile_idx"), F.col("k")
    by_name = R.uniform(seed, "query_kind", p, k) < 0.7
    genre = F.element_at(F.array(*map(F.lit, GENRES)), F.col("top_genres")[0] + 1)
    query = F.when(by_name, F.lower(F.split(F.col("title_name"), " ")[1])).otherwise(genre)
    return views_df.filter(R.uniform(seed, "searches", p, k) < 0.12).select(
        R.hex_id(seed, "search", p, k).alias("event_id"),
        F.timestamp_seconds(F.col("start_seconds") - 30).alias("event_ts"),
        "account_id",
        "profile_id",
        query.alias("query"),
        (1 + R.below(40, seed, "results", p, k)).alias("results_count"),
        _device(),
    )

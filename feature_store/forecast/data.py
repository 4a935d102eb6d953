"""Dense daily view series per (region, title), read from the lake at recorded versions.

``region_title_daily`` stores a row only for the days a title was watched in a region.
A forecaster fed those rows alone would never see a zero, so it would overestimate
every niche title and could not learn a release-day jump from nothing. The series here
has one row per available (region, title) and day, zeros where the table has none,
including the days before a title's release (so the model learns that nothing is
watched before release, and how launches start).

Lineage: the table versions read are recorded, and every read goes through them, so a
run can be rebuilt exactly by time travel.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.features.definitions import AS_OF
from feature_store.features.retrieval import FeatureStoreReader

log = logging.getLogger(__name__)

REGION, TITLE, DATE, VIEWS = "region", "title_id", "date", "views"
SERIES_TABLE = "region_title_daily"


class ForecastDataError(RuntimeError):
    """The lake cannot feed a forecast: a table is missing or holds too few days."""


@dataclasses.dataclass(frozen=True)
class SeriesData:
    """The dense series, the catalogue it was built against and where both came from."""

    series: DataFrame  # region, title_id, date, views (long; 0 on days without views)
    titles: DataFrame  # title_id, kind, genres, cast, release_date, duration_minutes, episodes
    first_date: dt.date
    end_date: dt.date
    table_versions: dict[str, int]

    @property
    def days(self) -> int:
        return (self.end_date - self.first_date).days + 1


def dense_series(
    daily: DataFrame, *, availability: DataFrame, first: dt.date, last: dt.date
) -> DataFrame:
    """One row per (region, title) and day from ``first`` to ``last`` (inclusive).

    ``daily``: region, title_id, as_of_date, count_views (the feature table's rows).
    ``availability``: region, title_id pairs of the catalogue. Pairs that were watched
    but are no longer in the catalogue are kept as well: their views happened, and a
    plan that ignored them would overstate the share served locally.
    """
    window = daily.filter((F.col(AS_OF) >= F.lit(first)) & (F.col(AS_OF) <= F.lit(last)))
    pairs = availability.select(REGION, TITLE).unionByName(window.select(REGION, TITLE)).distinct()
    dates = pairs.sparkSession.range(1).select(
        F.explode(F.sequence(F.lit(first), F.lit(last))).alias(DATE)
    )
    observed = window.select(
        REGION, TITLE, F.col(AS_OF).alias(DATE), F.col("count_views").cast("long").alias(VIEWS)
    )
    return (
        pairs.crossJoin(dates)
        .join(observed, [REGION, TITLE, DATE], "left")
        .select(REGION, TITLE, DATE, F.coalesce(F.col(VIEWS), F.lit(0).cast("long")).alias(VIEWS))
    )


def title_attributes(catalogue: DataFrame) -> DataFrame:
    """The title catalogue dimension in the forecast's shape (episodes 0 for movies).

    Release dates of upcoming titles are known before release, so using them for the
    forecast window is not a leak; everything else (kind, genres, cast, runtime) is static.
    """
    return catalogue.select(
        TITLE,
        "kind",
        "genres",
        "cast",
        "release_date",
        "duration_minutes",
        F.coalesce(F.col("episodes"), F.lit(0)).alias("episodes"),
        "available_regions",
    )


def availability(titles: DataFrame) -> DataFrame:
    """(region, title_id) of every title in every region where it is available."""
    return titles.select(TITLE, F.explode("available_regions").alias(REGION)).select(REGION, TITLE)


def contiguous_start(dates: list[dt.date], end: dt.date) -> dt.date:
    """The first day of the unbroken run of dates that ends on ``end``."""
    have = set(dates)
    start = end
    while start - dt.timedelta(days=1) in have:
        start -= dt.timedelta(days=1)
    return start


def load_series(
    spark: SparkSession, lake_root: str, end: dt.date, *, min_days: int, why: str = ""
) -> SeriesData:
    """The dense series up to ``end`` from ``region_title_daily`` and the title catalogue.

    Uses the unbroken run of daily partitions that ends on ``end`` (a missing day would
    read as a day nobody watched anything); fails with the number of days found and
    needed when that run is shorter than ``min_days``.
    """
    store = FeatureStoreReader(spark, lake_root, error=ForecastDataError)
    daily = store.features(SERIES_TABLE, through=end)
    first = _first_day(store.partition_dates(SERIES_TABLE, through=end), end, min_days, why)
    titles = title_attributes(store.dimension("title_catalogue", as_of=end))
    series = dense_series(daily, availability=availability(titles), first=first, last=end)
    log.info(
        "forecast series: %s to %s (%d days), table versions %s",
        first, end, (end - first).days + 1, store.versions,
    )  # fmt: skip
    versions = dict(store.versions)
    return SeriesData(series, titles.drop("available_regions"), first, end, versions)


def _first_day(dates: list[dt.date], end: dt.date, min_days: int, why: str) -> dt.date:
    """The first day of the unbroken run of partitions ending on ``end``, which must
    hold at least ``min_days`` days."""
    if not dates:
        raise ForecastDataError(f"{SERIES_TABLE} has no partition on or before {end}")
    if dates[-1] != end:
        raise ForecastDataError(
            f"{SERIES_TABLE} has no partition for {end} (the latest on or before it is "
            f"{dates[-1]}): build the features for {end} first"
        )
    first = contiguous_start(dates, end)
    days = (end - first).days + 1
    gap = f" (the day before, {first - dt.timedelta(days=1)}, is missing)"
    if first != dates[0]:
        log.warning(
            "%s: days before %s are missing, so the series starts on %s (%d days)",
            SERIES_TABLE, first - dt.timedelta(days=1), first, days,
        )  # fmt: skip
    if days < min_days:
        raise ForecastDataError(
            f"{SERIES_TABLE} holds {days} consecutive days up to {end} ({first} to {end}"
            f"{gap if first != dates[0] else ''}); the forecast needs at least {min_days}"
            f"{': ' + why if why else ''}"
        )
    return first

"""What the artwork policies learn from and are judged on: logged impressions, each with
the variants it was chosen from, the probability of the one shown, and the viewer's
context as the platform knew it before the impression (point in time: the segment of
`profile_daily` as of the day before, the device, the part of the viewer's local day).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feature_store.artwork.contextual import ContextCounts
from feature_store.artwork.policies import (
    MAX_VARIANTS,
    SEGMENT_COUNT,
    Candidates,
    Counts,
    context_index,
)
from feature_store.features.retrieval import FeatureStoreReader
from feature_store.features.training import feature_column_name
from feature_store.sources import ARTWORK_STYLES, DAYPARTS, DEVICES, REGIONS, SEGMENTS

SEGMENT = feature_column_name("profile_daily", "segment")
# The columns of `logged_impressions`
COLUMNS = (
    "session_id",
    "event_date",
    "title_id",
    "artwork_id",
    "variant",  # the shown variant's place among artwork_candidates
    "artwork_candidates",
    "styles",  # the candidates' styles (indices of ARTWORK_STYLES)
    "segment",
    "device",
    "daypart",
    "propensity",
    "clicked",
)


def logged_impressions(reader: FeatureStoreReader, first: dt.date, last: dt.date) -> DataFrame:
    """Impressions with event dates from ``first`` to ``last`` (`COLUMNS`); the viewer's
    segment is profile_daily's latest before the impression's day (within its TTL)."""
    impressions = reader.source("impressions", after=first - dt.timedelta(days=1), through=last)
    spine = impressions.select(
        "session_id",
        "event_date",
        "profile_id",
        F.col("event_ts").alias("ts"),
        "region",
        "device",
        "title_id",
        "artwork_id",
        "artwork_candidates",
        "artwork_propensity",
        "clicked",
    )
    joined = reader.training_set(spine, {"profile_daily": ["segment"]}).frame
    joined = joined.join(F.broadcast(_variant_styles(reader, last)), "title_id", "left")
    return joined.select(
        "session_id",
        "event_date",
        "title_id",
        "artwork_id",
        (F.array_position("artwork_candidates", F.col("artwork_id")) - 1)
        .cast("int")
        .alias("variant"),
        "artwork_candidates",
        F.transform(
            "artwork_candidates",
            lambda a: F.coalesce(F.try_element_at(F.col("style_of"), a), F.lit(-1)),
        ).alias("styles"),
        _index(F.col(SEGMENT), list(SEGMENTS), default=SEGMENT_COUNT - 1).alias("segment"),
        _index(F.col("device"), list(DEVICES), default=0).alias("device"),
        _daypart(F.col("ts"), F.col("region")).alias("daypart"),
        F.col("artwork_propensity").alias("propensity"),
        F.col("clicked").cast("int").alias("clicked"),
    )


def _variant_styles(reader: FeatureStoreReader, as_of: dt.date) -> DataFrame:
    """title_id and style_of (a map from each artwork id to its style's index)."""
    catalogue = reader.dimension("title_catalogue", as_of=as_of)
    index = F.create_map(*[x for i, s in enumerate(ARTWORK_STYLES) for x in (F.lit(s), F.lit(i))])
    return catalogue.select(
        "title_id",
        F.map_from_entries(
            F.transform(
                "artwork", lambda a: F.struct(a["artwork_id"], F.try_element_at(index, a["style"]))
            )
        ).alias("style_of"),
    )


def _index(value: Column, names: list[str], default: int) -> Column:
    """The position of ``value`` in ``names``; ``default`` for anything else."""
    position = F.array_position(F.array(*map(F.lit, names)), value)
    return F.when(position > 0, position - 1).otherwise(default).cast("int")


def _daypart(event_ts: Column, region: Column) -> Column:
    """The part of the viewer's local day (sources.DAYPARTS) from UTC time and region."""
    offsets = F.create_map(*[x for r, (_, h) in REGIONS.items() for x in (F.lit(r), F.lit(h))])
    local = F.pmod(F.hour(event_ts) + F.coalesce(offsets[region], F.lit(0)), 24)
    part = F.lit(len(DAYPARTS) - 1)
    for i, (_, (first_hour, last_hour)) in reversed(list(enumerate(DAYPARTS.items()))):
        part = F.when(local.between(first_hour, last_hour), i).otherwise(part)
    return part.cast("int")


def usable(impressions: DataFrame) -> DataFrame:
    """Impressions a policy can learn from and be judged on: the shown variant found
    among the candidates, every candidate's style known."""
    return impressions.filter(
        (F.col("variant") >= 0)
        & ~F.exists("styles", lambda s: s < 0)
        & (F.size("styles") <= MAX_VARIANTS)
    )


def counts(impressions: DataFrame, titles: pd.Index) -> Counts:
    """Impressions and plays per title x segment x variant, titles in ``titles`` order."""
    rows = (
        usable(impressions)
        .groupBy("title_id", "segment", "variant")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("clicked").alias("plays"))
        .toPandas()
    )
    shape = (len(titles), SEGMENT_COUNT, MAX_VARIANTS)
    impressions_, plays = np.zeros(shape), np.zeros(shape)
    title = titles.get_indexer(rows["title_id"])
    keep = title >= 0
    at = (title[keep], rows["segment"].to_numpy()[keep], rows["variant"].to_numpy()[keep])
    np.add.at(impressions_, at, rows["n"].to_numpy()[keep])
    np.add.at(plays, at, rows["plays"].to_numpy()[keep])
    return Counts(impressions_, plays, title_styles(impressions, titles))


def title_styles(impressions: DataFrame, titles: pd.Index) -> np.ndarray:
    """[titles, MAX_VARIANTS]: each title's variant styles as its impressions list them."""
    rows = usable(impressions).groupBy("title_id").agg(F.first("styles").alias("styles"))
    styles = np.full((len(titles), MAX_VARIANTS), -1, dtype=np.int64)
    for title, title_styles_ in rows.toPandas().itertuples(index=False):
        styles[titles.get_loc(title), : len(title_styles_)] = title_styles_
    return styles


def context_counts(impressions: DataFrame) -> ContextCounts:
    """Impressions and plays per title x context x style: the contextual policy's data."""
    rows = (
        usable(impressions)
        .select(
            "title_id",
            "segment",
            "device",
            "daypart",
            F.element_at("styles", F.col("variant") + 1).alias("style"),
            "clicked",
        )
        .groupBy("title_id", "segment", "device", "daypart", "style")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("clicked").alias("plays"))
        .toPandas()
    )
    context = context_index(rows["segment"], rows["device"], rows["daypart"]).to_numpy()
    group = pd.factorize(rows["title_id"].astype(str) + "|" + pd.Series(context).astype(str))[0]
    return ContextCounts(
        group=group,
        context=context,
        style=rows["style"].to_numpy(np.int64),
        impressions=rows["n"].to_numpy(np.float64),
        plays=rows["plays"].to_numpy(np.float64),
    )


def collect(impressions: DataFrame) -> pd.DataFrame:
    """Usable impressions as flat columns for the policies and estimators: ``cluster``
    (the session, hashed), title_id, variant, style_0.. (-1 past the title's variants),
    segment, device, daypart, propensity, clicked."""
    styles = [
        F.coalesce(F.try_element_at("styles", F.lit(k + 1)), F.lit(-1)).alias(f"style_{k}")
        for k in range(MAX_VARIANTS)
    ]
    return (
        usable(impressions)
        .select(
            F.xxhash64("session_id").alias("cluster"),
            "title_id",
            "variant",
            *styles,
            "segment",
            "device",
            "daypart",
            "propensity",
            "clicked",
        )
        .toPandas()
    )


def candidates(frame: pd.DataFrame, titles: pd.Index) -> Candidates:
    """Candidates of collected impressions (`collect`), titles indexed in ``titles``."""
    styles = frame[[f"style_{k}" for k in range(MAX_VARIANTS)]].to_numpy(np.int64)
    return Candidates(
        title=titles.get_indexer(frame["title_id"]),
        styles=styles,
        segment=frame["segment"].to_numpy(np.int64),
        device=frame["device"].to_numpy(np.int64),
        daypart=frame["daypart"].to_numpy(np.int64),
    )

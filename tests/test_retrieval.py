"""The feature store's one door for models (`features.retrieval.FeatureStoreReader`): each
table read at the version pinned on its first read, feature partitions by date, the title
catalogue as known on a date, label sources by event date, and errors that say what to
build or ingest."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from feature_world import bronze_frame, ts

from feature_store import lake as lk
from feature_store.features.definitions import AS_OF
from feature_store.features.retrieval import FeatureStoreReader, MissingFeatureData
from feature_store.features.tables import TITLE_CATALOGUE


def day(n: int) -> dt.date:
    return dt.date(2026, 1, n)


def cancel(account: str, n: int) -> dict:
    return {"event_ts": ts(f"2026-01-{n:02d}T10:00:00"), "account_id": account,
            "event_type": "cancel"}  # fmt: skip


def write_bronze(spark, lake: lk.Lake, source: str, rows: list[dict], mode: str = "overwrite"):
    frame = bronze_frame(spark, source, rows)
    frame.write.format("delta").mode(mode).partitionBy("event_date").save(lake.bronze(source))


def test_a_source_is_read_at_the_version_of_its_first_read(spark, tmp_path):
    lake = lk.Lake(str(tmp_path / "lake"))
    write_bronze(spark, lake, "subscriptions", [cancel("a1", 1), cancel("a2", 3)])
    store = FeatureStoreReader(spark, lake.root)
    window = store.source("subscriptions", after=day(1), through=day(3))
    assert [r.account_id for r in window.collect()] == ["a2"]

    write_bronze(spark, lake, "subscriptions", [cancel("a3", 2)], mode="append")  # version 1
    again = store.source("subscriptions").select("account_id").orderBy("account_id")
    assert [r.account_id for r in again.collect()] == ["a1", "a2"]  # still version 0
    assert store.versions == {"bronze.subscriptions": 0}
    assert store.source_span("subscriptions") == (day(1), day(3))

    fresh = FeatureStoreReader(spark, lake.root)
    assert fresh.source("subscriptions").count() == 3
    assert fresh.versions == {"bronze.subscriptions": 1}
    rebuilt = FeatureStoreReader(spark, lake.root, versions={"bronze.subscriptions": 0})
    assert rebuilt.source("subscriptions").count() == 2


def test_the_title_catalogue_is_each_titles_newest_record_up_to_the_date(spark, tmp_path):
    lake = lk.Lake(str(tmp_path / "lake"))
    titles = [
        {"event_ts": ts("2026-01-01T08:00:00"), "title_id": "t1", "kind": "movie",
         "genres": ["drama"], "release_date": day(1), "episodes": None},
        {"event_ts": ts("2026-01-05T08:00:00"), "title_id": "t1", "kind": "movie",
         "genres": ["comedy"], "release_date": day(1), "episodes": None},
        {"event_ts": ts("2026-01-07T08:00:00"), "title_id": "t2", "kind": "series",
         "genres": ["kids"], "release_date": day(20), "episodes": 8},
    ]  # fmt: skip
    write_bronze(spark, lake, "titles", titles)
    store = FeatureStoreReader(spark, lake.root)

    def catalogue(as_of: dt.date):
        return store.dimension("title_catalogue", as_of=as_of).select("title_id", "genres")

    schema = "title_id string, genres array<string>"
    assert_df_equality(catalogue(day(3)), spark.createDataFrame([("t1", ["drama"])], schema),
                       ignore_nullable=True)  # fmt: skip
    assert_df_equality(
        catalogue(day(7)),
        spark.createDataFrame([("t1", ["comedy"]), ("t2", ["kids"])], schema),
        ignore_nullable=True,
        ignore_row_order=True,
    )
    full = store.dimension("title_catalogue", as_of=day(7))
    assert tuple(full.columns) == TITLE_CATALOGUE.columns
    assert store.versions == {"bronze.titles": 0}
    with pytest.raises(KeyError, match="unknown dimension 'cast'; declared: title_catalogue"):
        store.dimension("cast", as_of=day(7))


def test_feature_partitions_are_read_by_date_and_missing_tables_name_the_build(spark, tmp_path):
    lake = lk.Lake(str(tmp_path / "lake"))
    rows = spark.createDataFrame(
        [("gb", "t1", day(1), 3), ("gb", "t1", day(2), 5), ("de", "t1", day(4), 1)],
        f"region string, title_id string, {AS_OF} date, count_views long",
    )
    rows.write.format("delta").partitionBy(AS_OF).save(lake.features("region_title_daily"))
    store = FeatureStoreReader(spark, lake.root)
    assert store.partition_dates("region_title_daily") == [day(1), day(2), day(4)]
    assert store.partition_dates("region_title_daily", through=day(3)) == [day(1), day(2)]
    one_day = store.features("region_title_daily", as_of=day(2)).select("count_views")
    assert [r.count_views for r in one_day.collect()] == [5]
    assert store.versions == {"region_title_daily": 0}

    class ModelDataError(RuntimeError):
        pass

    strict = FeatureStoreReader(spark, lake.root, error=ModelDataError)
    with pytest.raises(ModelDataError, match=r"no profile_daily table .*--table profile_daily"):
        strict.features("profile_daily")
    with pytest.raises(MissingFeatureData, match="no bronze viewing table under"):
        store.source("viewing")
    with pytest.raises(KeyError, match="unknown feature table 'daily'"):
        store.features("daily")

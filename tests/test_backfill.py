"""A range of as-of dates built in one pass per table gives the rows of building the
dates one by one; failed dates are quarantined and named; re-running changes nothing.

The world: `feature_world` plus a view across midnight (23:30 on 01-10 to 00:30 on
01-11), a late arrival (a rating of 01-10 ingested on 01-12, appended after the rest),
a gap day where no view starts and nothing else happens (01-11) and a day of new events
(01-12). Built as of 01-10 to 01-12 with every table.
"""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from conftest import make_config
from feature_world import AS_OF, bronze_frame, ts, view_events, world
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features.build import (
    COMMITTED,
    build_feature_range,
    build_features,
)
from feature_store.features.tables import REGISTRY
from jobs import build_features as build_job

pytestmark = pytest.mark.integration

DATES = [AS_OF + dt.timedelta(days=i) for i in range(3)]  # 2026-01-10 to 2026-01-12
LAST = DATES[-1]


def late_events(spark) -> dict:
    """The events that land after the hand-made world, ingested on 01-12."""
    viewing = view_events("p3", "a2", "night", "t1", "2026-01-10T23:30:00", 3600,
                          complete=True, device="tv", hour=23, region="de")  # fmt: skip
    viewing += view_events("p2", "a1", "evening", "t2", "2026-01-12T20:00:00", 1800,
                           complete=False, device="mobile", hour=20, region="gb")  # fmt: skip
    ratings = [
        {"event_ts": ts("2026-01-10T23:50:00"), "account_id": "a2", "profile_id": "p3",
         "title_id": "t1", "thumbs": "up"},
        {"event_ts": ts("2026-01-12T21:00:00"), "account_id": "a1", "profile_id": "p2",
         "title_id": "t2", "thumbs": "down"},
    ]  # fmt: skip
    impressions = [
        {"event_ts": ts("2026-01-12T19:30:00"), "account_id": "a1", "profile_id": "p2",
         "session_id": "s", "title_id": "t1", "artwork_id": "t1-b", "page_row": "top_picks",
         "row_position": 2, "clicked": True, "device": "mobile", "region": "gb"},
    ]  # fmt: skip
    frames = {"viewing": viewing, "ratings": ratings, "impressions": impressions}
    return {
        name: bronze_frame(spark, name, rows)
        .withColumn("event_id", F.concat(F.lit("late-"), "event_id"))
        .withColumn("ingest_date", F.lit(LAST))
        for name, rows in frames.items()
    }


def write_bronze(spark, lake_root: str) -> None:
    lake = lk.Lake(lake_root)
    for name, frame in world(spark).items():
        frame.write.format("delta").partitionBy("event_date").save(lake.bronze(name))
    for name, frame in late_events(spark).items():
        frame.write.format("delta").mode("append").save(lake.bronze(name))


def copy_lake(source, target_dir: Path, *parts: str):
    """A config for a new lake under ``target_dir`` holding ``source``'s folders ``parts``."""
    config = make_config(target_dir)
    for part in parts:
        shutil.copytree(Path(source.lake) / part, Path(config.lake) / part)
    return config


@pytest.fixture(scope="module")
def lakes(spark, tmp_path_factory):
    """The same bronze in two lakes: one built date by date, one as one range."""
    by_date = make_config(tmp_path_factory.mktemp("by-date"))
    write_bronze(spark, by_date.lake)
    one_pass = copy_lake(by_date, tmp_path_factory.mktemp("one-pass"), "bronze")
    daily = {d: build_features(spark, by_date, d) for d in DATES}
    report = build_feature_range(spark, one_pass, DATES)
    return by_date, daily, one_pass, report


def statuses(report) -> list[tuple]:
    return [(b.table, b.as_of, b.status, b.rows) for b in report.builds]


def stored(spark, path: str):
    """A table's rows without the write time, sorted, for a comparison in order."""
    rows = lk.read_table(spark, path).drop("written_at")
    return rows.orderBy(*rows.columns)


def assert_same_tables(spark, config_a, config_b) -> None:
    lake_a, lake_b = lk.Lake(config_a.lake), lk.Lake(config_b.lake)
    for table in REGISTRY.names():
        for where in (lk.Lake.features, lk.Lake.feature_quarantine):
            path_a, path_b = where(lake_a, table), where(lake_b, table)
            assert lk.table_exists(spark, path_a) == lk.table_exists(spark, path_b), path_b
            if lk.table_exists(spark, path_a):
                assert_df_equality(stored(spark, path_a), stored(spark, path_b))


def test_one_pass_gives_each_date_the_outcome_of_its_own_build(lakes):
    _, daily, _, report = lakes
    for as_of in DATES:
        assert statuses(report.for_date(as_of)) == statuses(daily[as_of]), as_of
    # no view starts on the gap day: the one-day table is empty there; on 01-12 its one
    # row is within the bound set by the gap day's computed count (at least min_rows)
    failed = [(b.table, b.as_of) for b in report.builds if b.status != COMMITTED]
    assert failed == [("region_title_daily", DATES[1])]
    assert report.failed_dates == (DATES[1],)
    assert not report.ok
    assert [b.rows for b in report.builds if b.table == "region_title_daily"] == [2, 0, 1]


def test_every_table_holds_the_rows_of_the_date_by_date_build(spark, lakes):
    by_date, _, one_pass, _ = lakes
    assert_same_tables(spark, by_date, one_pass)
    lake = lk.Lake(one_pass.lake)
    views = lk.read_table(spark, lake.features("profile_title_interactions"))
    # the view across midnight: cut as of 01-10 (only its start), whole afterwards
    night = views.filter(F.col("profile_id") == "p3").select("as_of_date", "sum_watch_hours")
    assert sorted(map(tuple, night.collect())) == [(d, 0.0 if d == AS_OF else 1.0) for d in DATES]


def test_the_ops_log_gets_one_record_per_table_and_date_in_one_append(spark, lakes):
    _, _, one_pass, report = lakes
    log = lk.read_table(spark, lk.Lake(one_pass.lake).feature_builds)
    assert log.select("built_at").distinct().count() == 1
    got = sorted((r["table"], r["as_of_date"], r["status"]) for r in log.collect())
    assert got == sorted((b.table, b.as_of, b.status) for b in report.builds)
    assert len(got) == len(REGISTRY) * len(DATES)


def test_rerunning_the_range_changes_nothing(spark, lakes, tmp_path):
    _, _, one_pass, report = lakes
    again = copy_lake(one_pass, tmp_path, "bronze", "features", "quarantine", "silver", "ops")
    rerun = build_feature_range(spark, again, DATES)
    assert statuses(rerun) == statuses(report)
    assert_same_tables(spark, one_pass, again)
    assert rerun.dates == tuple(DATES)


def test_a_failing_date_is_quarantined_and_named_the_others_commit(spark, lakes, tmp_path, capsys):
    """A broken view on the last date: profile_daily fails there and artwork_daily, which
    reads its segments, is skipped there; both commit the other dates."""
    _, _, one_pass, _ = lakes
    config = copy_lake(one_pass, tmp_path, "bronze", "features", "silver", "ops")
    lake = lk.Lake(config.lake)
    tables = ("profile_daily", "artwork_daily")
    before = {t: stored(spark, lake.features(t)).collect() for t in tables}
    broken = view_events("p1", "a1", "broken", "t2", f"{LAST}T09:00:00", -7200,
                         complete=False, device="tv", hour=9, region="gb")  # fmt: skip
    bronze_frame(spark, "viewing", broken).withColumn(
        "event_id", F.concat(F.lit("broken-"), "event_id")
    ).write.format("delta").mode("append").save(lake.bronze("viewing"))

    code = build_job.main(
        ["--start", DATES[0].isoformat(), "--end", LAST.isoformat(),
         "--table", "profile_daily", "--table", "artwork_daily",
         "--set", f"paths.lake={config.lake}", "--set", f"paths.state_dir={config.paths.state_dir}"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert f"{'profile_daily':<28}{2:>10}{1:>8}{0:>9}" in out  # committed, failed, skipped
    assert f"{'artwork_daily':<28}{2:>10}{0:>8}{1:>9}" in out
    assert f"not committed: {LAST.isoformat()};" in out
    assert f"profile_daily {LAST.isoformat()}: failed_validation" in out
    assert (
        f"artwork_daily {LAST.isoformat()}: skipped: not built: upstream profile_daily did not"
        " commit" in out
    )
    assert "sum_watch_hours_1d" in out and "-2" in out  # the check and the observed value
    result = Path(lake.validation_results) / "profile_daily" / LAST.isoformat() / "validation.json"
    assert str(result) in out and result.is_file()

    kept = lk.read_table(spark, lake.feature_quarantine("profile_daily"))
    assert kept.select("as_of_date").distinct().collect() == [(LAST,)]
    assert kept.filter(F.col("profile_id") == "p1").select("sum_watch_hours_1d").collect() == [
        (-2.0,)
    ]
    assert not lk.table_exists(spark, lake.feature_quarantine("artwork_daily"))
    # the good dates rewritten alike, the failed date's earlier partitions untouched
    for table in tables:
        assert stored(spark, lake.features(table)).collect() == before[table], table

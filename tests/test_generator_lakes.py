"""Whole generated lakes of their own: the same seed gives the same files, and a lake
started with history days lands the rest for ingestion. Apart from tests/test_generator.py
(whose tests share one lake) so that another test worker can run these beside it."""

import dataclasses
from pathlib import Path

import pytest
from conftest import TEST_KEY, make_config
from test_generator import SPEC, landing_lines

from feature_store import lake as lk
from feature_store.generator import generate, generate_bronze
from feature_store.ingest import ingest_date
from feature_store.sources import SOURCES


def test_same_seed_gives_identical_files_and_another_seed_does_not(spark, tmp_path):
    small = dataclasses.replace(
        SPEC, seed=5, accounts=120, titles=40, days=2, dirty_share=0.05, sessions_per_day=1.0
    )
    # Different partitioning must not change the data: draws are hashes of keys.
    spark.conf.set("spark.sql.shuffle.partitions", "3")
    generate(spark, str(tmp_path / "a"), small)
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    generate(spark, str(tmp_path / "b"), small)
    generate(spark, str(tmp_path / "c"), dataclasses.replace(small, seed=6))
    a, b, c = (landing_lines(spark, str(tmp_path / x)) for x in "abc")
    assert sum(len(v) for v in a.values()) > 500
    assert a == b
    assert a["viewing"] != c["viewing"] and a["accounts"] != c["accounts"]


def test_history_days_go_straight_to_bronze_and_the_rest_through_landing(spark, tmp_path):
    """A lake started with its history: the first days in bronze at once, the later ones
    as landing files; once those are ingested, bronze holds what generate_bronze writes."""
    spec = dataclasses.replace(SPEC, accounts=200, dirty_share=0.0, late_share=0.0, history_days=2)
    config = make_config(tmp_path / "history")
    generate(spark, config.lake, spec, pseudonymization_key=TEST_KEY)
    landing = Path(config.lake) / "landing" / "viewing"
    assert sorted(p.name for p in landing.iterdir()) == [
        f"date={d.isoformat()}" for d in spec.landing_dates
    ]
    for date in spec.landing_dates:
        ingest_date(spark, config, date)
    direct = str(tmp_path / "direct")
    generate_bronze(spark, direct, spec, pseudonymization_key=TEST_KEY)
    for source in SOURCES:
        columns = [f.name for f in SOURCES[source].bronze_fields] + ["event_date"]
        staged = lk.read_table(spark, lk.Lake(config.lake).bronze(source)).select(*columns)
        written = lk.read_table(spark, lk.Lake(direct).bronze(source)).select(*columns)
        assert staged.exceptAll(written).count() == 0, source
        assert written.exceptAll(staged).count() == 0, source
    with pytest.raises(ValueError, match="pass the pseudonymization key"):
        generate(spark, config.lake, spec)
    with pytest.raises(ValueError, match="history_days must be from 0 to days - 1 = 3"):
        dataclasses.replace(SPEC, history_days=4)

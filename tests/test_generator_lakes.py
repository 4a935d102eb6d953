"""Whole generated lakes: the same seed gives the same files (lakes of their own), and a
lake started with history days lands the rest for ingestion (the shared world)."""

import dataclasses
from pathlib import Path

import pytest
from test_generator import landing_lines
from worlds import WORLD_SPEC

from feature_store import lake as lk
from feature_store.synthetic import generate


def test_same_seed_gives_identical_files_and_another_seed_does_not(spark, tmp_path):
    small = dataclasses.replace(
        WORLD_SPEC,
        history_days=0,
        seed=5,
        accounts=120,
        titles=40,
        days=2,
        dirty_share=0.05,
        sessions_per_day=1.0,
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


def test_history_days_go_straight_to_bronze_and_the_rest_through_landing(spark, generated_world):
    """A lake started with its history (the shared world): the first days in bronze at
    once, clean, the later ones as landing files. That bronze then holds what
    generate_bronze writes is checked in tests/test_generator.py."""
    spec = generated_world.spec
    history = spec.dates[: spec.history_days]
    assert history and spec.landing_dates == spec.dates[spec.history_days :]
    for source in ("viewing", "subscriptions"):
        landing = Path(generated_world.lake) / "landing" / source
        assert sorted(p.name for p in landing.iterdir()) == [
            f"date={d.isoformat()}" for d in spec.landing_dates
        ]
    viewing = lk.read_table(spark, lk.Lake(generated_world.lake).bronze("viewing"))
    by_origin = {
        (
            r["event_date"],
            r["source_file"] == "generate_bronze",
            r["ingest_date"] == r["event_date"],
        )
        for r in viewing.select("event_date", "source_file", "ingest_date").distinct().collect()
    }
    # history rows: written by the generator, "ingested" on their own day; landing days'
    # rows came through ingestion
    assert {d for d, generated, _ in by_origin if generated} == set(history)
    assert all(same_day for _, generated, same_day in by_origin if generated)
    assert {d for d, generated, _ in by_origin if not generated} >= set(spec.landing_dates)
    with pytest.raises(ValueError, match="pass the pseudonymization key"):
        generate(spark, str(Path(generated_world.lake).parent / "never"), spec)
    with pytest.raises(
        ValueError, match=f"history_days must be from 0 to days - 1 = {spec.days - 1}"
    ):
        dataclasses.replace(spec, history_days=spec.days)

"""The scaling fit and sizing table of bench/scaling.py on made-up runs with known growth."""

from __future__ import annotations

import pytest
from conftest import load_bench_module

scaling = load_bench_module("scaling")


def _run(accounts: int, generate: float, recommender: float, *, finished: bool = True) -> dict:
    stages = {
        "generate": {"seconds": generate, "rows": accounts * 70},
        "daily.2026-03-14.build": {"seconds": 10.0, "rows": 1},
        "daily.2026-03-15.build": {"seconds": 12.0, "rows": 1},
    }
    if recommender:
        stages["recommender.train_evaluate"] = {"seconds": recommender, "rows": 1}
    run = {
        "spec": {"accounts": accounts, "days": 70},
        "stages": stages,
        "peak_memory_mib": {"driver_jvm": 2048.0, "python": 1024.0},
    }
    return {**run, "total_seconds": 1.0} if finished else run


def test_exponents_and_projections_follow_the_largest_scales():
    runs = [
        _run(10_000, 100.0 + 0.001 * 10_000, 50.0),  # fixed cost weighs at the small end
        _run(100_000, 100.0 + 0.001 * 100_000, 50.0 * 10**2),  # the recommender: quadratic
        _run(1_000_000, 100.0 + 0.001 * 1_000_000, 50.0 * 100**2, finished=False),
    ]
    out = scaling.scaling(runs)
    generate = out["stages"]["generate"]
    assert generate["exponent"] < 0.9 and generate["growth"] == "sublinear"
    # between 100k and 1M: 200 s -> 1,100 s, b = log10(5.5)
    assert generate["exponent_at_the_top"] == pytest.approx(0.740, abs=1e-3)
    assert generate["projected_hours"]["2000000"] == pytest.approx(1100 * 2**0.7404 / 3600, 1e-2)
    recommender = out["stages"]["recommender.train_evaluate"]
    assert (
        recommender["exponent"] == pytest.approx(2.0)
        and recommender["growth"] == "worse than linear"
    )
    # the daily days add up; the unfinished run has no total, so total has two points
    assert out["stages"]["daily.build"]["seconds"] == {
        "10000": 22.0,
        "100000": 22.0,
        "1000000": 22.0,
    }
    assert set(out["stages"]["total"]["seconds"]) == {"10000", "100000"}


def test_the_sizing_table_has_measured_then_projected_columns():
    runs = [_run(100_000, 200.0, 100.0), _run(1_000_000, 1_100.0, 900.0)]
    table = scaling.sizing_table(runs, scaling.scaling(runs)).splitlines()
    columns = "100,000 | 1,000,000 | 2,000,000* | 5,000,000* | 10,000,000* | 20,000,000*"
    assert table[0] == f"| accounts | {columns} |"
    assert (
        table[2] == "| events per day (bronze rows) | 0.1M | 1.0M | 2.0M | 5.0M | 10.0M | 20.0M |"
    )
    assert table[3].startswith("| peak memory, driver JVM | 2.0 GiB | 2.0 GiB | ? |")
    generate = next(line for line in table if line.startswith("| generate "))
    assert generate.split(" | ")[1:3] == ["0.06", "0.31"]  # hours measured

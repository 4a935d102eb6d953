"""Jobs through their main([...]) entry points, as spark-submit and the CLI run them."""

import datetime as dt
import json

from conftest import make_config

from feature_store import lake as lk
from jobs import generate_data
from jobs.cli import main as cli_main


def common(tmp_path):
    return [
        "-q",
        "--set",
        f"paths.state_dir={tmp_path}",
        "--set",
        f"paths.lake={tmp_path}/lake",
        "--set",
        "spark.show_progress=false",
    ]


def test_generate_job_writes_landing_folders_per_source_and_day(spark, tmp_path, capsys):
    code = generate_data.main(
        [
            "--accounts",
            "80",
            "--titles",
            "40",
            "--days",
            "2",
            "--start-date",
            "2026-02-01",
            "--landing-days",
            "2",
            "--json",
            *common(tmp_path),
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["spec"]["accounts"] == 80 and out["spec"]["start_date"] == "2026-02-01"
    landing = tmp_path / "lake" / "landing"
    assert sorted(p.name for p in (landing / "viewing").iterdir() if p.is_dir()) == [
        "date=2026-02-01",
        "date=2026-02-02",
    ]
    assert out["landing_counts"]["viewing"]["lines"] == sum(
        1 for p in (landing / "viewing").rglob("*.txt") for _ in p.open()
    )


def test_demo_prepares_the_history_the_dags_build_on(spark, tmp_path):
    """make run's first step (the rest is the DAGs, tests/test_dags.py): four days, the
    first two straight into bronze with their region x title series built, the last two
    left as landing files for the daily DAG; the recommender's as-of date (two days before
    the last) is a history day, so its interactions are built too; the report's grid
    reads the build log."""
    from feature_store.synthetic import GenerationSpec, demo, reports

    config = make_config(tmp_path)
    spec = GenerationSpec(
        seed=3,
        accounts=60,
        titles=30,
        days=4,
        start_date=dt.date(2026, 2, 1),
        dirty_share=0.0,
        late_share=0.0,
        sessions_per_day=1.0,
        history_days=2,
    )
    assert demo.prepare(spark, config, spec) == []
    history, landing = spec.dates[:2], spec.landing_dates
    lake = lk.Lake(config.lake)
    viewing = lk.read_table(spark, lake.bronze("viewing"))
    assert sorted(r[0] for r in viewing.select("event_date").distinct().collect()) == history
    assert sorted(p.name for p in (tmp_path / "lake" / "landing" / "viewing").iterdir()) == [
        f"date={d}" for d in landing
    ]
    series = lk.read_table(spark, lake.features("region_title_daily"))
    counts = {r["as_of_date"]: r["count"] for r in series.groupBy("as_of_date").count().collect()}
    assert sorted(counts) == history
    assert demo.recs_dates(spec) == {dt.date(2026, 2, 2), dt.date(2026, 1, 31)}
    # the recommender's date in the history (02-02) gets the profiles it ranks for and the
    # interactions it learns from; the days too short for churn snapshots get nothing more
    grid = reports.feature_log_summary(spark, config.lake, spec.dates).splitlines()
    assert grid[0].split()[-4:] == ["02-01", "02-02", "02-03", "02-04"]
    for line, table in zip(
        grid[1:4], ["account_daily", "profile_daily", "profile_title_interactions"], strict=True
    ):
        rows = lk.read_table(spark, lake.features(table))
        assert [r[0] for r in rows.select("as_of_date").distinct().collect()] == [history[1]]
        assert line.split() == [table, "-", f"{rows.count():,}", "-", "-"]
    assert grid[4].split() == [
        "region_title_daily",
        *(f"{counts[d]:,}" for d in history),
        "-",
        "-",
    ]
    assert grid[-1] == "5 partitions, 0 not committed (validation or input)"


def test_cli_lists_commands_and_rejects_unknown_ones(capsys):
    assert cli_main(["--help"]) == 0
    assert "ingest" in capsys.readouterr().out
    assert cli_main(["frobnicate"]) == 2


def test_bad_config_override_exits_2_with_the_key_named(capsys):
    assert generate_data.main(["--set", "generator.acounts=5"]) == 2
    assert "unknown key 'generator.acounts'" in capsys.readouterr().err

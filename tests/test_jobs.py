"""Jobs through their main([...]) entry points, as spark-submit and the CLI run them."""

import json

from feature_store import lake as lk
from feature_store.cli import main as cli_main
from jobs import generate_data, run_demo


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


def test_demo_job_generates_ingests_and_summarizes(spark, tmp_path, capsys):
    code = run_demo.main(["--accounts", "60", "--titles", "30", "--days", "2", *common(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "bronze table" in out and "quarantine" in out
    viewing = lk.read_table(spark, f"{tmp_path}/lake/bronze/viewing")
    assert viewing.select("ingest_date").distinct().count() == 2


def test_cli_lists_commands_and_rejects_unknown_ones(capsys):
    assert cli_main(["--help"]) == 0
    assert "ingest" in capsys.readouterr().out
    assert cli_main(["frobnicate"]) == 2


def test_bad_config_override_exits_2_with_the_key_named(capsys):
    assert generate_data.main(["--set", "generator.acounts=5"]) == 2
    assert "unknown key 'generator.acounts'" in capsys.readouterr().err

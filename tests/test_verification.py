"""`validate_features` verifies build records instead of re-running every expectation:
real feature builds on the hand-made bronze world, real Delta commits after them."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from conftest import make_config
from delta.tables import DeltaTable
from feature_world import AS_OF, bronze_frame, ts, world
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.features.build import build_features
from feature_store.features.verification import FAILED, REVALIDATED, VERIFIED, verify_recorded
from jobs import validate_features as validate_job

TABLES = ["region_title_daily", "title_daily"]
NEXT = AS_OF + dt.timedelta(days=1)
EARLIER = AS_OF - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """The bronze world and two feature tables built and committed for AS_OF."""
    config = make_config(tmp_path_factory.mktemp("verify"))
    lake = lk.Lake(config.lake)
    for name, frame in world(spark).items():
        frame.write.format("delta").partitionBy("event_date").save(lake.bronze(name))
    report = build_features(spark, config, AS_OF, TABLES)
    assert report.ok, report.format_table()
    return config


def copy_lake(built, tmp_path):
    """A lake of its own for a test that changes it (the build records keep naming the
    original's validation results, which stay as they were)."""
    config = make_config(tmp_path)
    shutil.copytree(Path(built.lake), Path(config.lake))
    return config


def run_job(config, *args: str) -> int:
    return validate_job.main(
        [*args, "--set", f"paths.lake={config.lake}",
         "--set", f"paths.state_dir={config.paths.state_dir}"]
    )  # fmt: skip


def version_of(spark, config, table: str) -> int:
    return lk.table_version(spark, lk.Lake(config.lake).features(table))


def recorded_result(spark, config, table: str) -> Path:
    builds = lk.read_table(spark, lk.Lake(config.lake).feature_builds)
    (row,) = builds.filter((F.col("table") == table) & (F.col("as_of_date") == AS_OF)).collect()
    return Path(row["validation_result"])


def evidence(config, results: list[Path]) -> tuple:
    """What a GX run would change: the result files and the GX validation store."""
    store = Path(config.lake) / "ops" / "validation" / "gx_stores" / "validations"
    return (
        [(p.stat().st_mtime_ns, p.read_text()) for p in results],
        sorted(str(p) for p in store.rglob("*.json")),
    )


def by_table(verdicts):
    return {v.table: v for v in verdicts}


def test_committed_partitions_verify_without_running_expectations(spark, built, capsys):
    results = [recorded_result(spark, built, t) for t in TABLES]
    before = evidence(built, results)

    code = run_job(built, "--date", AS_OF.isoformat(), "--table", TABLES[0], "--table", TABLES[1])

    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{t} 2026-01-10: verified at version {version_of(spark, built, t)}" for t in TABLES
    ]
    assert evidence(built, results) == before  # no expectation ran, nothing was written


def test_a_partition_changed_after_its_build_is_revalidated(spark, built, tmp_path):
    config = copy_lake(built, tmp_path)
    lake = lk.Lake(config.lake)
    path = lake.features("region_title_daily")
    committed = lk.read_table(spark, path).filter(F.col("as_of_date") == AS_OF).localCheckpoint()
    built_version = version_of(spark, config, "region_title_daily")

    # Another date's partition written after the build leaves AS_OF's verdict standing.
    earlier = committed.withColumn("as_of_date", F.lit(EARLIER))
    lk.replace_slice(earlier, path, slice_values={"as_of_date": EARLIER})
    verdicts = by_table(verify_recorded(spark, config, [AS_OF], TABLES))
    assert [(v.status, v.version) for v in verdicts.values()] == [
        (VERIFIED, built_version),
        (VERIFIED, version_of(spark, config, "title_daily")),
    ]

    # A replaceWhere of AS_OF (same rows, rewritten) is a change: its expectations run again.
    lk.replace_slice(committed, path, slice_values={"as_of_date": AS_OF})
    verdicts = by_table(verify_recorded(spark, config, [AS_OF], TABLES))
    region = verdicts["region_title_daily"]
    assert region.status == REVALIDATED
    assert (
        region.reason
        == f"changed after version {built_version}: WRITE at version {built_version + 2}"
    )
    assert region.outcome.success and region.outcome.evaluated == 13
    assert region.line() == (
        "region_title_daily 2026-01-10: re-validated, all 13 checks passed "
        f"(changed after version {built_version}: WRITE at version {built_version + 2})"
    )
    assert verdicts["title_daily"].status == VERIFIED


def test_a_forget_style_delete_is_revalidated(spark, built, tmp_path, capsys):
    config = copy_lake(built, tmp_path)
    path = lk.Lake(config.lake).features("title_daily")
    titles = sorted(r["title_id"] for r in lk.read_table(spark, path).collect())
    assert len(titles) >= 2, titles
    built_version = version_of(spark, config, "title_daily")
    # as forget does it: a MERGE that deletes the matched rows
    forgotten = spark.createDataFrame([(titles[-1],)], "title_id string")
    table = DeltaTable.forPath(spark, path).alias("t")
    table.merge(
        forgotten.alias("s"), F.col("t.title_id") == F.col("s.title_id")
    ).whenMatchedDelete().execute()

    code = run_job(config, "--date", AS_OF.isoformat(), "--table", "title_daily")

    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "title_daily 2026-01-10: re-validated, all 29 checks passed "
        f"(changed after version {built_version}: MERGE at version {built_version + 1})"
    ]


def test_a_changed_partition_that_breaks_a_rule_fails(spark, built, tmp_path, capsys):
    config = copy_lake(built, tmp_path)
    path = lk.Lake(config.lake).features("region_title_daily")
    broken = lk.read_table(spark, path).withColumn("count_views", F.lit(-3).cast("long"))
    lk.replace_slice(broken.localCheckpoint(), path, slice_values={"as_of_date": AS_OF})

    code = run_job(config, "--date", AS_OF.isoformat(), "--table", "region_title_daily")

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].startswith("region_title_daily 2026-01-10: FAILED: changed after version ")
    assert out[0].endswith(
        "checks failed (results "
        + str(
            Path(config.lake).absolute()
            / "ops/validation/region_title_daily/2026-01-10/validation.json"
        )
        + ")"
    )
    assert "; re-validated: 1 of 13 checks failed" in out[0]
    assert out[1] == "region_title_daily 2026-01-10: 1 of 13 checks failed"
    assert out[2] == "  - count_views values >= 0: 1 unexpected of 1 rows (e.g. -3)"


def test_missing_and_quarantined_partitions_fail(spark, built, tmp_path, capsys):
    config = copy_lake(built, tmp_path)
    lake = lk.Lake(config.lake)
    # NEXT's views carry a negative watch time: region_title_daily NEXT goes to quarantine.
    broken = {
        "event_ts": ts("2026-01-11T09:00:00"), "account_id": "a1", "profile_id": "p1",
        "session_id": "s9", "title_id": "t1", "event_type": "stop", "watch_seconds": -7200,
        "device": "tv", "region": "gb", "local_hour": 9,
    }  # fmt: skip
    bronze_frame(spark, "viewing", [broken]).write.format("delta").mode("append").save(
        lake.bronze("viewing")
    )
    report = build_features(spark, config, NEXT, ["region_title_daily"])
    assert [b.status for b in report.builds] == ["failed_validation"]

    code = run_job(
        config, "--start", AS_OF.isoformat(), "--end", NEXT.isoformat(),
        "--table", "region_title_daily", "--table", "title_daily",
    )  # fmt: skip

    assert code == 1
    out = capsys.readouterr().out.splitlines()
    built_at = out[1].split("(")[1].split(")")[0]
    region_version = version_of(spark, config, "region_title_daily")
    assert out == [
        f"region_title_daily 2026-01-10: verified at version {region_version}",
        f"region_title_daily 2026-01-11: FAILED: the latest build attempt ({built_at}) ended "
        "failed_validation, not committed",
        f"title_daily 2026-01-10: verified at version {version_of(spark, config, 'title_daily')}",
        "title_daily 2026-01-11: FAILED: no build of this date recorded in ops/feature_builds",
    ]


def test_a_partition_missing_from_a_table_created_again_fails(spark, built, tmp_path):
    config = copy_lake(built, tmp_path)
    path = lk.Lake(config.lake).features("region_title_daily")
    assert version_of(spark, config, "region_title_daily") == 0  # the build's commit
    rows = lk.read_table(spark, path).withColumn("as_of_date", F.lit(EARLIER)).localCheckpoint()
    shutil.rmtree(path)  # the table made again from scratch, with another date only
    lk.replace_slice(rows, path, slice_values={"as_of_date": EARLIER}, partition_by=["as_of_date"])

    (verdict,) = verify_recorded(spark, config, [AS_OF], ["region_title_daily"])

    assert (verdict.status, verdict.version, verdict.reason) == (
        FAILED,
        0,
        "the commit at version 0 wrote no file of this date; the partition is missing",
    )


def test_a_record_whose_result_is_missing_or_failed_fails(spark, built, tmp_path):
    config = copy_lake(built, tmp_path)
    lake = lk.Lake(config.lake)
    builds = lk.read_table(spark, lake.feature_builds)
    record = builds.filter((F.col("table") == "title_daily") & (F.col("as_of_date") == AS_OF))
    later = F.col("built_at") + F.expr("INTERVAL 1 HOUR")
    gone = tmp_path / "gone.json"
    lk.append(
        record.withColumn("built_at", later).withColumn("validation_result", F.lit(str(gone))),
        lake.feature_builds,
    )
    failed_result = tmp_path / "failed.json"
    failed_result.write_text(json.dumps({"success": False, "results": []}))
    region = builds.filter(
        (F.col("table") == "region_title_daily") & (F.col("as_of_date") == AS_OF)
    )
    lk.append(
        region.withColumn("built_at", later).withColumn(
            "validation_result", F.lit(str(failed_result))
        ),
        lake.feature_builds,
    )

    verdicts = by_table(verify_recorded(spark, config, [AS_OF], TABLES))

    assert [(v.status, v.reason) for v in verdicts.values()] == [
        (FAILED, f"validation result {failed_result} does not say success"),
        (FAILED, f"validation result {gone} is missing"),
    ]


def test_recheck_runs_every_expectation_again(spark, built, capsys):
    result = recorded_result(spark, built, "region_title_daily")
    written = result.stat().st_mtime_ns

    code = run_job(built, "--date", AS_OF.isoformat(), "--table", "region_title_daily", "--recheck")

    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        f"region_title_daily 2026-01-10 (table): passed, 13 checks; results {result}"
    ]
    assert result.stat().st_mtime_ns > written  # the expectations ran and wrote their result
    saved = json.loads(result.read_text())
    assert saved["success"] is True and len(saved["results"]) == 13

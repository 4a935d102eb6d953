"""The DuckDB reference of ingestion (`bench/duckdb_ingest.py`) does what Spark's
`ingest_date` did with the shared world's dirty landing days: the same statuses and
reasons line for line in count, and the same bronze rows value by value."""

from __future__ import annotations

import pytest
from conftest import TEST_KEY, load_bench_module

from feature_store import lake as lk
from feature_store.landing_files import list_landing
from feature_store.sources import SOURCES

pytestmark = pytest.mark.integration


ref = load_bench_module("duckdb_ingest")


@pytest.fixture(scope="module")
def reference(spark, generated_world, tmp_path_factory):
    """Each landing day of the world ingested again by DuckDB: (date, Spark's report,
    DuckDB's counts, DuckDB's output folder, the bronze files Spark wrote)."""
    config, lake = generated_world.config, lk.Lake(generated_world.lake)
    bronze = {s: lk.read_table(spark, lake.bronze(s)).inputFiles() for s in SOURCES}
    days = []
    for report in generated_world.reports:
        out = tmp_path_factory.mktemp(f"duckdb-ingest-{report.date}")
        listings = {n: list_landing(spark, lake.landing(n, report.date)) for n in SOURCES}
        landing = {n: [p for p, _ in x.files] for n, x in listings.items() if x.files}
        con = ref.connect(TEST_KEY, threads=2, memory="2GB")
        counts = ref.ingest_day(
            con,
            landing=landing,
            earlier_bronze=bronze,
            file_date=report.date,
            out=out,
            watermark_days=config.ingest.watermark_days,
            future_tolerance_hours=config.ingest.future_tolerance_hours,
        )
        days.append((report, counts, out, con))
    yield bronze, days
    for *_, con in days:
        con.close()


def test_duckdb_gives_every_line_the_status_and_reason_spark_gave(reference):
    _, days = reference
    for report, counts, _, _ in days:
        for spark_source in report.sources:
            duck = counts[spark_source.source]
            reasons = {k.split(":", 1)[1]: n for k, n in duck.items() if ":" in k}
            assert (spark_source.source, duck.get("bronze", 0), reasons) == (
                spark_source.source,
                spark_source.bronze,
                spark_source.reasons,
            ), report.date
    dirty = {r for report, *_ in days for s in report.sources for r in s.reasons}
    assert {"malformed_json", "wrong_type", "missing_field", "duplicate_in_file"} <= dirty


def test_duckdb_writes_the_bronze_rows_spark_wrote(reference):
    bronze, days = reference
    for report, _, out, con in days:
        for name, source in SOURCES.items():
            if not (out / "bronze" / name).is_dir():
                continue
            columns = ", ".join(f.name for f in source.bronze_fields) + ", event_date"
            spark_files = ", ".join(f"'{f.removeprefix('file:')}'" for f in bronze[name])
            ours = f"SELECT {columns} FROM read_parquet('{out}/bronze/{name}/**/*.parquet')"
            theirs = (
                f"SELECT {columns} FROM read_parquet([{spark_files}], hive_partitioning = true)"
                f" WHERE ingest_date = DATE '{report.date}'"
            )
            differing = con.execute(
                f"SELECT count(*) FROM (({ours} EXCEPT ALL {theirs}) UNION ALL "
                f"({theirs} EXCEPT ALL {ours}))"
            ).fetchone()[0]
            rows = con.execute(f"SELECT count(*) FROM ({ours})").fetchone()[0]
            assert (name, differing) == (name, 0), f"{report.date}: {rows} rows"
            assert rows > 0

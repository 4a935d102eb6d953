"""Bronze ingestion against real Delta tables in a temporary lake."""

import datetime as dt
import json

import pytest
from chispa import assert_df_equality
from conftest import TEST_KEY, make_config, write_landing
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.ingest import IngestError, ingest_date
from feature_store.privacy import pseudonymize_value
from jobs import ingest_events

D1, D2, D3 = dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)


def view(event_id, ts="2026-01-05T20:00:00Z", profile=1, seconds=0, event_type="play"):
    return {
        "event_id": event_id,
        "event_ts": ts,
        "account_id": f"acc{profile:09d}",
        "profile_id": f"acc{profile:09d}-p0",
        "session_id": "s",
        "title_id": "tt0000001",
        "event_type": event_type,
        "watch_seconds": seconds,
        "position_seconds": seconds,
        "device": "tv",
        "region": "gb",
        "local_hour": 20,
    }


@pytest.fixture
def lake_config(tmp_path):
    # Small hand-made files are mostly dirt: allow it, except where the threshold is tested.
    return make_config(tmp_path, "ingest.max_quarantine_share=0.9")


def bronze(spark, config, source="viewing"):
    return lk.read_table(spark, lk.Lake(config.lake).bronze(source))


def quarantine(spark, config):
    return lk.read_table(spark, lk.Lake(config.lake).quarantine)


def test_ingest_writes_typed_pseudonymized_bronze_and_reconciles(spark, lake_config):
    write_landing(
        lake_config.lake,
        "viewing",
        D1,
        [
            view("e1", seconds=0),
            view("e2", seconds=300, event_type="pause"),
            view("e2", seconds=300, event_type="pause"),
            {**view("e3"), "device": "toaster"},
            "",
        ],
    )
    report = ingest_date(spark, lake_config, D1)
    (viewing,) = report.sources
    assert (viewing.lines, viewing.bronze, viewing.quarantined, viewing.duplicates) == (5, 2, 2, 1)
    assert viewing.reasons == {"duplicate_in_file": 1, "unknown_value": 1, "empty_line": 1}
    assert report.committed and viewing.balanced

    account = pseudonymize_value("acc000000001", TEST_KEY)
    expected = spark.createDataFrame(
        [
            ("e1", dt.datetime(2026, 1, 5, 20), account, "play", 0, D1, D1),
            ("e2", dt.datetime(2026, 1, 5, 20), account, "pause", 300, D1, D1),
        ],
        "event_id string, event_ts timestamp, account_id string, event_type string, "
        "watch_seconds int, event_date date, ingest_date date",
    )
    got = bronze(spark, lake_config).select(*expected.columns)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    rejected = quarantine(spark, lake_config).select("source", "ingest_date", "reason", "detail")
    assert sorted(tuple(r) for r in rejected.collect()) == [
        ("viewing", D1, "empty_line", None),
        ("viewing", D1, "unknown_value", "device"),
    ]


def test_rerunning_a_date_changes_nothing(spark, lake_config):
    write_landing(lake_config.lake, "viewing", D1, [view("e1"), view("e2"), "{broken"])
    first = ingest_date(spark, lake_config, D1)
    bronze_before = bronze(spark, lake_config).collect()
    quarantine_before = quarantine(spark, lake_config).collect()
    second = ingest_date(spark, lake_config, D1)
    assert first.sources == second.sources
    assert_df_equality(
        bronze(spark, lake_config),
        spark.createDataFrame(bronze_before, bronze(spark, lake_config).schema),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert sorted(map(tuple, quarantine(spark, lake_config).collect())) == sorted(
        map(tuple, quarantine_before)
    )


def test_rerunning_one_source_keeps_the_other_sources_quarantine(spark, tmp_path):
    lake_config = make_config(tmp_path, "ingest.max_quarantine_share=1.0")
    write_landing(lake_config.lake, "viewing", D1, [view("e1"), "{broken"])
    write_landing(lake_config.lake, "ratings", D1, ["not json"])
    ingest_date(spark, lake_config, D1)
    ingest_date(spark, lake_config, D1, sources=["viewing"])
    rejected = quarantine(spark, lake_config).select("source", "reason")
    assert sorted(tuple(r) for r in rejected.collect()) == [
        ("ratings", "malformed_json"),
        ("viewing", "malformed_json"),
    ]


def test_late_events_join_their_event_date_without_losing_rows(spark, lake_config):
    write_landing(lake_config.lake, "viewing", D1, [view("a"), view("b")])
    write_landing(
        lake_config.lake,
        "viewing",
        D2,
        [view("late", ts="2026-01-05T23:00:00Z"), view("c", ts="2026-01-06T08:00:00Z")],
    )
    for date in (D1, D2, D2):  # D2 twice: re-running the later day keeps D1's own rows
        ingest_date(spark, lake_config, date)
    got = bronze(spark, lake_config).select("event_id", "event_date", "ingest_date")
    expected = spark.createDataFrame(
        [("a", D1, D1), ("b", D1, D1), ("late", D1, D2), ("c", D2, D2)],
        "event_id string, event_date date, ingest_date date",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_events_already_ingested_on_an_earlier_day_are_counted_not_duplicated(spark, lake_config):
    write_landing(lake_config.lake, "viewing", D1, [view("a"), view("b")])
    write_landing(
        lake_config.lake, "viewing", D2, [view("b"), view("c", ts="2026-01-06T08:00:00Z")]
    )
    ingest_date(spark, lake_config, D1)
    report = ingest_date(spark, lake_config, D2)
    assert report.sources[0].reasons == {"duplicate_of_earlier_day": 1}
    ingest_date(spark, lake_config, D1)  # re-running D1 after D2 must not duplicate either
    ids = sorted(r["event_id"] for r in bronze(spark, lake_config).collect())
    assert ids == ["a", "b", "c"]


def test_quarantine_threshold_refuses_the_day_and_keeps_earlier_bronze(spark, tmp_path, capsys):
    lake_config = make_config(tmp_path)  # the default threshold, 5%
    write_landing(lake_config.lake, "viewing", D1, [view("a"), view("b")])
    ingest_date(spark, lake_config, D1)
    table = lk.Lake(lake_config.lake).bronze("viewing")
    version_before = lk.table_version(spark, table)
    write_landing(
        lake_config.lake,
        "viewing",
        D2,
        [view("c", ts="2026-01-06T08:00:00Z"), "{oops", "[]", '{"event_id": 1}'],
    )
    with pytest.raises(
        IngestError, match=r"refused: quarantine share above 5.0% for viewing \(75.0%"
    ):
        ingest_date(spark, lake_config, D2)
    assert lk.table_version(spark, table) == version_before
    assert sorted(r["event_id"] for r in bronze(spark, lake_config).collect()) == ["a", "b"]
    kept = quarantine(spark, lake_config).filter(F.col("ingest_date") == D2).count()
    assert kept == 3  # rejected lines are kept for inspection even though nothing was published
    runs = lk.read_table(spark, lk.Lake(lake_config.lake).ingest_runs)
    refused = runs.filter(F.col("ingest_date") == D2).select("committed", "lines", "quarantined")
    assert [tuple(r) for r in refused.collect()] == [(False, 4, 3)]

    code = ingest_events.main(
        [
            "--date",
            str(D2),
            "--set",
            f"paths.lake={lake_config.lake}",
            "--set",
            f"paths.state_dir={lake_config.paths.state_dir}",
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "refused" in captured.err and "No bronze data was written" in captured.err
    assert "NOT COMMITTED" in captured.out

    # one bad line of three is above the share, but under ingest.min_quarantined_lines:
    # a source with a handful of lines a day is not refused for one stray line
    good = [view("d", ts="2026-01-07T08:00:00Z"), view("e", ts="2026-01-07T09:00:00Z")]
    write_landing(lake_config.lake, "viewing", D3, [*good, "{oops"])
    assert ingest_date(spark, lake_config, D3).committed
    assert {"d", "e"} <= {r["event_id"] for r in bronze(spark, lake_config).collect()}


def test_unreadable_input_is_quarantined_or_reported_and_the_rest_of_the_day_lands(spark, tmp_path):
    config = make_config(tmp_path, "ingest.max_line_bytes=4096", "ingest.max_quarantine_share=1.0")
    write_landing(config.lake, "viewing", D1, [view("good1"), view("good2")], name="a.txt")
    garbage = bytes(b for b in range(256) if b not in b"\r\n") * 3  # binary, on one line
    write_landing(config.lake, "viewing", D1, [garbage, view("good3")], name="b.txt")
    truncated = write_landing(
        config.lake, "viewing", D1, [view("good4"), view("cut")], name="c.txt"
    )
    truncated.write_bytes(truncated.read_bytes()[:-40])
    enormous = json.dumps({**view("huge"), "session_id": "x" * 50_000})
    write_landing(config.lake, "viewing", D1, [enormous], name="d.txt")
    write_landing(
        config.lake, "viewing", D1, [view("good5"), enormous, view("good6")], name="e.txt"
    )

    (viewing,) = ingest_date(spark, config, D1).sources
    assert sorted(r["event_id"] for r in bronze(spark, config).collect()) == [
        "good1",
        "good2",
        "good3",
        "good4",
        "good5",
        "good6",
    ]
    assert viewing.reasons == {"malformed_json": 2, "oversized_line": 2}
    assert viewing.balanced
    oversized = quarantine(spark, config).filter(F.col("reason") == "oversized_line")
    details = sorted(
        (r["source_file"].rsplit("/", 1)[-1], r["detail"]) for r in oversized.collect()
    )
    assert [name for name, _ in details] == ["d.txt", "e.txt"]
    assert all(d.startswith(f"{len(enormous) + 1} bytes") for _, d in details)


def test_gzip_landing_files_are_read(spark, lake_config):
    import gzip

    path = write_landing(lake_config.lake, "viewing", D1, [view("z1"), view("z2")], name="p.txt")
    path.with_suffix(".txt.gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    (viewing,) = ingest_date(spark, lake_config, D1).sources
    assert (viewing.lines, viewing.bronze) == (2, 2)


def test_missing_landing_day_is_a_clear_error(spark, lake_config):
    with pytest.raises(
        IngestError,
        match=r"no landing files for 2026-01-05 under .*landing/<source>/date=2026-01-05",
    ):
        ingest_date(spark, lake_config, D1)


def test_ingest_job_prints_reconciliation_as_json(spark, lake_config, capsys):
    write_landing(
        lake_config.lake,
        "ratings",
        D1,
        [
            {
                "event_id": "r1",
                "event_ts": "2026-01-05T10:00:00Z",
                "account_id": "acc000000001",
                "profile_id": "acc000000001-p0",
                "title_id": "tt1",
                "thumbs": "up",
            },
        ],
    )
    code = ingest_events.main(
        [
            "--date",
            str(D1),
            "--json",
            "-q",
            "--set",
            f"paths.lake={lake_config.lake}",
            "--set",
            f"paths.state_dir={lake_config.paths.state_dir}",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["committed"] is True
    assert out["sources"] == [
        {
            "source": "ratings",
            "lines": 1,
            "bronze": 1,
            "quarantined": 0,
            "duplicates": 0,
            "reasons": {},
            "balanced": True,
            "quarantine_share": 0.0,
        }
    ]

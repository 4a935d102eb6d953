"""Bronze ingestion against real Delta tables in a temporary lake."""

import datetime as dt
import gzip
import json
import stat
import threading
import time
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from conftest import TEST_KEY, make_config, write_landing
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.ingest import IngestError, ingest_date
from feature_store.privacy import pseudonymize_value, suppression_token_value
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


def rating(event_id, profile=1):
    return {
        "event_id": event_id,
        "event_ts": "2026-01-05T10:00:00Z",
        "account_id": f"acc{profile:09d}",
        "profile_id": f"acc{profile:09d}-p0",
        "title_id": "tt1",
        "thumbs": "up",
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
            "suppressed": 0,
            "reasons": {},
            "files": 1,
            "landing_bytes": 153,
            "line_bytes": 153,
            "unread_bytes": {},
            "balanced": True,
            "quarantine_share": 0.0,
        }
    ]


# --------------------------------------------------------------------------- every byte


def _names(rows, column="source_file"):
    return sorted(r[column].rsplit("/", 1)[-1] for r in rows)


def test_plain_and_compressed_files_land_together(spark, lake_config):
    write_landing(lake_config.lake, "viewing", D1, [view("p1"), view("p2")], name="a.txt")
    packed = write_landing(lake_config.lake, "viewing", D1, [view("z1"), "{oops"], name="b.txt")
    packed.with_name("b.txt.gz").write_bytes(gzip.compress(packed.read_bytes()))
    packed.unlink()
    (viewing,) = ingest_date(spark, lake_config, D1).sources
    assert (viewing.lines, viewing.bronze, viewing.quarantined, viewing.files) == (4, 3, 1, 2)
    got = bronze(spark, lake_config).select("event_id", F.col("source_file").endswith(".gz"))
    expected = spark.createDataFrame(
        [("p1", False), ("p2", False), ("z1", True)], "event_id string, packed boolean"
    )
    assert_df_equality(
        got.toDF("event_id", "packed"), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_a_truncated_archive_lands_its_readable_lines_and_reports_the_rest(spark, tmp_path):
    config = make_config(tmp_path, "ingest.max_quarantine_share=1.0")
    sound = write_landing(config.lake, "viewing", D1, [view("plain")], name="a.txt")
    sound.with_name("a.txt.gz").write_bytes(gzip.compress(sound.read_bytes()))
    sound.unlink()
    events = [view(f"g{i:03d}", seconds=i) for i in range(200)]
    whole = write_landing(config.lake, "viewing", D1, events, name="b.txt")
    archive = gzip.compress(whole.read_bytes())
    whole.unlink()
    cut = archive[: len(archive) // 2]
    whole.with_name("b.txt.gz").write_bytes(cut)
    write_landing(config.lake, "ratings", D1, [rating("r1")])
    # What a reader can decode before the cut: whole lines land, the unfinished one does not.
    decoded = zlib.decompressobj(31).decompress(cut)
    readable = decoded.count(b"\n")
    unfinished = len(decoded) - len(decoded.rsplit(b"\n", 1)[0]) - 1
    assert 0 < readable < 200 and unfinished > 0

    report = ingest_date(spark, config, D1)
    viewing, ratings = report.sources
    assert (viewing.lines, viewing.bronze, viewing.quarantined) == (readable + 2, readable + 1, 1)
    assert viewing.reasons == {"corrupt_archive": 1} and viewing.balanced
    assert viewing.unread_bytes == {"corrupt_archive": unfinished}
    assert (ratings.lines, ratings.bronze) == (1, 1)
    ids = sorted(r["event_id"] for r in bronze(spark, config).collect())
    assert ids == [*[f"g{i:03d}" for i in range(readable)], "plain"]
    (record,) = quarantine(spark, config).collect()
    assert (record["reason"], record["raw"], _names([record])) == (
        "corrupt_archive",
        None,
        ["b.txt.gz"],
    )
    assert record["detail"].startswith(f"{unfinished} bytes not read: the {len(cut)}-byte archive")


def test_file_names_with_glob_characters_are_read_as_they_are(spark, lake_config):
    names = ["a[1].txt", "b{x,y}.txt", "c*?.txt", "d%20e f.txt"]
    for i, name in enumerate(names):
        write_landing(lake_config.lake, "viewing", D1, [view(f"e{i}")], name=name)
    (viewing,) = ingest_date(spark, lake_config, D1).sources
    assert (viewing.lines, viewing.bronze, viewing.files) == (4, 4, 4)
    assert sorted(r["event_id"] for r in bronze(spark, lake_config).collect()) == [
        "e0",
        "e1",
        "e2",
        "e3",
    ]


def test_each_oversized_line_is_its_own_record_with_its_size(spark, tmp_path):
    config = make_config(tmp_path, "ingest.max_line_bytes=4096", "ingest.max_quarantine_share=1.0")
    big = json.dumps({**view("big"), "session_id": "x" * 5_000})
    bigger = json.dumps({**view("bigger"), "session_id": "y" * 9_000})
    write_landing(config.lake, "viewing", D1, [view("a"), big, view("b"), bigger], name="p.txt")
    packed = write_landing(config.lake, "viewing", D1, [bigger, view("c")], name="q.txt")
    packed.with_name("q.txt.gz").write_bytes(gzip.compress(packed.read_bytes()))
    packed.unlink()

    (viewing,) = ingest_date(spark, config, D1).sources
    assert (viewing.lines, viewing.bronze, viewing.quarantined) == (6, 3, 3)
    assert viewing.reasons == {"oversized_line": 3} and viewing.balanced
    sizes = [len(big) + 1, len(bigger) + 1, len(bigger) + 1]
    assert viewing.unread_bytes == {"oversized_line": sum(sizes)}
    records = quarantine(spark, config).collect()
    assert {r["raw"] for r in records} == {None}
    got = sorted((_names([r])[0], int(r["detail"].split(" bytes")[0])) for r in records)
    assert got == [("p.txt", len(big) + 1), ("p.txt", len(bigger) + 1), ("q.txt.gz", sizes[2])]
    assert sorted(r["event_id"] for r in bronze(spark, config).collect()) == ["a", "b", "c"]


def test_hidden_files_are_reported_not_skipped_unseen(spark, lake_config):
    shown = write_landing(lake_config.lake, "viewing", D1, [view("a")], name="part-0.txt")
    hidden = [
        write_landing(lake_config.lake, "viewing", D1, [view("h1")], name="_draft.txt"),
        write_landing(lake_config.lake, "viewing", D1, [view("h2")], name=".tmp.txt"),
    ]
    shown.with_name("_SUCCESS").write_bytes(b"")  # Hadoop's marker of a finished write

    (viewing,) = ingest_date(spark, lake_config, D1).sources
    sizes = sorted(p.stat().st_size for p in hidden)
    assert (viewing.lines, viewing.bronze, viewing.quarantined) == (3, 1, 2)
    assert viewing.reasons == {"hidden_file": 2} and viewing.balanced
    assert viewing.unread_bytes == {"hidden_file": sum(sizes), "bookkeeping_file": 0}
    assert viewing.landing_bytes == shown.stat().st_size + sum(sizes)
    records = quarantine(spark, lake_config).collect()
    assert _names(records) == [".tmp.txt", "_draft.txt"]
    assert sorted(int(r["detail"].split(" bytes")[0]) for r in records) == sizes
    runs = lk.read_table(spark, lk.Lake(lake_config.lake).ingest_runs).collect()
    assert [(r["lines"], json.loads(r["unread_bytes"])) for r in runs] == [
        (3, {"hidden_file": sum(sizes), "bookkeeping_file": 0})
    ]


def test_a_later_version_of_an_earlier_event_is_quarantined_not_counted(spark, lake_config):
    write_landing(lake_config.lake, "viewing", D1, [view("same"), view("changed", seconds=10)])
    later = view("changed", seconds=99)
    write_landing(lake_config.lake, "viewing", D2, [view("same"), later])
    ingest_date(spark, lake_config, D1)
    (viewing,) = ingest_date(spark, lake_config, D2).sources
    assert viewing.reasons == {
        "duplicate_of_earlier_day": 1,
        "conflicting_duplicate_of_earlier_day": 1,
    }
    assert (viewing.bronze, viewing.quarantined, viewing.duplicates) == (0, 1, 1)
    got = bronze(spark, lake_config).select("event_id", "watch_seconds", "ingest_date")
    expected = spark.createDataFrame(
        [("same", 0, D1), ("changed", 10, D1)],
        "event_id string, watch_seconds int, ingest_date date",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    (record,) = quarantine(spark, lake_config).collect()
    assert (record["raw"], record["reason"], record["detail"]) == (
        json.dumps(later).encode(),
        "conflicting_duplicate_of_earlier_day",
        "event_id already in bronze from ingest date 2026-01-05 with other content",
    )


def test_the_quarantine_is_bytes_any_parquet_reader_reads_in_an_owner_only_folder(
    spark, lake_config
):
    undecodable = b"\xff\xfe{not utf-8"
    write_landing(lake_config.lake, "viewing", D1, [view("a"), undecodable, "{broken"])
    ingest_date(spark, lake_config, D1)
    folder = Path(lake_config.lake) / "quarantine"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted((folder / "landing_rejects").rglob("*.parquet"))
    assert files
    raws = [raw for f in files for raw in pq.read_table(f).to_pandas()["raw"]]
    assert sorted(raws) == [b"{broken", undecodable]


def test_lines_of_forgotten_members_are_suppressed_everywhere(spark, lake_config):
    lake = lk.Lake(lake_config.lake)
    forgotten = suppression_token_value(pseudonymize_value("acc000000002", TEST_KEY))
    spark.createDataFrame(
        [(forgotten, "req-1", dt.datetime(2026, 1, 4))],
        "token string, request_id string, forgotten_at timestamp",
    ).write.format("delta").save(lake.forgotten_members)
    escaped = json.dumps(view("e4", profile=2)).replace('"acc000000002"', '"\\u0061cc000000002"')
    write_landing(
        lake_config.lake,
        "viewing",
        D1,
        [
            view("e1", profile=1),
            view("e2", profile=2),
            {**view("e3", profile=2), "device": "toaster"},  # would be quarantined
            escaped,
            {**view("e5", profile=1), "device": "toaster"},
        ],
    )
    (viewing,) = ingest_date(spark, lake_config, D1).sources
    assert (viewing.lines, viewing.bronze, viewing.quarantined, viewing.suppressed) == (5, 1, 1, 3)
    assert viewing.balanced and viewing.reasons == {"unknown_value": 1}
    assert [r["event_id"] for r in bronze(spark, lake_config).collect()] == ["e1"]
    assert [json.loads(r["raw"])["event_id"] for r in quarantine(spark, lake_config).collect()] == [
        "e5"
    ]
    runs = lk.read_table(spark, lake.ingest_runs).select("lines", "suppressed", "bronze")
    assert [tuple(r) for r in runs.collect()] == [(5, 3, 1)]


def test_a_concurrent_ingest_of_the_same_date_loses_with_a_clear_message(
    spark, lake_config, tmp_path, monkeypatch, capsys
):
    """The late run's bronze commit is held (its Delta transaction already open) until
    the other run has committed the same date: Delta's conflict, deterministically."""
    write_landing(lake_config.lake, "viewing", D1, [view("a"), view("b")])
    ingest_date(spark, lake_config, D1)  # the tables exist; two re-runs then race
    started, go = tmp_path / "late-started", tmp_path / "go"
    real_replace_slice = lk.replace_slice

    def hold(_):
        import os
        import time

        open(started, "a").close()
        for _ in range(1200):
            if os.path.exists(go):
                break
            time.sleep(0.1)
        return True

    def replace_slice(df, path, **kwargs):
        # the late run's own thread, or a worker it started (named after it)
        if threading.current_thread().name.startswith("late") and "/bronze/" in path:
            held = F.udf(hold, "boolean").asNondeterministic()  # one task, where it is put
            df = df.coalesce(1).filter(held(F.lit(1)))
        real_replace_slice(df, path, **kwargs)

    monkeypatch.setattr(lk, "replace_slice", replace_slice)
    args = [
        "--date",
        str(D1),
        "-q",
        "--set",
        f"paths.lake={lake_config.lake}",
        "--set",
        f"paths.state_dir={lake_config.paths.state_dir}",
        "--set",
        "ingest.max_quarantine_share=0.9",
    ]
    exit_codes = []
    late = threading.Thread(target=lambda: exit_codes.append(ingest_events.main(args)), name="late")
    late.start()
    while not started.exists() and late.is_alive():
        time.sleep(0.1)
    first = ingest_date(spark, lake_config, D1)  # commits while the late run is held
    go.touch()
    late.join(timeout=300)
    assert first.committed and exit_codes == [1]
    err = capsys.readouterr().err
    assert "error: ingest 2026-01-05 stopped: another ingest of this date committed first (" in err
    assert err.rstrip().endswith("); re-run it once the other has finished")
    assert "Traceback" not in err
    assert sorted(r["event_id"] for r in bronze(spark, lake_config).collect()) == ["a", "b"]


def test_views_are_bounded_by_titles_from_bronze_and_from_the_same_day(spark, lake_config):
    # tt0000001 (10 min) lands on D1; tt0000002 (60 min) lands on D2 beside its views.
    write_landing(lake_config.lake, "titles", D1, [catalogue_title("c1", "tt0000001", 10)])
    ingest_date(spark, lake_config, D1)
    write_landing(lake_config.lake, "titles", D2, [catalogue_title("c2", "tt0000002", 60)])
    long_view = {**view("v-long", ts="2026-01-06T20:00:00Z", seconds=1500)}  # > 2 x 10 min
    same_day = {**view("v-ok", ts="2026-01-06T20:00:00Z", seconds=1500), "title_id": "tt0000002"}
    write_landing(lake_config.lake, "viewing", D2, [long_view, same_day])
    report = {s.source: s for s in ingest_date(spark, lake_config, D2).sources}
    assert report["viewing"].reasons == {"implausible_value": 1}
    assert [r["event_id"] for r in bronze(spark, lake_config).collect()] == ["v-ok"]
    (record,) = quarantine(spark, lake_config).filter(F.col("source") == "viewing").collect()
    assert (json.loads(record["raw"])["event_id"], record["detail"]) == ("v-long", "watch_seconds")


def catalogue_title(event_id, title_id, minutes):
    return {
        "event_id": event_id,
        "event_ts": "2026-01-05T00:00:00Z",
        "title_id": title_id,
        "name": "A Title",
        "kind": "movie",
        "genres": ["drama"],
        "cast": ["c1"],
        "release_date": "2020-01-01",
        "duration_minutes": minutes,
        "available_regions": ["gb"],
        "artwork": [{"artwork_id": "a1", "style": "minimal"}],
    }

"""Pure transforms of bronze ingestion: every dirty-record kind gets its reason."""

import datetime as dt
import json

from chispa import assert_df_equality

from feature_store.ingest import classify_lines, deduplicate
from feature_store.privacy import pseudonymize_value
from feature_store.sources import SOURCES

DAY = dt.date(2026, 1, 5)
KEY = "unit-test-key-0123456789"
VIEWING = SOURCES["viewing"]


def view(event_id="e1", **changes):
    record = {
        "event_id": event_id,
        "event_ts": "2026-01-05T20:15:00Z",
        "account_id": "acc000000001",
        "profile_id": "acc000000001-p0",
        "session_id": "s1",
        "title_id": "tt0000001",
        "event_type": "play",
        "watch_seconds": 0,
        "position_seconds": 0,
        "device": "tv",
        "region": "gb",
        "local_hour": 20,
    }
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def classify(spark, lines, source=VIEWING):
    df = spark.createDataFrame([(line, "f1") for line in lines], "value string, source_file string")
    return classify_lines(
        df,
        source=source,
        file_date=DAY,
        pseudonymization_key=KEY,
        watermark_days=7,
        future_tolerance_hours=24,
    )


def test_each_dirty_kind_is_quarantined_with_its_reason(spark):
    lines = [
        view("ok"),
        "",
        '{"event_id": "x", "event_ts": "2026-01-05T2',
        "[1, 2, 3]",
        "\x00\ufffd binary garbage",
        view("missing", title_id=None),
        view("typed", watch_seconds="n/a"),
        view("typed-ts", event_ts="yesterday"),
        view("enum", event_type="rewind"),
        view("enum2", device="smart_fridge"),
        view("future", event_ts="2027-02-09T10:00:00Z"),
        view("old", event_ts="2025-12-20T10:00:00Z"),
        view("late-ok", event_ts="2026-01-02T10:00:00Z"),
        view(None, session_id="no-id"),
    ]
    result = classify(spark, lines).select("raw", "status", "reason", "detail")
    expected = spark.createDataFrame(
        [
            (lines[0], "bronze", None, None),
            ("", "quarantine", "empty_line", None),
            (lines[2], "quarantine", "malformed_json", None),
            (lines[3], "quarantine", "malformed_json", None),
            (lines[4], "quarantine", "malformed_json", None),
            (lines[5], "quarantine", "missing_field", "title_id"),
            (lines[6], "quarantine", "wrong_type", "watch_seconds"),
            (lines[7], "quarantine", "wrong_type", "event_ts"),
            (lines[8], "quarantine", "unknown_value", "event_type"),
            (lines[9], "quarantine", "unknown_value", "device"),
            (lines[10], "quarantine", "future_timestamp", "event_ts"),
            (lines[11], "quarantine", "beyond_watermark", "event_ts"),
            (lines[12], "bronze", None, None),
            (lines[13], "quarantine", "missing_field", "event_id"),
        ],
        "raw string, status string, reason string, detail string",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_accepted_rows_are_typed_pseudonymized_and_dated(spark):
    result = classify(spark, [view("ok", watch_seconds=61, event_ts="2026-01-04T23:59:59Z")])
    row = result.select(
        "event_id",
        "event_ts",
        "account_id",
        "profile_id",
        "watch_seconds",
        "event_date",
        "ingest_date",
    ).first()
    assert row["event_ts"] == dt.datetime(2026, 1, 4, 23, 59, 59)
    assert row["watch_seconds"] == 61
    assert row["account_id"] == pseudonymize_value("acc000000001", KEY)
    assert row["profile_id"] == pseudonymize_value("acc000000001-p0", KEY)
    assert (row["event_date"], row["ingest_date"]) == (dt.date(2026, 1, 4), DAY)


def test_pii_fields_are_dropped_from_bronze_columns(spark):
    account = json.dumps(
        {
            "event_id": "a1",
            "event_ts": "2026-01-05T01:00:00Z",
            "account_id": "acc000000009",
            "country": "GB",
            "region": "gb",
            "plan": "basic",
            "signup_date": "2025-03-01",
            "household_size": 2,
            "email": "someone@example.com",
            "full_name": "Some One",
        }
    )
    result = classify(spark, [account], SOURCES["accounts"])
    assert {"email", "full_name", "phone"}.isdisjoint(result.columns)
    assert result.first()["status"] == "bronze"


def test_array_fields_are_type_checked(spark):
    title = {
        "event_id": "t1",
        "event_ts": "2026-01-05T01:00:00Z",
        "title_id": "tt1",
        "name": "N",
        "kind": "movie",
        "genres": ["drama"],
        "cast": ["p1"],
        "release_date": "2020-01-01",
        "duration_minutes": 90,
        "available_regions": ["gb"],
        "artwork": [{"artwork_id": "tt1-a0", "style": "dark"}],
    }
    bad = {**title, "event_id": "t2", "genres": "drama"}
    result = classify(spark, [json.dumps(title), json.dumps(bad)], SOURCES["titles"])
    got = {
        r["event_id"] or "?": (r["status"], r["reason"], r["detail"], r["genres"])
        for r in result.collect()
    }
    assert got == {
        "t1": ("bronze", None, None, ["drama"]),
        # the typed value of a mistyped field is null; the raw line is kept in quarantine
        "t2": ("quarantine", "wrong_type", "genres", None),
    }


def test_deduplicate_counts_copies_and_quarantines_conflicts(spark):
    original = view("dup", event_ts="2026-01-05T20:15:00Z")
    conflict = view("dup", event_ts="2026-01-05T20:15:01Z")
    lines = [original, original, conflict, view("seen"), view("fresh"), "not json"]
    earlier = spark.createDataFrame([("seen",), ("other",)], "event_id string")
    result = deduplicate(classify(spark, lines), source=VIEWING, earlier_ids=earlier)
    expected = spark.createDataFrame(
        [
            (original, "bronze", None),
            (original, "duplicate", "duplicate_in_file"),
            (conflict, "quarantine", "conflicting_duplicate"),
            (view("seen"), "duplicate", "duplicate_of_earlier_day"),
            (view("fresh"), "bronze", None),
            ("not json", "quarantine", "malformed_json"),
        ],
        "raw string, status string, reason string",
    )
    assert_df_equality(
        result.select("raw", "status", "reason"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )

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


def classify(spark, lines, source=VIEWING, **references):
    df = spark.createDataFrame([(line, "f1") for line in lines], "value string, source_file string")
    return classify_lines(
        df,
        source=source,
        file_date=DAY,
        pseudonymization_key=KEY,
        watermark_days=7,
        future_tolerance_hours=24,
        **references,
    )


def outcomes(spark, result, lines):
    """`raw, status, reason, detail` of the classified lines, beside the expected ones."""
    got = result.select("raw", "status", "reason", "detail")
    expected = spark.createDataFrame(
        lines, "raw string, status string, reason string, detail string"
    )
    return got, expected


def title(event_id="t1", **changes):
    record = {
        "event_id": event_id,
        "event_ts": "2026-01-05T01:00:00Z",
        "title_id": "tt1",
        "name": "Silent River 1",
        "kind": "movie",
        "genres": ["drama"],
        "cast": ["p000001"],
        "release_date": "2020-01-01",
        "duration_minutes": 90,
        "available_regions": ["gb"],
        "artwork": [{"artwork_id": "tt1-a0", "style": "dark"}],
    }
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not None})


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


def test_implausible_values_are_quarantined_with_the_field(spark):
    lines = [
        view("edges", watch_seconds=86_400, position_seconds=0, local_hour=23),
        view("midnight", local_hour=0, session_id="a.b:c_d-E9"),
        view("neg-watch", watch_seconds=-7200),
        view("neg-position", position_seconds=-1),
        view("long-watch", watch_seconds=86_401),
        view("hour", local_hour=99),
        view("hour-neg", local_hour=-1),
        view("huge-id", session_id="s" * 900_000),
        view("nul-id", session_id="s\x00"),
        view("space-id", title_id="tt 1"),
        view("empty-id", session_id=""),
        view("nul-enum", device="tv\x00"),
        view("bad id\n"),
    ]
    got, expected = outcomes(
        spark,
        classify(spark, lines),
        [
            (lines[0], "bronze", None, None),
            (lines[1], "bronze", None, None),
            (lines[2], "quarantine", "implausible_value", "watch_seconds"),
            (lines[3], "quarantine", "implausible_value", "position_seconds"),
            (lines[4], "quarantine", "implausible_value", "watch_seconds"),
            (lines[5], "quarantine", "implausible_value", "local_hour"),
            (lines[6], "quarantine", "implausible_value", "local_hour"),
            (lines[7], "quarantine", "implausible_value", "session_id"),
            (lines[8], "quarantine", "implausible_value", "session_id"),
            (lines[9], "quarantine", "implausible_value", "title_id"),
            (lines[10], "quarantine", "implausible_value", "session_id"),
            (lines[11], "quarantine", "unknown_value", "device"),
            (lines[12], "quarantine", "implausible_value", "event_id"),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_json_object_or_array_where_a_scalar_belongs_is_a_wrong_type(spark):
    lines = [
        view("object-id", title_id={"$oid": "tt1"}),
        view("array-id", session_id=["s1"]),
        view("object-number", watch_seconds={"value": 1}),
        view("empty-object", account_id={}),
        # a string that merely looks like JSON is a string, judged by its characters
        view("json-text", session_id='{"a":1}'),
        view("ok", title_id="tt1"),
    ]
    got, expected = outcomes(
        spark,
        classify(spark, lines),
        [
            (lines[0], "quarantine", "wrong_type", "title_id"),
            (lines[1], "quarantine", "wrong_type", "session_id"),
            (lines[2], "quarantine", "wrong_type", "watch_seconds"),
            (lines[3], "quarantine", "wrong_type", "account_id"),
            (lines[4], "quarantine", "implausible_value", "session_id"),
            (lines[5], "bronze", None, None),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_watch_and_position_are_bounded_by_the_title_duration(spark):
    # tt1 has two versions: the longer one bounds (watch <= 2 x 40 min, position <= 1.5 x).
    titles = spark.createDataFrame(
        [("tt1", 30), ("tt1", 40), ("tt2", None)], "title_id string, duration_minutes int"
    )
    lines = [
        view("w-max", title_id="tt1", watch_seconds=4_800, position_seconds=3_600),
        view("w-over", title_id="tt1", watch_seconds=4_801),
        view("p-over", title_id="tt1", position_seconds=3_601),
        view("unknown", title_id="tt9", watch_seconds=86_400, position_seconds=86_400),
        view("unknown-over", title_id="tt9", watch_seconds=86_401),
        view("no-duration", title_id="tt2", watch_seconds=50_000),
    ]
    got, expected = outcomes(
        spark,
        classify(spark, lines, references={"titles": titles}),
        [
            (lines[0], "bronze", None, None),
            (lines[1], "quarantine", "implausible_value", "watch_seconds"),
            (lines[2], "quarantine", "implausible_value", "position_seconds"),
            (lines[3], "bronze", None, None),
            (lines[4], "quarantine", "implausible_value", "watch_seconds"),
            (lines[5], "bronze", None, None),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert VIEWING.referenced_sources == ("titles",)


def test_a_key_written_twice_is_quarantined_with_the_key(spark):
    twice = view("twice")[:-1] + ', "watch_seconds": 9}'
    escaped = view("escaped")[:-1] + ', "\\u0064evice": "web"}'
    lines = [
        twice,
        escaped,
        # two records glued together, or text after the object: the rest would be lost
        view("glued") + view("second"),
        view("trailing") + " and more",
        view("spaces") + "  ",
    ]
    nested = title("nested", artwork=[{"artwork_id": "tt1-a0", "style": "dark"}])
    nested = nested.replace('"style": "dark"', '"style": "dark", "style": "bright"')
    got, expected = outcomes(
        spark,
        classify(spark, lines),
        [
            (twice, "quarantine", "duplicate_key", "watch_seconds"),
            (escaped, "quarantine", "duplicate_key", "device"),
            (lines[2], "quarantine", "malformed_json", None),
            (lines[3], "quarantine", "malformed_json", None),
            (lines[4], "bronze", None, None),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    got, expected = outcomes(
        spark,
        classify(spark, [nested, title("plain")], SOURCES["titles"]),
        [
            (nested, "quarantine", "duplicate_key", "artwork.style"),
            (title("plain"), "bronze", None, None),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_array_items_strings_and_dates_follow_the_declared_rules(spark):
    lines = [
        title("ok", genres=["drama", "comedy"], cast=["p000001", "p000002"]),
        title("genre", genres=["drama", "podcast"]),
        title("null-item", cast=["p000001", None]),
        title("many", cast=[f"p{i:06d}" for i in range(501)]),
        title("art", artwork=[{"artwork_id": "tt1-a0\x00", "style": "dark"}]),
        title("name", name="Silent\tRiver"),
        title("broken-bytes", name="Silent \ufffd River"),
        title("duration", duration_minutes=0),
        title("episodes", episodes=0),
        title("release", release_date="1066-10-14"),
        title("unicode", name="Amélie 東京 ✨"),
    ]
    got, expected = outcomes(
        spark,
        classify(spark, lines, SOURCES["titles"]),
        [
            (lines[0], "bronze", None, None),
            (lines[1], "quarantine", "unknown_value", "genres"),
            (lines[2], "quarantine", "wrong_type", "cast"),
            (lines[3], "quarantine", "implausible_value", "cast"),
            (lines[4], "quarantine", "implausible_value", "artwork"),
            (lines[5], "quarantine", "implausible_value", "name"),
            (lines[6], "quarantine", "implausible_value", "name"),
            (lines[7], "quarantine", "implausible_value", "duration_minutes"),
            (lines[8], "quarantine", "implausible_value", "episodes"),
            (lines[9], "quarantine", "implausible_value", "release_date"),
            (lines[10], "bronze", None, None),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_pii_fields_are_checked_before_they_are_dropped(spark):
    account = {
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
    lines = [
        json.dumps(account),
        json.dumps({**account, "event_id": "a2", "email": "some\x00one@example.com"}),
        json.dumps({**account, "event_id": "a3", "country": "GBR"}),
        json.dumps({**account, "event_id": "a4", "household_size": 0}),
    ]
    got, expected = outcomes(
        spark,
        classify(spark, lines, SOURCES["accounts"]),
        [
            (lines[0], "bronze", None, None),
            (lines[1], "quarantine", "implausible_value", "email"),
            (lines[2], "quarantine", "implausible_value", "country"),
            (lines[3], "quarantine", "implausible_value", "household_size"),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_each_source_describes_its_fields_and_rules():
    lines = VIEWING.describe().splitlines()
    assert lines[0] == "viewing: Playback events: play, pause, stop, complete."
    assert [line.split()[0] for line in lines[1:]] == [f.name for f in VIEWING.fields]
    by_field = {line.split()[0]: line for line in lines[1:]}
    assert by_field["local_hour"].endswith("required                0 <= value <= 23")
    assert by_field["watch_seconds"].endswith(
        "0 <= value <= 86400; <= 120 x titles.duration_minutes of its title_id"
    )
    assert by_field["session_id"].endswith("id: 1-64 of [A-Za-z0-9_.:-]")
    assert by_field["device"].endswith("one of tv, mobile, tablet, web")


def impression(event_id="i1", **changes):
    record = {
        "event_id": event_id,
        "event_ts": "2026-01-05T20:15:00Z",
        "account_id": "acc000000001",
        "profile_id": "acc000000001-p0",
        "session_id": "s1",
        "title_id": "tt1",
        "artwork_id": "tt1-a1",
        "artwork_candidates": ["tt1-a0", "tt1-a1", "tt1-a2"],
        "artwork_propensity": 0.25,
        "page_row": "top_picks",
        "row_position": 3,
        "clicked": False,
        "device": "tv",
        "region": "gb",
    }
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def test_an_impression_must_log_the_artwork_it_chose_and_with_what_probability(spark):
    """The propensity lies in (0, 1] and the shown variant is one of the candidates, or
    the impression could not serve an unbiased evaluation."""
    lines = [
        impression("ok"),
        impression("sure", artwork_propensity=1.0),
        impression("zero", artwork_propensity=0.0),
        impression("negative", artwork_propensity=-0.1),
        impression("above-one", artwork_propensity=1.5),
        impression("nan", artwork_propensity="NaN"),
        impression("text", artwork_propensity="high"),
        impression("unlisted", artwork_id="tt1-a9"),
        impression("no-candidates", artwork_candidates=[]),
        impression("missing", artwork_propensity=None),
    ]
    got, expected = outcomes(
        spark,
        classify(spark, lines, SOURCES["impressions"]),
        [
            (lines[0], "bronze", None, None),
            (lines[1], "bronze", None, None),
            (lines[2], "quarantine", "implausible_value", "artwork_propensity"),
            (lines[3], "quarantine", "implausible_value", "artwork_propensity"),
            (lines[4], "quarantine", "implausible_value", "artwork_propensity"),
            (lines[5], "quarantine", "implausible_value", "artwork_propensity"),
            (lines[6], "quarantine", "wrong_type", "artwork_propensity"),
            (lines[7], "quarantine", "implausible_value", "artwork_id"),
            (lines[8], "quarantine", "implausible_value", "artwork_id"),
            (lines[9], "quarantine", "missing_field", "artwork_propensity"),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)

"""The validation gate: suites derived from declarations, and real Great Expectations
runs on the session Spark against tiny partitions of region_title_daily."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import types as T

from feature_store.features.definitions import Entity, FeatureColumn, FeatureTable
from feature_store.features.tables import REGION_TITLE_DAILY
from feature_store.features.validation import (
    RULE_ALLOWED,
    RULE_FRESHNESS,
    RULE_NOT_NULL,
    RULE_RANGE,
    RULE_ROW_COUNT,
    RULE_UNIQUE_KEY,
    build_suite,
    freshness_bounds,
    row_count_bounds,
    validate_partition,
    validate_partitions,
)

AS_OF_DATE = dt.date(2026, 1, 7)
WRITTEN = dt.datetime(2026, 1, 8, 2, 0)

SMALL = FeatureTable(
    name="small_daily",
    entity=Entity("thing", ("thing_id",), "a thing"),
    keys=("thing_id",),
    description="a small table for suite tests",
    owner="tests",
    ttl_days=1,
    lookback_days=1,
    sources=("things",),
    columns=(
        FeatureColumn("thing_id", "string", "id"),
        FeatureColumn("colour", "string", "colour", allowed=("red", "blue")),
        FeatureColumn("share", "double", "a share", nullable=True, min_value=0, max_value=1),
        FeatureColumn("count_things", "long", "a count", min_value=0),
        FeatureColumn("note", "string", "free text", nullable=True),
        FeatureColumn("last_seen_ts", "timestamp", "last seen"),
    ),
    freshness_column="last_seen_ts",
    max_staleness_hours=24,
    max_row_change=0.2,
    min_rows=5,
)


def _by_rule(suite) -> dict[tuple[str, str | None], object]:
    found = {}
    for e in suite.expectations:
        column = getattr(e, "column", None) or (
            ", ".join(e.column_list) if hasattr(e, "column_list") else None
        )
        key = (e.meta["rule"], column)
        assert key not in found, f"duplicate check {key}"
        found[key] = e
    return found


# ------------------------------------------------------------------ suite (no Spark)


def test_suite_is_derived_from_the_declarations():
    suite = build_suite(SMALL, as_of=AS_OF_DATE, previous_row_count=None)
    checks = _by_rule(suite)
    assert sorted(checks) == sorted(
        [
            (RULE_NOT_NULL, "thing_id"),
            (RULE_NOT_NULL, "colour"),
            (RULE_NOT_NULL, "count_things"),
            (RULE_NOT_NULL, "last_seen_ts"),
            (RULE_ALLOWED, "colour"),
            (RULE_RANGE, "share"),
            (RULE_RANGE, "count_things"),
            (RULE_UNIQUE_KEY, "thing_id"),
            (RULE_ROW_COUNT, None),
            (RULE_FRESHNESS, "last_seen_ts"),
        ]
    )  # nothing for the nullable free-text column, no not-null for nullable `share`
    assert suite.name == "small_daily"
    share = checks[(RULE_RANGE, "share")]
    assert (share.expectation_type, share.min_value, share.max_value) == (
        "expect_column_values_to_be_between",
        0,
        1,
    )
    count = checks[(RULE_RANGE, "count_things")]
    assert (count.min_value, count.max_value) == (0, None)
    assert count.meta["check"] == "count_things values >= 0"
    assert checks[(RULE_ALLOWED, "colour")].value_set == ["red", "blue"]
    assert (
        checks[(RULE_UNIQUE_KEY, "thing_id")].expectation_type
        == "expect_column_values_to_be_unique"
    )
    rows = checks[(RULE_ROW_COUNT, None)]
    assert (rows.min_value, rows.max_value) == (5, None)
    fresh = checks[(RULE_FRESHNESS, "last_seen_ts")]
    assert fresh.expectation_type == "expect_column_max_to_be_between"
    # UTC machine in CI; the bounds are in PySpark's local frame
    assert fresh.min_value == dt.datetime(2026, 1, 7, 0, 0)
    assert fresh.max_value == dt.datetime(2026, 1, 9, 0, 0)
    assert fresh.meta["check"] == (
        "max(last_seen_ts) between 2026-01-07 00:00 UTC and 2026-01-09 00:00 UTC"
        " (at most 24 h before the end of 2026-01-07)"
    )


def test_compound_keys_are_checked_together():
    suite = build_suite(REGION_TITLE_DAILY, as_of=AS_OF_DATE, previous_row_count=None)
    unique = [e for e in suite.expectations if e.meta["rule"] == RULE_UNIQUE_KEY]
    assert len(unique) == 1
    assert unique[0].expectation_type == "expect_compound_columns_to_be_unique"
    assert unique[0].column_list == ["region", "title_id"]


@pytest.mark.parametrize(
    "previous, expected",
    [
        (None, (5, None)),
        (100, (80, 120)),  # ±20%
        (5, (5, 6)),  # min_rows dominates the lower bound
        (0, (5, 5)),  # a previous partition below min_rows: min_rows wins
        (7, (6, 8)),  # 5.6 -> 6, 8.4 -> 8
    ],
)
def test_row_count_bounds(previous, expected):
    low, high, why = row_count_bounds(SMALL, previous)
    assert (low, high) == expected
    assert why.startswith("at least 5")


def test_a_tiny_previous_partition_still_builds_a_valid_suite():
    suite = build_suite(SMALL, as_of=AS_OF_DATE, previous_row_count=1)
    (rows,) = [e for e in suite.expectations if e.meta["rule"] == RULE_ROW_COUNT]
    assert (rows.min_value, rows.max_value) == (5, 5)


def test_freshness_bounds_are_utc_day_ends():
    earliest, latest = freshness_bounds(REGION_TITLE_DAILY, AS_OF_DATE)
    assert earliest == dt.datetime(2026, 1, 6, 0, 0, tzinfo=dt.UTC)  # 48 h before 01-08 00:00
    assert latest == dt.datetime(2026, 1, 9, 0, 0, tzinfo=dt.UTC)


# ------------------------------------------------------------ real GX on Spark


def _frame(spark, rows):
    """A cached partition in the stored schema, nullable everywhere so the tests can feed
    the gate what a buggy build would (the declared types need a running session)."""
    schema = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in REGION_TITLE_DAILY.schema.fields]
    )
    return spark.createDataFrame(rows, schema).cache()


def _rows(*rows):
    return [(*row, AS_OF_DATE, WRITTEN) for row in rows]


CLEAN = _rows(
    ("gb", "t1", 3, 1.5, 2, dt.datetime(2026, 1, 7, 22, 15)),
    ("gb", "t2", 1, 0.25, 1, dt.datetime(2026, 1, 7, 9, 0)),
    ("de", "t1", 2, 2.0, 2, dt.datetime(2026, 1, 7, 18, 30)),
)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("validation")


@pytest.fixture(scope="module")
def clean_run(spark, results_dir):
    df = _frame(spark, CLEAN)
    outcome = validate_partition(
        REGION_TITLE_DAILY, df, as_of=AS_OF_DATE, previous_row_count=3, results_dir=results_dir
    )
    saved = json.loads(outcome.result_path.read_text())
    df.unpersist()
    return outcome, saved


@pytest.mark.integration
def test_clean_partition_passes_and_leaves_evidence(clean_run, results_dir):
    outcome, saved = clean_run
    expected_checks = len(
        build_suite(REGION_TITLE_DAILY, as_of=AS_OF_DATE, previous_row_count=3).expectations
    )
    assert outcome.success is True
    assert outcome.failed == ()
    assert outcome.evaluated == expected_checks == 13
    assert outcome.table == "region_title_daily"
    assert outcome.as_of == AS_OF_DATE
    assert outcome.summary() == "region_title_daily 2026-01-07: all 13 checks passed"
    assert outcome.result_path == results_dir / "region_title_daily" / "2026-01-07" / (
        "validation.json"
    )
    assert saved["success"] is True
    assert len(saved["results"]) == 13
    by_rule = {r["expectation_config"]["meta"]["rule"]: r for r in saved["results"]}
    assert by_rule[RULE_ROW_COUNT]["result"]["observed_value"] == 3
    assert outcome.docs_path == results_dir / "data_docs" / "index.html"
    assert outcome.docs_path.is_file()
    assert "region_title_daily" in outcome.docs_path.read_text()


@pytest.mark.integration
def test_broken_values_are_each_named_with_what_was_seen(spark, results_dir, clean_run):
    dirty = _rows(
        ("gb", "t1", 3, 1.5, 2, dt.datetime(2026, 1, 7, 22, 15)),
        ("gb", "t1", 1, 0.25, 1, dt.datetime(2026, 1, 7, 9, 0)),  # duplicate key
        ("zz", "t3", -4, 2.0, 2, dt.datetime(2026, 1, 7, 18, 30)),  # bad region, negative
        ("de", "t4", 2, 2.0, None, dt.datetime(2026, 1, 7, 18, 30)),  # null viewers
    )
    df = _frame(spark, dirty)
    outcome = validate_partition(
        REGION_TITLE_DAILY, df, as_of=AS_OF_DATE, previous_row_count=4, results_dir=results_dir
    )
    df.unpersist()

    assert outcome.success is False
    failed = {(f.rule, f.column): f for f in outcome.failed}
    assert sorted(failed) == sorted(
        [
            (RULE_NOT_NULL, "count_unique_viewers"),
            (RULE_RANGE, "count_views"),
            (RULE_ALLOWED, "region"),
            (RULE_UNIQUE_KEY, "region, title_id"),
        ]
    )
    assert failed[(RULE_NOT_NULL, "count_unique_viewers")].observed == "1 null of 4 rows"
    assert failed[(RULE_RANGE, "count_views")].observed == "1 unexpected of 4 rows (e.g. -4)"
    assert failed[(RULE_ALLOWED, "region")].observed == "1 unexpected of 4 rows (e.g. 'zz')"
    assert failed[(RULE_UNIQUE_KEY, "region, title_id")].observed == (
        "2 unexpected of 4 rows (e.g. ('gb', 't1'))"
    )
    assert failed[(RULE_RANGE, "count_views")].expectation == ("expect_column_values_to_be_between")

    summary = outcome.summary().splitlines()
    assert summary[0] == "region_title_daily 2026-01-07: 4 of 13 checks failed"
    assert "  - count_views values >= 0: 1 unexpected of 4 rows (e.g. -4)" in summary
    assert "  - count_unique_viewers not null: 1 null of 4 rows" in summary
    assert (
        "  - region, title_id unique per as_of_date: 2 unexpected of 4 rows (e.g. ('gb', 't1'))"
        in summary
    )  # noqa: E501
    assert any(line.startswith("  - region values in {us-east,") for line in summary)

    # the same as-of date: the result file is overwritten, and it carries the examples
    saved = json.loads(outcome.result_path.read_text())
    assert saved["success"] is False
    ranges = [
        r
        for r in saved["results"]
        if r["expectation_config"]["kwargs"].get("column") == "count_views"
        and r["expectation_config"]["meta"]["rule"] == RULE_RANGE
    ]
    assert ranges[0]["result"]["unexpected_count"] == 1
    assert ranges[0]["result"]["partial_unexpected_list"] == [-4]


@pytest.mark.integration
def test_row_count_jump_and_stale_partition_fail(spark, results_dir):
    stale = _rows(
        ("gb", "t1", 3, 1.5, 2, dt.datetime(2026, 1, 5, 10, 0)),
        ("gb", "t2", 1, 0.25, 1, dt.datetime(2026, 1, 5, 23, 59)),
        ("de", "t1", 2, 2.0, 2, dt.datetime(2026, 1, 4, 18, 30)),
    )
    df = _frame(spark, stale)
    outcome = validate_partition(
        REGION_TITLE_DAILY, df, as_of=AS_OF_DATE, previous_row_count=10, results_dir=results_dir
    )
    df.unpersist()

    assert outcome.success is False
    failed = {f.rule: f for f in outcome.failed}
    assert sorted(failed) == [RULE_FRESHNESS, RULE_ROW_COUNT]
    assert failed[RULE_ROW_COUNT].observed == "observed 3"
    assert failed[RULE_ROW_COUNT].detail == (
        "row count between 5 and 15 (at least 1; within ±50% of the previous 10)"
    )
    assert failed[RULE_FRESHNESS].column == "last_view_ts"
    assert failed[RULE_FRESHNESS].observed == "observed 2026-01-05 23:59:00"
    assert failed[RULE_FRESHNESS].detail.startswith(
        "max(last_view_ts) between 2026-01-06 00:00 UTC and 2026-01-09 00:00 UTC"
    )
    summary = outcome.summary()
    assert summary.startswith("region_title_daily 2026-01-07: 2 of 13 checks failed\n")
    assert "  - row count between 5 and 15" in summary
    assert f"  - {failed[RULE_FRESHNESS].describe()}" in summary


@pytest.mark.integration
def test_a_missing_column_fails_the_gate(spark, tmp_path):
    df = _frame(spark, CLEAN).drop("sum_watch_hours")
    outcome = validate_partition(
        REGION_TITLE_DAILY, df, as_of=AS_OF_DATE, previous_row_count=None, results_dir=tmp_path
    )
    df.unpersist()
    assert outcome.success is False
    assert {(f.rule, f.column) for f in outcome.failed} == {
        (RULE_NOT_NULL, "sum_watch_hours"),
        (RULE_RANGE, "sum_watch_hours"),
    }
    assert all(f.observed.startswith("could not be evaluated") for f in outcome.failed)


# ------------------------------------------------------ a range judged in one pass

RANGE = [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)]


def _dated(as_of, *rows):
    """Rows of `as_of` (last view that evening)."""
    evening = dt.datetime.combine(as_of, dt.time(21, 0))
    return [(*row, evening, as_of, WRITTEN) for row in rows]


def _plain_gx_failures(spark, df, suite) -> set[tuple[str, str]]:
    """(rule, check) of the expectations that fail when GX runs `suite` on `df` directly:
    the per-date reference, independent of how validate_partitions splits its work."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_spark(name="reference", persist=False)
        .add_dataframe_asset(name="partition")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": df})
    )
    result = batch.validate(suite, result_format="BASIC")
    return {(r.expectation_config.meta["rule"], r.expectation_config.meta["check"])
            for r in result.results if not r.success}  # fmt: skip


@pytest.mark.integration
def test_a_range_gets_the_verdicts_of_each_date_validated_alone(spark, tmp_path):
    first, second, third = RANGE
    clean = [("gb", "t1", 3, 1.5, 2), ("gb", "t2", 1, 0.25, 1), ("de", "t1", 2, 2.0, 2)]
    rows = (
        _dated(first, *clean)
        # a row rule broken on the second date only (the same keys as the other dates)
        + _dated(second, clean[0], ("gb", "t2", -4, 0.25, 1), clean[2])
        # six rows on the third date where the previous had three: over the ±50% bound
        + _dated(third, *clean, ("us-east", "t1", 1, 0.5, 1), ("us-east", "t2", 1, 0.5, 1),
                 ("ca", "t1", 1, 0.5, 1))
    )  # fmt: skip
    previous = {first: None, second: 3, third: 3}
    df = _frame(spark, rows)

    together = validate_partitions(
        REGION_TITLE_DAILY, df, dates=RANGE, previous_row_counts=previous,
        results_dir=tmp_path / "range",
    )  # fmt: skip
    saved = {d: json.loads(o.result_path.read_text()) for d, o in together.items()}
    alone = {}
    for d in RANGE:
        partition = df.filter(df.as_of_date == d).cache()
        alone[d] = validate_partition(
            REGION_TITLE_DAILY, partition, as_of=d, previous_row_count=previous[d],
            results_dir=tmp_path / "alone",
        )  # fmt: skip
        suite = build_suite(REGION_TITLE_DAILY, as_of=d, previous_row_count=previous[d])
        reference = _plain_gx_failures(spark, partition, suite)
        assert {(f.rule, f.detail) for f in together[d].failed} == reference, d
        partition.unpersist()
    df.unpersist()

    # each date's verdict, checks and observations: the same as validating it alone
    def verdicts(outcomes):
        return {d: (o.success, o.evaluated, o.failed) for d, o in outcomes.items()}

    assert verdicts(together) == verdicts(alone)
    assert [together[d].success for d in RANGE] == [True, False, False]
    assert [(f.rule, f.column, f.observed) for f in together[second].failed] == [
        (RULE_RANGE, "count_views", "1 unexpected of 3 rows (e.g. -4)")
    ]
    assert [(f.rule, f.observed, f.detail) for f in together[third].failed] == [
        (RULE_ROW_COUNT, "observed 6",
         "row count between 2 and 4 (at least 1; within ±50% of the previous 3)")
    ]  # fmt: skip

    # each date's result file names that date's failed checks only
    for d in RANGE:
        assert together[d].result_path == tmp_path / "range" / "region_title_daily" / (
            f"{d.isoformat()}/validation.json"
        )
        failed = [r["expectation_config"]["meta"]["rule"] for r in saved[d]["results"]
                  if not r["success"]]  # fmt: skip
        assert failed == {first: [], second: [RULE_RANGE], third: [RULE_ROW_COUNT]}[d]
        assert saved[d]["success"] is (d == first)
        assert saved[d]["statistics"]["evaluated_expectations"] == 13
        counts = [r["result"]["observed_value"] for r in saved[d]["results"]
                  if r["expectation_config"]["meta"]["rule"] == RULE_ROW_COUNT]  # fmt: skip
        assert counts == [{first: 3, second: 3, third: 6}[d]]
    docs = (tmp_path / "range" / "data_docs" / "index.html").read_text()
    assert all(f"region_title_daily-{d.isoformat()}" in docs for d in RANGE)

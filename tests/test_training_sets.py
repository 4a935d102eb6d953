"""Point-in-time training sets: hand-made cases, a property test against a DuckDB
reference, Delta time travel for exact rebuilds, MLflow lineage, and clear errors."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil

import duckdb
import pytest
from chispa import assert_df_equality

from feature_store import lake as lk
from feature_store.features.definitions import AS_OF, Entity, FeatureColumn, FeatureTable
from feature_store.features.tables import REGION_TITLE_DAILY
from feature_store.features.training import (
    TrainingSet,
    get_training_set,
    log_lineage_to_mlflow,
    point_in_time_join,
)

PROFILE = Entity("profile", ("profile_id",), "a profile")
TITLE = Entity("title", ("title_id",), "a title")


def make_table(name, entity, keys, ttl_days, features):
    return FeatureTable(
        name=name,
        entity=entity,
        keys=keys,
        description="test table",
        owner="tests",
        ttl_days=ttl_days,
        lookback_days=1,
        sources=(),
        columns=(
            *[FeatureColumn(k, "string", "key") for k in keys],
            *[FeatureColumn(n, dtype, "feature", nullable=True) for n, dtype in features],
        ),
        freshness_column=keys[0],
        max_staleness_hours=24,
    )


PD = make_table("pd", PROFILE, ("profile_id",), 3, [("hours", "double"), ("sessions", "long")])
TD = make_table("td", TITLE, ("title_id", "region"), 2, [("views", "long"), ("rank", "int")])

PD_ROWS = "profile_id string, hours double, sessions long, as_of_date date, written_at timestamp"
TD_ROWS = (
    "title_id string, region string, views long, rank int, as_of_date date, written_at timestamp"
)
SPINE = "row string, profile_id string, title_id string, region string, ts timestamp, label int"


def d(day: int) -> dt.date:
    return dt.date(2026, 1, day)


def t(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, minute, second)


# --- (a) a hand-made example -------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_made(spark):
    pd_rows = spark.createDataFrame(
        [
            ("p1", 1.0, 10, d(10), t(11, 2)),
            ("p1", 2.0, 20, d(12), t(13, 2)),
            ("p1", 4.0, 40, d(14), t(20, 9)),  # backfilled late: written after the cut-off
            ("p1", 5.0, 50, d(15), t(16, 1)),
            ("p2", 7.0, 70, d(10), t(11, 2)),
        ],
        PD_ROWS,
    )
    td_rows = spark.createDataFrame(
        [
            ("t1", "gb", 100, 3, d(12), t(13, 1)),
            ("t1", "us", 7, 9, d(12), t(13, 1)),
            ("t1", "gb", 140, 1, d(14), t(15, 1)),
        ],
        TD_ROWS,
    )
    spine = spark.createDataFrame(
        [
            ("exact-previous-day", "p1", "t1", "gb", t(13, 8), 1),
            ("exact-previous-day-again", "p1", "t1", "gb", t(13, 8), 1),  # tie in ts
            ("same-day-not-used-gap", "p1", "t1", "us", t(12, 23, 59, 59), 0),
            ("late-row-excluded", "p1", "t1", "gb", t(15, 12), 0),
            ("late-row-excluded", "p1", "t1", "gb", t(15, 12), 0),  # exact duplicate row
            ("ttl-edge-included", "p2", "t1", "fr", t(13, 10), 1),
            ("ttl-plus-one-null", "p2", "t1", "us", t(14), 0),
            ("no-features", "p9", "t9", "gb", t(13, 8), None),
            ("no-timestamp", "p1", "t1", "gb", None, 0),
        ],
        SPINE,
    )
    return spine, pd_rows, td_rows


def expected_frame(spark, rows):
    return spark.createDataFrame(
        rows,
        SPINE + ", pd__hours double, pd__sessions long, td__views long",
    )


def test_point_in_time_join_hand_made_example(spark, hand_made):
    spine, pd_rows, td_rows = hand_made
    got = point_in_time_join(
        spine,
        [(PD, pd_rows, ["hours", "sessions"]), (TD, td_rows, ["views"])],
        written_before=dt.datetime(2026, 1, 16, 12),
    )
    expected = expected_frame(
        spark,
        [
            # as_of 01-12 (the day before) for p1 and for (t1, gb)
            ("exact-previous-day", "p1", "t1", "gb", t(13, 8), 1, 2.0, 20, 100),
            ("exact-previous-day-again", "p1", "t1", "gb", t(13, 8), 1, 2.0, 20, 100),
            # the 01-12 row covers the end of 01-12, so at 23:59:59 the 01-10 row
            # (two days back, within TTL 3) is used; (t1, us) has nothing before 01-12
            ("same-day-not-used-gap", "p1", "t1", "us", t(12, 23, 59, 59), 0, 1.0, 10, None),
            # 01-14 was written on 01-20, after the cut-off: falls back to 01-12, which
            # is exactly 3 days back (TTL 3); (t1, gb) 01-14 was written in time
            ("late-row-excluded", "p1", "t1", "gb", t(15, 12), 0, 2.0, 20, 140),
            ("late-row-excluded", "p1", "t1", "gb", t(15, 12), 0, 2.0, 20, 140),
            # p2's 01-10 row is exactly ttl_days (3) before 01-13; no (t1, fr) rows
            ("ttl-edge-included", "p2", "t1", "fr", t(13, 10), 1, 7.0, 70, None),
            # 4 days back is beyond the TTL; (t1, us) 01-12 is 2 days back (TTL 2)
            ("ttl-plus-one-null", "p2", "t1", "us", t(14), 0, None, None, 7),
            ("no-features", "p9", "t9", "gb", t(13, 8), None, None, None, None),
            ("no-timestamp", "p1", "t1", "gb", None, 0, None, None, None),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_without_a_cut_off_the_late_row_is_used(spark, hand_made):
    spine, pd_rows, _ = hand_made
    got = point_in_time_join(
        spine.where("row = 'late-row-excluded'"), [(PD, pd_rows, ["hours"])]
    ).select("row", "pd__hours")
    expected = spark.createDataFrame(
        [("late-row-excluded", 4.0), ("late-row-excluded", 4.0)], "row string, pd__hours double"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_date_spine_and_long_feature_history(spark, hand_made):
    """A date-typed spine column works, and rows far outside the spine's dates change nothing."""
    _, pd_rows, _ = hand_made
    old = spark.createDataFrame([("p1", 9.0, 90, dt.date(2025, 6, 1), t(1))], PD_ROWS)
    spine = spark.createDataFrame([("p1", d(13)), ("p1", d(11))], "profile_id string, day date")
    got = point_in_time_join(
        spine, [(PD, pd_rows.unionByName(old), ["hours"])], timestamp_col="day"
    )
    expected = spark.createDataFrame(
        [("p1", d(13), 2.0), ("p1", d(11), 1.0)], "profile_id string, day date, pd__hours double"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_ttl_edge_at_the_spines_first_date(spark, hand_made):
    """The earliest spine row may use a row exactly ttl_days older (not pruned away)."""
    _, pd_rows, _ = hand_made
    spine = spark.createDataFrame([("p2", t(13, 10))], "profile_id string, ts timestamp")
    got = point_in_time_join(spine, [(PD, pd_rows, ["hours"])])
    expected = spark.createDataFrame(
        [("p2", t(13, 10), 7.0)], "profile_id string, ts timestamp, pd__hours double"
    )
    assert_df_equality(got, expected, ignore_nullable=True)


def test_spine_columns_pass_through_with_any_name(spark, hand_made):
    _, pd_rows, _ = hand_made
    spine = spark.createDataFrame(
        [(1, "p1", t(13, 10), [1, 2])],
        "`event.id` int, profile_id string, ts timestamp, tags array<int>",
    )
    got = point_in_time_join(spine, [(PD, pd_rows, ["sessions"])])
    expected = spark.createDataFrame(
        [(1, "p1", t(13, 10), [1, 2], 20)],
        "`event.id` int, profile_id string, ts timestamp, tags array<int>, pd__sessions long",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


# --- (b) a property test against a straightforward DuckDB reference ---------------------

REFERENCE_SQL = """
WITH a AS (
    SELECT s.rid, f.x, f.n,
           row_number() OVER (PARTITION BY s.rid ORDER BY f.as_of_date DESC) AS rn
    FROM spine s JOIN fa f
      ON f.k = s.k
     AND f.as_of_date < CAST(s.ts AS DATE)
     AND f.as_of_date >= CAST(s.ts AS DATE) - CAST($ttl_a AS INTEGER)
     AND ($cutoff IS NULL OR f.written_at <= $cutoff)
), b AS (
    SELECT s.rid, f.v, f.s,
           row_number() OVER (PARTITION BY s.rid ORDER BY f.as_of_date DESC) AS rn
    FROM spine s JOIN fb f
      ON f.k = s.k AND f.region = s.region
     AND f.as_of_date < CAST(s.ts AS DATE)
     AND f.as_of_date >= CAST(s.ts AS DATE) - CAST($ttl_b AS INTEGER)
     AND ($cutoff IS NULL OR f.written_at <= $cutoff)
)
SELECT s.id, s.k, s.region, CAST(s.ts AS TIMESTAMP) AS ts, s.label,
       a.x AS ta__x, a.n AS ta__n, b.v AS tb__v, b.s AS tb__s
FROM spine s
LEFT JOIN a ON a.rid = s.rid AND a.rn = 1
LEFT JOIN b ON b.rid = s.rid AND b.rn = 1
"""


def random_case(spark, seed: int):
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 1)
    regions = ["gb", "us", "fr"]
    days = 20

    def written(as_of: dt.date) -> dt.datetime:
        # usually a few hours after the day ends, sometimes days late
        hours = rng.choice([1, 2, 5, 20, 30, 75, 120])
        return dt.datetime.combine(as_of, dt.time()) + dt.timedelta(days=1, hours=hours)

    fa, fb = [], []
    for k in [f"k{i}" for i in range(8)]:
        for day in range(days):
            as_of = (start + dt.timedelta(days=day)).date()
            if rng.random() < 0.55:
                x = None if rng.random() < 0.1 else round(rng.uniform(0, 100), 3)
                fa.append((k, x, rng.randint(0, 50), as_of, written(as_of)))
            for region in regions:
                if rng.random() < 0.4:
                    s = rng.choice(["a", "b", None])
                    fb.append((k, region, rng.uniform(-1, 1), s, as_of, written(as_of)))
    spine = []
    for i in range(70):
        k = f"k{rng.randrange(10)}"  # k8 and k9 have no features
        region = rng.choice([*regions, "de"])
        if rng.random() < 0.15:  # exactly at midnight: the date boundary
            ts = start + dt.timedelta(days=rng.randrange(days + 3))
        else:
            ts = start + dt.timedelta(seconds=rng.randrange((days + 3) * 86_400))
        spine.append((f"r{i}", k, region, ts, rng.randint(0, 1)))
    spine += [spine[rng.randrange(len(spine))] for _ in range(8)]  # exact duplicates
    for i in range(6):  # other rows at the same (key, time)
        _, k, region, ts, _ = spine[rng.randrange(70)]
        spine.append((f"tie{i}", k, region, ts, 1))
    spine.append(("null-ts", "k1", "gb", None, 0))
    rng.shuffle(spine)

    ta = make_table("ta", PROFILE, ("k",), rng.randint(1, 5), [("x", "double"), ("n", "long")])
    tb = make_table(
        "tb", TITLE, ("k", "region"), rng.randint(0, 4), [("v", "double"), ("s", "string")]
    )
    cutoff = None if seed % 3 == 0 else start + dt.timedelta(days=rng.randint(5, 18), hours=7)
    return (
        spark.createDataFrame(spine, "id string, k string, region string, ts timestamp, label int"),
        ta,
        spark.createDataFrame(
            fa, "k string, x double, n long, as_of_date date, written_at timestamp"
        ),
        tb,
        spark.createDataFrame(
            fb,
            "k string, region string, v double, s string, as_of_date date, written_at timestamp",
        ),
        cutoff,
    )


def duckdb_reference(spine, ta, fa, tb, fb, cutoff) -> list[tuple]:
    con = duckdb.connect()
    spine_pd = spine.toPandas()
    spine_pd["rid"] = range(len(spine_pd))
    fa_pd, fb_pd = fa.toPandas(), fb.toPandas()
    for frame in (fa_pd, fb_pd):
        frame[AS_OF] = frame[AS_OF].astype("datetime64[ns]")
    con.register("spine", spine_pd)
    con.register("fa", fa_pd)
    con.register("fb", fb_pd)
    params = {"ttl_a": ta.ttl_days, "ttl_b": tb.ttl_days, "cutoff": cutoff}
    rows = con.execute(REFERENCE_SQL, params).fetchall()
    con.close()
    return [tuple(None if v != v else v for v in row) for row in rows]  # NaN -> None


@pytest.mark.parametrize("seed", [1, 2, 3, 6])
def test_point_in_time_join_matches_a_duckdb_reference(spark, seed):
    spine, ta, fa, tb, fb, cutoff = random_case(spark, seed)
    got = point_in_time_join(
        spine,
        [(ta, fa, ["x", "n"]), (tb, fb, ["v", "s"])],
        written_before=cutoff,
    )
    reference = duckdb_reference(spine, ta, fa, tb, fb, cutoff)
    assert len(reference) == spine.count()
    expected = spark.createDataFrame(reference, got.schema)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # the case exercises what it claims to: matches, misses and the cut-off
    matched = [r for r in reference if r[5] is not None or r[6] is not None]
    assert 0 < len(matched) < len(reference)


# --- (c) training sets from Delta tables, rebuilt exactly by version ---------------------


def region_title_rows(spark, scale: float):
    rows = [
        ("gb", "t1", round(10 * scale), 1.5 * scale, 3, t(10, 22), d(10), t(11, 2)),
        ("gb", "t1", round(12 * scale), 2.5 * scale, 4, t(11, 21), d(11), t(12, 2)),
        ("us", "t1", round(30 * scale), 6.0 * scale, 9, t(11, 23), d(11), t(12, 2)),
        ("gb", "t2", round(5 * scale), 0.5 * scale, 1, t(11, 20), d(11), t(12, 2)),
    ]
    return spark.createDataFrame(rows, REGION_TITLE_DAILY.schema)


def test_get_training_set_pins_versions_and_rebuilds_exactly(spark, tmp_path):
    lake_root = str(tmp_path / "lake")
    path = lk.Lake(lake_root).features(REGION_TITLE_DAILY.name)
    lk.overwrite(region_title_rows(spark, 1.0), path)
    spine = spark.createDataFrame(
        [("gb", "t1", t(12, 9), 1), ("us", "t1", t(12, 9), 0), ("gb", "t2", t(11, 9), 0)],
        "region string, title_id string, ts timestamp, label int",
    )
    first = get_training_set(
        spark,
        lake_root,
        spine,
        ["region_title_daily:count_views", "region_title_daily:sum_watch_hours"],
    )
    assert first.table_versions == {"region_title_daily": 0}
    assert first.features == {"region_title_daily": ("count_views", "sum_watch_hours")}
    snapshot = first.frame.collect()
    expected = spark.createDataFrame(
        [
            ("gb", "t1", t(12, 9), 1, 12, 2.5),
            ("us", "t1", t(12, 9), 0, 30, 6.0),
            ("gb", "t2", t(11, 9), 0, None, None),  # TTL 1 day, nothing on 01-10
        ],
        "region string, title_id string, ts timestamp, label int, "
        "region_title_daily__count_views long, region_title_daily__sum_watch_hours double",
    )
    assert_df_equality(first.frame, expected, ignore_row_order=True, ignore_nullable=True)

    lk.overwrite(region_title_rows(spark, 3.0), path)  # the table changes: version 1
    latest = get_training_set(
        spark, lake_root, spine, {"region_title_daily": ["count_views", "sum_watch_hours"]}
    )
    assert latest.table_versions == {"region_title_daily": 1}
    changed = latest.frame.where("region = 'us'").select("region_title_daily__count_views")
    assert changed.first()[0] == 90

    rebuilt = get_training_set(
        spark,
        lake_root,
        spine,
        {"region_title_daily": ["count_views", "sum_watch_hours"]},
        versions=first.table_versions,
    )
    assert rebuilt.table_versions == first.table_versions
    original = spark.createDataFrame(snapshot, first.frame.schema)
    assert_df_equality(rebuilt.frame, original, ignore_row_order=True, ignore_nullable=True)
    # the first training set is pinned too: re-evaluating it still reads version 0
    assert_df_equality(first.frame, original, ignore_row_order=True, ignore_nullable=True)


def test_get_training_set_with_a_whole_table_and_a_cut_off(spark, small_lake):
    spine = spark.createDataFrame(
        [("gb", "t1", t(12, 9))], "region string, title_id string, ts timestamp"
    )
    got = get_training_set(
        spark, small_lake, spine, ["region_title_daily"], written_before=t(12, 1)
    )
    assert got.features == {"region_title_daily": REGION_TITLE_DAILY.feature_names}
    assert got.written_before == t(12, 1)
    # the 01-11 row was written at 02:00 on 01-12, after the cut-off; TTL 1 allows no fallback
    expected = spark.createDataFrame(
        [("gb", "t1", t(12, 9), None, None, None, None)],
        "region string, title_id string, ts timestamp, region_title_daily__count_views long, "
        "region_title_daily__sum_watch_hours double, "
        "region_title_daily__count_unique_viewers long, region_title_daily__last_view_ts timestamp",
    )
    assert_df_equality(got.frame, expected, ignore_nullable=True)


def test_partitions_outside_the_spines_dates_are_not_read(spark, tmp_path):
    """On a table partitioned by as_of_date (as the builder writes them) the date-range
    filter prunes whole partitions: deleting their files from disk changes nothing."""
    lake_root = str(tmp_path / "lake")
    path = lk.Lake(lake_root).features(REGION_TITLE_DAILY.name)
    rows = [("gb", "t1", day, 1.0, 1, t(day, 20), d(day), t(day, 23)) for day in range(1, 21)]
    lk.overwrite(spark.createDataFrame(rows, REGION_TITLE_DAILY.schema), path, partition_by=[AS_OF])
    for day in (*range(1, 10), 15, 16):  # before the spine's first date - TTL, or after
        shutil.rmtree(f"{path}/{AS_OF}={d(day).isoformat()}")
    spine = spark.createDataFrame(
        [("gb", "t1", t(11, 9)), ("gb", "t1", t(12, 9)), ("gb", "t1", t(14, 9))],
        "region string, title_id string, ts timestamp",
    )
    got = get_training_set(spark, lake_root, spine, ["region_title_daily:count_views"])
    expected = spark.createDataFrame(
        [("gb", "t1", t(11, 9), 10), ("gb", "t1", t(12, 9), 11), ("gb", "t1", t(14, 9), 13)],
        "region string, title_id string, ts timestamp, region_title_daily__count_views long",
    )
    assert_df_equality(got.frame, expected, ignore_row_order=True, ignore_nullable=True)


# --- MLflow lineage on a real tracking store ---------------------------------------------


@pytest.fixture
def mlflow_store(tmp_path):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment(
        "training-sets", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    yield mlflow, experiment
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def test_log_lineage_to_mlflow_records_versions_features_and_artifact(
    spark, mlflow_store, tmp_path
):
    mlflow, experiment = mlflow_store
    training_set = TrainingSet(
        frame=spark.createDataFrame([(1,)], "x int"),
        table_versions={"profile_daily": 7, "title_daily": 3},
        features={
            "profile_daily": ("sum_watch_hours_7d", "segment"),
            "title_daily": ("count_views_7d",),
        },
        written_before=dt.datetime(2026, 1, 20, 6),
        timestamp_col="ts",
    )
    with mlflow.start_run(experiment_id=experiment) as run:
        log_lineage_to_mlflow(training_set)
    stored = mlflow.MlflowClient().get_run(run.info.run_id)
    assert stored.data.params == {
        "training_set.profile_daily.version": "7",
        "training_set.title_daily.version": "3",
        "training_set.timestamp_col": "ts",
        "training_set.written_before": "2026-01-20T06:00:00",
    }
    assert stored.data.tags["training_set.profile_daily.features"] == "sum_watch_hours_7d,segment"
    assert stored.data.tags["training_set.title_daily.features"] == "count_views_7d"
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="training_set.json", dst_path=str(tmp_path / "dl")
    )
    with open(local) as handle:
        assert json.load(handle) == {
            "table_versions": {"profile_daily": 7, "title_daily": 3},
            "features": {
                "profile_daily": ["sum_watch_hours_7d", "segment"],
                "title_daily": ["count_views_7d"],
            },
            "columns": [
                "profile_daily__sum_watch_hours_7d",
                "profile_daily__segment",
                "title_daily__count_views_7d",
            ],
            "written_before": "2026-01-20T06:00:00",
            "timestamp_col": "ts",
        }


def test_log_lineage_to_mlflow_needs_an_active_run(spark, mlflow_store):
    training_set = TrainingSet(spark.createDataFrame([(1,)], "x int"), {}, {}, None, "ts")
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_lineage_to_mlflow(training_set)


# --- (d) clear errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s, p, r: (s.drop("ts"), [(PD, p, ["hours"])], {}), "no timestamp column 'ts'"),
        (
            lambda s, p, r: (s.withColumn("ts", s.ts.cast("string")), [(PD, p, ["hours"])], {}),
            "must be a timestamp or date",
        ),
        (
            lambda s, p, r: (s.drop("title_id"), [(TD, r, ["views"])], {}),
            r"spine lacks key columns \['title_id'\] of feature table 'td'",
        ),
        (
            lambda s, p, r: (s, [(PD, p, ["hours", "nope"])], {}),
            r"pd: unknown features \['nope'\]",
        ),
        (lambda s, p, r: (s, [(PD, p, [])], {}), "pd: no features requested"),
        (lambda s, p, r: (s, [], {}), "no feature tables requested"),
        (
            lambda s, p, r: (s, [(PD, p, ["hours"]), (PD, p, ["sessions"])], {}),
            "requested more than once",
        ),
        (
            lambda s, p, r: (s, [(PD, p.drop("sessions"), ["sessions"])], {}),
            r"rows of feature table 'pd' lack columns \['sessions'\]",
        ),
        (
            lambda s, p, r: (s, [(PD, p.drop("written_at"), ["hours"])], {"written_before": t(9)}),
            r"lack columns \['written_at'\]",
        ),
        (
            lambda s, p, r: (s.withColumn("pd__hours", s.label), [(PD, p, ["hours"])], {}),
            r"already has columns \['pd__hours'\]",
        ),
        (
            lambda s, p, r: (s.withColumn("__pit_x", s.label), [(PD, p, ["hours"])], {}),
            "reserved prefix",
        ),
        (
            lambda s, p, r: (s, [(TD, r.withColumn("region", r.rank), ["views"])], {}),
            "key 'region' is string in the spine but int in the feature rows",
        ),
    ],
)
def test_point_in_time_join_refuses_bad_requests(hand_made, change, message):
    spine, pd_rows, td_rows = hand_made
    bad_spine, requests, kwargs = change(spine, pd_rows, td_rows)
    with pytest.raises(ValueError, match=message):
        point_in_time_join(bad_spine, requests, **kwargs)


@pytest.fixture(scope="module")
def small_lake(spark, tmp_path_factory) -> str:
    lake_root = str(tmp_path_factory.mktemp("lake"))
    lk.overwrite(
        region_title_rows(spark, 1.0), lk.Lake(lake_root).features(REGION_TITLE_DAILY.name)
    )
    return lake_root


@pytest.mark.parametrize(
    "features, versions, message",
    [
        (["nope:x"], None, "unknown feature table 'nope'"),
        (["region_title_daily:nope"], None, r"unknown features \['nope'\]"),
        (["region_title_daily:"], None, "names no feature"),
        ({"region_title_daily": "count_views"}, None, "must be a list, not a string"),
        (["profile_daily:segment"], None, "has no Delta table"),
        (["region_title_daily:count_views"], {}, r"missing \['region_title_daily'\]"),
        (
            ["region_title_daily:count_views"],
            {"region_title_daily": 0, "title_daily": 1},
            r"not requested \['title_daily'\]",
        ),
        (["region_title_daily:count_views"], {"region_title_daily": -1}, "must be an int >= 0"),
    ],
)
def test_get_training_set_refuses_bad_requests(spark, small_lake, features, versions, message):
    spine = spark.createDataFrame(
        [("gb", "t1", t(12))], "region string, title_id string, ts timestamp"
    )
    with pytest.raises(ValueError, match=message):
        get_training_set(spark, small_lake, spine, features, versions=versions)

"""Feature builds, the validation gate, online snapshots and forgetting, on real Delta + GX."""

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from conftest import TEST_KEY, make_config
from feature_world import AS_OF, bronze_frame, ts, view_events, world
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store import serving, signing
from feature_store.features import transforms as tf
from feature_store.features.build import build_features, revalidate
from feature_store.features.views import refresh_views
from feature_store.forget import forget_account
from feature_store.privacy import pseudonymize_value, suppression_token_value
from jobs import build_features as build_job
from jobs import validate_features as validate_job
from jobs.export_online import main as export_online_main

NEXT = AS_OF + dt.timedelta(days=1)
RAW_IDS = {"a1": "acc000000001", "a2": "acc000000002", "a3": "acc000000003"}


def raw_member(short: str) -> str:
    """a1 -> acc000000001, p1 -> acc000000001-p0 (profiles p1, p2 belong to a1)."""
    if short.startswith("a"):
        return RAW_IDS[short]
    account = {"p1": "a1", "p2": "a1", "p3": "a2", "p4": "a3"}[short]
    return f"{RAW_IDS[account]}-p{int(short[1:]) - 1}"


def pseudonym(short: str) -> str:
    return pseudonymize_value(raw_member(short), TEST_KEY)


def write_world(spark, config):
    lake = lk.Lake(config.lake)
    for name, frame in world(spark, member_id=pseudonym).items():
        frame.write.format("delta").partitionBy("event_date").save(lake.bronze(name))


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """A lake with the hand-made bronze world and every feature table built for AS_OF."""
    config = make_config(tmp_path_factory.mktemp("features"), "privacy.vacuum_retention_hours=0")
    write_world(spark, config)
    report = build_features(spark, config, AS_OF)
    return config, report


def features(spark, config, table):
    return lk.read_table(spark, lk.Lake(config.lake).features(table))


def test_build_commits_every_table_with_lineage(spark, built):
    config, report = built
    assert report.ok, report.format_table()
    assert [(b.table, b.status) for b in report.builds] == [
        ("profile_daily", "committed"),
        ("account_daily", "committed"),
        ("title_daily", "committed"),
        ("region_title_daily", "committed"),
        ("profile_title_interactions", "committed"),
        ("artwork_daily", "committed"),
    ]
    accounts = features(spark, config, "account_daily").select(
        "account_id", "plan", "count_payment_failures_30d", "as_of_date"
    )
    expected = spark.createDataFrame(
        [(pseudonym("a1"), "premium", 0, AS_OF), (pseudonym("a2"), "basic", 1, AS_OF)],
        accounts.schema,
    )
    assert_df_equality(accounts, expected, ignore_row_order=True)

    lake = lk.Lake(config.lake)
    log = lk.read_table(spark, lake.feature_builds).filter(F.col("table") == "account_daily")
    recorded = json.loads(log.first()["bronze_versions"])
    assert recorded == {
        **{
            s: lk.table_version(spark, lake.bronze(s))
            for s in ("accounts", "profiles", "subscriptions", "viewing")
        },
        "silver.views": lk.table_version(spark, lake.silver("views")),
    }


def test_rebuilding_a_date_replaces_it_with_the_same_rows(spark, built):
    config, _ = built
    table = "profile_title_interactions"
    before = features(spark, config, table).drop("written_at").collect()
    report = build_features(spark, config, AS_OF, [table])
    assert report.ok
    after = features(spark, config, table).drop("written_at")
    assert_df_equality(after, spark.createDataFrame(before, after.schema), ignore_row_order=True)


def test_failed_validation_quarantines_the_partition_and_publishes_nothing(
    spark, built, tmp_path, capsys
):
    source, _ = built
    config = make_config(tmp_path)
    shutil.copytree(Path(source.lake), Path(config.lake))
    lake = lk.Lake(config.lake)
    committed_before = features(spark, config, "region_title_daily").collect()
    # A broken upstream: a view with negative watch time on the next day.
    broken = bronze_frame(
        spark,
        "viewing",
        [
            {
                "event_ts": ts("2026-01-11T09:00:00"),
                "account_id": pseudonym("a1"),
                "profile_id": pseudonym("p1"),
                "session_id": "s9",
                "title_id": "t1",
                "event_type": "stop",
                "watch_seconds": -7200,
                "device": "tv",
                "region": "gb",
                "local_hour": 9,
            }
        ],
    )
    broken.write.format("delta").mode("append").save(lake.bronze("viewing"))

    code = build_job.main(
        ["--date", NEXT.isoformat(), "--table", "region_title_daily", "--set",
         f"paths.lake={config.lake}", "--set", f"paths.state_dir={config.paths.state_dir}"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "region_title_daily" in out and "failed_validation" in out
    assert "sum_watch_hours" in out and "-2" in out  # the check and the observed value

    rows = features(spark, config, "region_title_daily")
    assert rows.filter(F.col("as_of_date") == NEXT).count() == 0
    assert sorted(map(tuple, rows.collect())) == sorted(map(tuple, committed_before))
    kept = lk.read_table(spark, lake.feature_quarantine("region_title_daily"))
    assert kept.select("region", "title_id", "sum_watch_hours", "as_of_date").collect() == [
        ("gb", "t1", -2.0, NEXT)
    ]
    results = revalidate(spark, config, NEXT, ["region_title_daily"])
    assert [(r.location, r.outcome.success) for r in results] == [("quarantine", False)]
    assert Path(results[0].outcome.result_path).is_file()


def test_validate_job_rechecks_committed_partitions(built, capsys):
    config, _ = built
    code = validate_job.main(
        ["--date", AS_OF.isoformat(), "--table", "title_daily", "--recheck", "--set",
         f"paths.lake={config.lake}", "--set", f"paths.state_dir={config.paths.state_dir}"]
    )  # fmt: skip
    assert code == 0
    assert "title_daily 2026-01-10 (table): passed" in capsys.readouterr().out


def test_row_count_bound_starts_once_the_previous_window_is_full(spark, built, tmp_path):
    """Bronze starts 2025-12-20. region_title_daily looks back 1 day: its bound applies on
    NEXT and a jump from 1 to 2 rows fails. profile_title_interactions looks back 56 days:
    its windows are still filling, so doubling from 3 to 6 rows is growth, not an error."""
    source, _ = built
    config = make_config(tmp_path)
    shutil.copytree(Path(source.lake), Path(config.lake))
    lake = lk.Lake(config.lake)
    new_views = []
    for profile, account, title in (("p2", "a1", "t2"), ("p3", "a2", "t1"), ("p3", "a2", "t2")):
        new_views += view_events(
            pseudonym(profile), pseudonym(account), f"n-{profile}-{title}", title,
            "2026-01-11T20:00:00", 1200, complete=False, device="tv", hour=20, region="gb",
        )  # fmt: skip
    bronze_frame(spark, "viewing", new_views).write.format("delta").mode("append").save(
        lake.bronze("viewing")
    )

    report = build_features(
        spark, config, NEXT, ["region_title_daily", "profile_title_interactions"]
    )

    status = {b.table: (b.status, b.rows) for b in report.builds}
    assert status == {
        "region_title_daily": ("failed_validation", 2),
        "profile_title_interactions": ("committed", 6),
    }
    (failed,) = [b for b in report.builds if b.table == "region_title_daily"]
    assert [c.rule for c in failed.validation.failed] == ["row_count"]
    assert "within ±50% of the previous 1" in failed.validation.summary()


def test_online_export_then_forget_leaves_nothing_of_the_member(spark, built, tmp_path):
    source, _ = built
    config = make_config(tmp_path, "privacy.vacuum_retention_hours=0")
    shutil.copytree(Path(source.lake), Path(config.lake))
    lake = lk.Lake(config.lake)
    # A rejected raw line of the member in the landing quarantine.
    spark.createDataFrame(
        [("viewing", AS_OF, "f", '{"account_id": "acc000000001-p0", "x": 1', "malformed_json",
          None)],
        "source string, ingest_date date, source_file string, raw string, reason string, "
        "detail string",
    ).write.format("delta").save(lake.quarantine)  # fmt: skip

    # The Parquet staging a batch scoring run that died left behind, with the member.
    staging = lake.recs(f"_staging/top_titles/{AS_OF}")
    spark.createDataFrame(
        [(pseudonym("p1"), "t1", 1.0, 1)],
        "profile_id string, title_id string, score double, rank int",
    ).write.parquet(staging)

    # Churn scores of the member and of another account.
    lk.replace_slice(
        spark.createDataFrame(
            [(pseudonym("a1"), 0.4, "high", AS_OF), (pseudonym("a2"), 0.01, "low", AS_OF)],
            "account_id string, churn_probability double, risk_band string, as_of_date date",
        ),
        lake.predictions("churn_scores"),
        slice_values={"as_of_date": AS_OF},
        partition_by=["as_of_date"],
    )

    assert export_online_main(
        ["--date", AS_OF.isoformat(), "--table", "profile_daily", "--table", "account_daily",
         "--set", f"paths.lake={config.lake}", "--set", f"paths.state_dir={config.paths.state_dir}",
         "--set", f"paths.published={config.paths.published}"]
    ) == 0  # fmt: skip
    published = Path(config.paths.published)
    version = serving.latest_version(published, "online_features")
    manifest = serving.load_manifest(serving.resolve(published, "online_features", version))
    assert manifest["tables"]["account_daily"]["rows"] == 2
    assert manifest["tables"]["profile_daily"]["rows"] == 4

    report = forget_account(spark, config, "acc000000001")
    assert report.profiles == 2

    member = {pseudonym("a1"), pseudonym("p1"), pseudonym("p2")}
    tables = [lake.bronze(s) for s in ("accounts", "profiles", "viewing", "ratings", "searches",
                                       "impressions", "subscriptions")]  # fmt: skip
    tables += [lake.features(t) for t in ("profile_daily", "account_daily",
                                          "profile_title_interactions")]  # fmt: skip
    tables.append(lake.predictions("churn_scores"))
    others_remain = {lake.bronze(s) for s in ("accounts", "profiles", "impressions",
                                              "subscriptions")}  # fmt: skip
    others_remain |= {lake.features("profile_daily"), lake.features("account_daily")}
    others_remain.add(lake.predictions("churn_scores"))
    for path in tables:
        # Every Parquet file in the folder, referenced by Delta or not: vacuum removed the rest.
        files = [str(p) for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts]
        ids = set()
        if files:
            raw_files = spark.read.parquet(*files)
            for column in {"account_id", "profile_id"} & set(raw_files.columns):
                ids |= {r[0] for r in raw_files.select(column).distinct().collect()}
        assert not ids & member, path
        if path in others_remain:
            assert ids, f"{path}: the other members must stay"
    assert lk.read_table(spark, lake.quarantine).count() == 0
    assert not Path(lake.recs("_staging")).exists()

    # the published snapshot was replaced by one without the member, which verifies
    assert serving.list_versions(published, "online_features") == [f"{version}.r1"]
    pulled = serving.pull(
        published,
        "online_features",
        tmp_path / "pulled",
        public_key=signing.trusted_public_key(config),
    )
    manifest = serving.load_manifest(pulled.path)
    assert manifest["tables"]["account_daily"]["rows"] == 1
    assert [r["rows_removed"] for r in manifest["redactions"]] == [
        {"account_daily": 1, "profile_daily": 2}
    ]
    online = serving.read_table(pulled.path, "profile_daily")
    assert set(online["account_id"]) == {pseudonym("a2"), pseudonym("a3")}

    audit = lk.read_table(spark, lake.forget_requests)
    row = audit.first()
    assert row["suppression_token"] == suppression_token_value(pseudonym("a1"))
    text = json.dumps(row.asDict(), default=str)
    assert "acc000000001" not in text and pseudonym("a1") not in text


def test_views_are_recomputed_only_for_days_whose_bronze_changed(spark, built, tmp_path):
    source, _ = built
    config = make_config(tmp_path)
    shutil.copytree(Path(source.lake), Path(config.lake))
    lake = lk.Lake(config.lake)
    days = [AS_OF - dt.timedelta(days=d) for d in range(6, -1, -1)]
    stored_days = tuple(days[:-1])  # the as-of day is made from bronze each time
    viewing = lk.read_table(spark, lake.bronze("viewing"))
    again = refresh_views(spark, lake, viewing, as_of_dates=[AS_OF], lookback_days=7)
    assert again.recomputed == () and again.reused == stored_days

    late_day = AS_OF - dt.timedelta(days=3)
    late = view_events(
        pseudonym("p4"), pseudonym("a3"), "late-session", "t1",
        f"{late_day.isoformat()}T21:00:00", 600, complete=True, device="web", hour=21,
        region="us-east",
    )  # fmt: skip
    bronze_frame(spark, "viewing", late).write.format("delta").mode("append").save(
        lake.bronze("viewing")
    )
    viewing = lk.read_table(spark, lake.bronze("viewing"))
    refreshed = refresh_views(spark, lake, viewing, as_of_dates=[AS_OF], lookback_days=7)
    one = dt.timedelta(days=1)
    assert refreshed.recomputed == (late_day - one, late_day, late_day + one)
    # what is read equals the views computed from bronze from scratch, up to the as-of date
    direct = tf.range_views(viewing, as_of_dates=[AS_OF], lookback_days=7)
    assert_df_equality(refreshed.rows, direct, ignore_row_order=True)
    assert refreshed.rows.filter(F.col("session_id") == "late-session").count() == 1

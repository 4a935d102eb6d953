"""Publishing on real Delta tables and a real MLflow registry (SQLite), pulling what was
published, failures in the middle of a publish, and forgetting a member everywhere."""

import datetime as dt
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from chispa import assert_df_equality
from conftest import TEST_KEY, make_config
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store import serving, signing
from feature_store.config import ConfigError, manifest_signing_key_file
from feature_store.forget import forget_account
from feature_store.privacy import pseudonymize_value
from feature_store.publish import ARTIFACTS, PublishError, publish_all, publish_artifact
from feature_store.tracking import configure_mlflow
from jobs import export_online, publish_artifacts
from jobs.cli import main as cli_main

D1, D2 = dt.date(2026, 3, 10), dt.date(2026, 3, 11)
RECS = "profile_id string, title_id string, score double, rank int, model_version string"
CHURN = (
    "account_id string, churn_probability double, risk_band string, reasons array<string>, "
    "model_version string"
)


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """`recommender` v1 with its lineage as run parameters (as the training jobs log it),
    `churn` v1 with its lineage as version tags."""
    folder = tmp_path_factory.mktemp("registry")
    configure_mlflow(make_config(folder), "publish-tests")
    client = mlflow.MlflowClient()
    models = {}
    for name, params, tags in (
        ("recommender", {"lineage.profile_daily.version": 3, "lineage.artwork_daily.version": 4},
         {"data.as_of": "2026-03-08"}),
        ("churn", {}, {"data.as_of": "2026-03-09", "lineage.account_daily.version": "5"}),
    ):  # fmt: skip
        with mlflow.start_run() as run:
            mlflow.log_params(params)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=Echo(),
                registered_model_name=name,
                pip_requirements=["mlflow"],
            )
        version = str(info.registered_model_version)
        for key, value in {**tags, "run_id": run.info.run_id}.items():
            client.set_model_version_tag(name, version, key, value)
        models[name] = SimpleNamespace(version=version, run_id=run.info.run_id)
    return SimpleNamespace(mlflow=str(folder / "mlflow"), **models)


@pytest.fixture
def conf(tmp_path, registry):
    return make_config(
        tmp_path,
        f"paths.mlflow={registry.mlflow}",
        "publish.retention_versions=2",
        "privacy.vacuum_retention_hours=0",
    )


def write_slice(spark, path, schema, rows, as_of):
    frame = spark.createDataFrame(rows, schema).withColumn("as_of_date", F.lit(as_of))
    lk.replace_slice(frame, path, slice_values={"as_of_date": as_of}, partition_by=["as_of_date"])


def write_recs(spark, conf, as_of, profiles, model_version, *, scale=1.0):
    rows = [
        (p, f"t{r}", round(scale * (10 - r), 2), r, model_version) for p in profiles for r in (1, 2)
    ]
    write_slice(spark, lk.Lake(conf.lake).recs("top_titles"), RECS, rows, as_of)


def write_churn(spark, conf, as_of, accounts, model_version):
    rows = [(a, 0.1 * i, "low", ["tenure_days 3.0"], model_version) for i, a in enumerate(accounts)]
    write_slice(spark, lk.Lake(conf.lake).predictions("churn_scores"), CHURN, rows, as_of)


def published(conf, artifact) -> Path:
    return Path(conf.paths.published) / artifact


def versions(conf, artifact) -> list[str]:
    return serving.list_versions(conf.paths.published, artifact)


def latest(conf, artifact) -> str | None:
    return serving.latest_version(conf.paths.published, artifact)


def staging_leftovers(conf) -> list[str]:
    staging = Path(conf.paths.published) / ".staging"
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


def test_publish_writes_a_version_whose_manifest_and_rows_match_the_source(spark, conf, registry):
    lake = lk.Lake(conf.lake)
    write_recs(spark, conf, D1, ["p1", "p2"], registry.recommender.version)
    write_churn(spark, conf, D1, ["a1", "a2", "a3"], registry.churn.version)

    outcomes = publish_all(spark, conf)

    # Only the artifacts with a source table; nothing failed.
    assert [(o.artifact, o.error) for o in outcomes] == [
        ("recommendations", None),
        ("churn_scores", None),
    ]
    recs = outcomes[0].published
    folder = published(conf, "recommendations") / recs.version
    assert recs.path == folder and not recs.reused
    assert recs.version.startswith("20260310-") and recs.version.endswith("Z")
    assert latest(conf, "recommendations") == recs.latest == recs.version

    manifest = json.loads((folder / serving.MANIFEST).read_text())
    trusted = signing.trusted_public_key(conf)
    verified = serving.verify(
        folder, artifact="recommendations", version=recs.version, public_key=trusted
    )
    assert manifest == verified
    assert {k: manifest[k] for k in ("artifact", "version", "as_of_date", "format", "rows")} == {
        "artifact": "recommendations",
        "version": recs.version,
        "as_of_date": "2026-03-10",
        "format": "parquet",
        "rows": 4,
    }
    assert manifest["model"] == {
        "name": "recommender",
        "version": registry.recommender.version,
        "run_id": registry.recommender.run_id,
        "data_window": {"data.as_of": "2026-03-08"},
    }
    assert manifest["feature_table_versions"] == {"profile_daily": 3, "artwork_daily": 4}
    assert manifest["feature_table_versions_from"] == "mlflow_run_params"
    table = manifest["tables"]["recommendations"]
    assert table["rows"] == 4 and table["keys"] == ["profile_id", "rank"]
    assert table["source"] == {
        "path": lake.recs("top_titles"),
        "delta_version": lk.table_version(spark, lake.recs("top_titles")),
    }
    assert [(c["name"], c["type"]) for c in table["schema"]] == [
        ("profile_id", "string"),
        ("title_id", "string"),
        ("score", "double"),
        ("rank", "int"),
        ("model_version", "string"),
        ("as_of_date", "date"),
    ]
    # Every file is listed with its real size and checksum, and nothing else is there.
    assert [f["path"] for f in manifest["files"]] == serving.files_in(folder)
    assert all(f["path"].startswith("recommendations/part-") for f in manifest["files"])
    for entry in manifest["files"]:
        assert entry["sha256"] == serving.sha256_file(folder / entry["path"])
        assert entry["bytes"] == (folder / entry["path"]).stat().st_size

    source = lk.read_table(spark, lake.recs("top_titles")).filter(F.col("as_of_date") == D1)
    assert_df_equality(
        spark.read.parquet(str(folder / "recommendations")),
        source,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    expected = source.toPandas().sort_values(["profile_id", "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(
        serving.read_table(folder).sort_values(["profile_id", "rank"], ignore_index=True),
        expected,
    )

    churn = outcomes[1].published.manifest
    assert churn["model"]["run_id"] == registry.churn.run_id
    assert churn["feature_table_versions"] == {"account_daily": 5}
    assert churn["feature_table_versions_from"] == "model_version_tags"
    reasons = serving.read_table(outcomes[1].published.path).sort_values("account_id")
    assert [list(r) for r in reasons["reasons"]] == [["tenure_days 3.0"]] * 3
    assert staging_leftovers(conf) == []


def test_same_inputs_reuse_a_version_new_ones_move_latest_and_retention_keeps_two(
    spark, conf, registry
):
    version = registry.recommender.version
    write_recs(spark, conf, D1, ["p1"], version)
    first = publish_artifact(spark, conf, "recommendations")
    again = publish_artifact(spark, conf, "recommendations")
    assert (again.reused, again.version) == (True, first.version)
    assert versions(conf, "recommendations") == [first.version]
    # A crash between the rename and the pointer move: the next run repairs the pointer.
    (published(conf, "recommendations") / serving.LATEST).unlink()
    assert publish_artifact(spark, conf, "recommendations").reused
    assert latest(conf, "recommendations") == first.version

    write_recs(spark, conf, D2, ["p1"], version)
    second = publish_artifact(spark, conf, "recommendations")
    assert second.version.startswith("20260311-") and second.latest == second.version
    assert versions(conf, "recommendations") == [first.version, second.version]

    # Same date, new scores (a re-run of the model): a new version, the oldest goes.
    write_recs(spark, conf, D2, ["p1"], version, scale=2.0)
    third = publish_artifact(spark, conf, "recommendations")
    assert third.removed == (first.version,)
    assert versions(conf, "recommendations") == [second.version, third.version]
    assert latest(conf, "recommendations") == third.version
    scores = serving.read_table(published(conf, "recommendations") / third.version)["score"]
    assert sorted(scores) == [16.0, 18.0]

    # A backfill of an older date is published but does not move serving back in time.
    backfill = publish_artifact(spark, conf, "recommendations", as_of=D1)
    assert backfill.version.startswith("20260310-") and backfill.latest == third.version
    assert latest(conf, "recommendations") == third.version
    assert versions(conf, "recommendations") == [backfill.version, second.version, third.version]

    with pytest.raises(
        PublishError, match=r"no rows for as_of_date 2026-03-12 .*latest: 2026-03-11"
    ):
        publish_artifact(spark, conf, "recommendations", as_of=D2 + dt.timedelta(days=1))


def test_a_failure_mid_publish_leaves_no_version_and_latest_as_it_was(
    spark, conf, registry, caplog
):
    caplog.set_level(logging.INFO, logger="feature_store.publish")
    write_recs(spark, conf, D1, ["p1", "p2"], registry.recommender.version)
    good = publish_artifact(spark, conf, "recommendations")

    # The rows name a model version the registry does not have: found once the data is
    # written (the manifest is made from what was written), so the staging is full.
    write_recs(spark, conf, D2, ["p1", "p2"], "99")
    caplog.clear()
    with pytest.raises(PublishError, match="recommender version 99, which the registry"):
        publish_artifact(spark, conf, "recommendations")
    assert "publish recommendations: writing recommendations" in caplog.text
    assert versions(conf, "recommendations") == [good.version]
    assert latest(conf, "recommendations") == good.version
    assert staging_leftovers(conf) == []

    # A data file of the second feature table is lost: Spark fails while writing it,
    # after the first table is already in the staging folder.
    lake = lk.Lake(conf.lake)
    write_features(spark, conf, D1, {"p1": "a1", "p2": "a2"})
    tables = ["profile_daily", "account_daily"]
    snapshot = publish_artifact(spark, conf, "online_features", tables=tables)
    write_features(spark, conf, D2, {"p1": "a1", "p2": "a2"})
    for lost in Path(lake.features("account_daily"), f"as_of_date={D2}").glob("*.parquet"):
        lost.unlink()
    caplog.clear()
    with pytest.raises(Exception, match="(?i)does not exist|not found|FileNotFound"):
        publish_artifact(spark, conf, "online_features", as_of=D2, tables=tables)
    assert "publish online_features: writing account_daily" in caplog.text  # the 2nd table
    assert versions(conf, "online_features") == [snapshot.version]
    assert latest(conf, "online_features") == snapshot.version
    assert staging_leftovers(conf) == []


def cli_args(conf) -> list[str]:
    return [
        "--set", f"paths.state_dir={conf.paths.state_dir}",
        "--set", f"paths.lake={conf.paths.lake}",
        "--set", f"paths.mlflow={conf.paths.mlflow}",
        "--set", f"paths.published={conf.paths.published}",
        "--set", "spark.shuffle_partitions=2",
        "--set", "spark.log_level=ERROR",
        "-q",
    ]  # fmt: skip


def test_publish_and_pull_commands_exit_codes(spark, conf, registry, tmp_path, capsys,
                                              monkeypatch):  # fmt: skip
    monkeypatch.setenv("MARQUEE_PSEUDONYMIZATION_KEY", TEST_KEY)
    args = cli_args(conf)
    assert publish_artifacts.main(args) == 1
    assert "nothing to publish" in capsys.readouterr().err

    write_recs(spark, conf, D1, ["p1", "p2"], registry.recommender.version)
    code = cli_main(["publish", "--artifact", "recommendations", "--artifact", "churn_scores",
                     *args])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    churn_path = lk.Lake(conf.lake).predictions("churn_scores")
    assert f"churn_scores: source table not found: {churn_path}" in captured.err
    (version,) = versions(conf, "recommendations")
    lines = {line.split()[0]: line.split() for line in captured.out.splitlines()[1:]}
    assert lines["recommendations"][1:3] == [version, "4"]
    assert lines["recommendations"][-1] == "published"
    assert lines["churn_scores"][-1] == "failed"
    assert not published(conf, "churn_scores").exists()

    with pytest.raises(SystemExit) as usage:
        publish_artifacts.main(["--artifact", "nope", *args])
    assert usage.value.code == 2

    dest = tmp_path / "serving" / "recs"
    assert cli_main(["pull", "recommendations", "--latest", "--to", str(dest), *args]) == 0
    assert f"recommendations {version}: 4 rows" in capsys.readouterr().out
    source = lk.read_table(spark, lk.Lake(conf.lake).recs("top_titles")).toPandas()
    pd.testing.assert_frame_equal(
        serving.read_table(dest).sort_values(["profile_id", "rank"], ignore_index=True),
        source.sort_values(["profile_id", "rank"], ignore_index=True),
    )

    # Damage the published copy: the pull is refused and leaves nothing.
    folder = published(conf, "recommendations") / version
    victim = folder / json.loads((folder / serving.MANIFEST).read_text())["files"][0]["path"]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    other = tmp_path / "serving" / "recs-again"
    assert cli_main(["pull", "recommendations", "--to", str(other), *args]) == 1
    assert f"recommendations version {version}: checksum mismatch" in capsys.readouterr().err
    assert not other.exists()


def write_features(spark, conf, as_of, profiles: dict[str, str]):
    """Tiny profile_daily and account_daily partitions (profile -> account)."""
    lake = lk.Lake(conf.lake)
    write_slice(
        spark,
        lake.features("profile_daily"),
        "profile_id string, account_id string, sum_watch_hours_7d double",
        [(p, a, float(i)) for i, (p, a) in enumerate(sorted(profiles.items()))],
        as_of,
    )
    write_slice(
        spark,
        lake.features("account_daily"),
        "account_id string, region string",
        [(a, "gb") for a in sorted(set(profiles.values()))],
        as_of,
    )


def test_forget_removes_the_member_from_every_published_version(spark, conf, registry):
    member = pseudonymize_value("acc000000001", TEST_KEY)
    other = pseudonymize_value("acc000000002", TEST_KEY)
    profiles = {"m-p1": member, "m-p2": member, "o-p1": other}
    write_features(spark, conf, D1, profiles)
    recs_version, churn_version = registry.recommender.version, registry.churn.version
    write_recs(spark, conf, D1, sorted(profiles), recs_version)
    older = publish_artifact(spark, conf, "recommendations")
    write_recs(spark, conf, D2, sorted(profiles), recs_version)
    newer = publish_artifact(spark, conf, "recommendations")
    write_churn(spark, conf, D1, [member, other], churn_version)
    churn = publish_artifact(spark, conf, "churn_scores")
    snapshot = publish_artifact(
        spark, conf, "online_features", tables=["profile_daily", "account_daily"]
    )
    write_slice(
        spark,
        lk.Lake(conf.lake).recs("similar_titles"),
        "title_id string, similar_title_id string, score double, rank int, model_version string",
        [("t1", "t2", 0.5, 1, recs_version)],
        D1,
    )
    titles = publish_artifact(spark, conf, "similar_titles")
    titles_manifest = (titles.path / serving.MANIFEST).read_bytes()
    pointers = {a: latest(conf, a) for a in ARTIFACTS if published(conf, a).exists()}

    report = forget_account(spark, conf, "acc000000001")

    expected = {  # rows of the member in each version
        older.path: {"recommendations": 4},
        newer.path: {"recommendations": 4},
        churn.path: {"churn_scores": 1},
        snapshot.path: {"profile_daily": 2, "account_daily": 1},
    }
    trusted = signing.trusted_public_key(conf)
    for old, removed in expected.items():
        # A new version name (so copies pulled before are visibly stale); the old one is gone.
        assert not old.exists()
        folder = old.with_name(f"{old.name}.r1")
        manifest = serving.verify(folder, artifact=old.parent.name, public_key=trusted)
        assert manifest["version"] == folder.name
        assert manifest["redactions"] == [
            {
                "request_id": report.request_id,
                "redacted_at": manifest["redactions"][0]["redacted_at"],
                "rows_removed": removed,
                "replaces_version": old.name,
            }
        ]
        assert report.deleted[str(old)] == sum(removed.values())
        for table, info in manifest["tables"].items():
            rows = serving.read_table(folder, table)
            assert info["rows"] == len(rows) > 0
            ids = set(rows.get("account_id", [])) | set(rows.get("profile_id", []))
            assert not ids & {member, "m-p1", "m-p2"}, (folder, table)
            assert ids & {other, "o-p1"}, "the other member stays"
    newest = newer.path.with_name(f"{newer.version}.r1")
    assert serving.read_table(newest)["profile_id"].tolist() == ["o-p1", "o-p1"]
    # Nothing of the member in staging; latest moved to the redacted versions, in the same
    # order; the title-only artifact untouched.
    assert staging_leftovers(conf) == []
    assert versions(conf, "recommendations") == [f"{older.version}.r1", f"{newer.version}.r1"]
    assert {a: latest(conf, a) for a in pointers} == {
        a: v if a == "similar_titles" else f"{v}.r1" for a, v in pointers.items()
    }
    assert (titles.path / serving.MANIFEST).read_bytes() == titles_manifest
    pulled = serving.pull(
        conf.paths.published, "churn_scores", Path(conf.state_dir) / "pull", public_key=trusted
    )
    assert serving.read_table(pulled.path)["account_id"].tolist() == [other]


def test_a_forget_does_not_re_sign_a_version_altered_after_publishing(spark, conf, registry):
    member = pseudonymize_value("acc000000001", TEST_KEY)
    write_churn(spark, conf, D1, [member, "other"], registry.churn.version)
    churn = publish_artifact(spark, conf, "churn_scores")
    manifest_path = churn.path / serving.MANIFEST
    tampered = json.loads(manifest_path.read_text())
    tampered["description"] = "edited by hand"
    manifest_path.write_text(json.dumps(tampered))

    report = forget_account(spark, conf, "acc000000001")

    # Removed, not laundered into a validly signed redacted version.
    assert versions(conf, "churn_scores") == []
    assert report.deleted[str(churn.path)] == 1


def test_manifests_are_signed_with_a_key_kept_apart_and_a_new_key_means_a_new_version(
    spark, conf, registry
):
    write_recs(spark, conf, D1, ["p1"], registry.recommender.version)
    first = publish_artifact(spark, conf, "recommendations")

    key_file = manifest_signing_key_file(conf)
    assert key_file == Path(conf.state_dir) / "secrets" / "manifest-signing.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert not key_file.resolve().is_relative_to(Path(conf.paths.published).resolve())
    signature = first.manifest[serving.SIGNATURE]
    public_key = signing.trusted_public_key(conf)
    assert signature["algorithm"] == "ed25519"
    assert signature["key_id"] == serving.key_id(public_key)
    serving.check_signature(first.manifest, public_key)
    private = key_file.read_bytes()
    published_bytes = [p.read_bytes() for p in Path(conf.paths.published).rglob("*") if p.is_file()]
    assert not any(private.strip() in data for data in published_bytes)

    # The same inputs reuse the version; after the key changes they do not (every pull
    # would refuse the old signature), and the new version carries the new key's.
    assert publish_artifact(spark, conf, "recommendations").reused
    key_file.unlink()
    second = publish_artifact(spark, conf, "recommendations")
    new_key = signing.trusted_public_key(conf)
    assert not second.reused and new_key != public_key
    serving.check_signature(second.manifest, new_key)
    with pytest.raises(serving.SignatureError, match="not by the trusted key"):
        serving.check_signature(first.manifest, new_key)


def test_online_snapshot_states_each_tables_as_of_date(spark, conf, tmp_path, capsys, caplog):
    write_features(spark, conf, D1, {"p1": "a1", "p2": "a2"})
    write_slice(  # profile_daily is built for D2; account_daily is not (yet)
        spark,
        lk.Lake(conf.lake).features("profile_daily"),
        "profile_id string, account_id string, sum_watch_hours_7d double",
        [("p1", "a1", 7.0)],
        D2,
    )
    caplog.set_level(logging.INFO, logger="feature_store.publish")
    tables = ["profile_daily", "account_daily"]

    snapshot = publish_artifact(spark, conf, "online_features", as_of=D2, tables=tables)

    described = {
        t: (info["as_of_date"], info["oldest_as_of_date"], info["rows"])
        for t, info in snapshot.manifest["tables"].items()
    }
    assert described == {
        "profile_daily": ("2026-03-11", "2026-03-10", 2),  # p1 from D2, p2 still from D1
        "account_daily": ("2026-03-10", "2026-03-10", 2),
    }
    assert snapshot.manifest["as_of_date"] == "2026-03-11"
    assert (
        "online_features as of 2026-03-11: account_daily is as of 2026-03-10, 1 day(s) behind"
        in caplog.text
    )
    serving.verify(snapshot.path, public_key=signing.trusted_public_key(conf))

    # The export command says it too, table by table.
    args = ["--date", D2.isoformat(), "--table", "profile_daily", "--table", "account_daily"]
    assert export_online.main([*args, *cli_args(conf)]) == 0
    out = capsys.readouterr().out
    assert "account_daily" in out and "as of 2026-03-10 (1 day behind the snapshot)" in out
    profile_line = next(line for line in out.splitlines() if "profile_daily" in line)
    assert "as of 2026-03-11  (feature table version" in profile_line


def test_retention_must_keep_at_least_one_version(tmp_path):
    with pytest.raises(ConfigError, match="key 'publish.retention_versions' must be at least 1"):
        make_config(tmp_path, "publish.retention_versions=0")
    assert make_config(tmp_path).publish.retention_versions == 5

"""The session factory: Delta, UTC, adaptive execution, native BLAS, clear errors."""

import pytest

from feature_store.spark import SparkSetupError, check_java, delta_maven_coordinates


def test_session_is_configured_for_delta_utc_and_aqe(spark, config):
    conf = spark.conf
    assert conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert (
        conf.get("spark.sql.catalog.spark_catalog")
        == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    )
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.sql.adaptive.enabled") == "true"
    # Sized for the machine, not Spark's cluster defaults (10,000 listing tasks per VACUUM,
    # 50 snapshot tasks). Jobs run in-process by other tests apply the default config's
    # values to this shared session, so the bound is the point, not the exact value.
    assert int(conf.get("spark.sql.sources.parallelPartitionDiscovery.parallelism")) <= 8
    assert int(conf.get("spark.databricks.delta.snapshotPartitions")) <= 4
    assert spark.sparkContext.master == config.spark.master == "local[2]"
    assert delta_maven_coordinates() == [
        "io.delta:delta-spark_4.2_2.13:4.4.0",
        "io.delta:delta-storage:4.4.0",
    ]


def test_delta_round_trip_and_time_travel(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    spark.range(5).write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 5
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 3


def test_mllib_uses_native_blas(spark):
    # With libopenblas0-pthread installed (make does it), netlib loads the native
    # library instead of printing `JNI_OnLoad ... failed` and falling back to Java.
    blas = spark.sparkContext._jvm.dev.ludovic.netlib.blas.BLAS.getInstance()
    assert blas.getClass().getSimpleName() == "JNIBLAS"


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java-here"))
    with pytest.raises(SparkSetupError, match="Java not found: Spark needs Java 17"):
        check_java()
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SparkSetupError, match="Java not found"):
        check_java()


def test_missing_delta_jars_are_a_clear_error(tmp_path):
    from conftest import make_config

    from feature_store.spark import build_session

    empty = tmp_path / "jars"
    empty.mkdir()
    config = make_config(tmp_path, f"spark.jars_dir={empty}")
    with pytest.raises(
        SparkSetupError, match=r"spark.jars_dir .*jars holds no jars: run marquee doctor --maven"
    ):
        build_session(config)

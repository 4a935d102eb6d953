"""The session factory: Delta, UTC, adaptive execution, native BLAS, clear errors; the
locked Delta jars set-up fetches."""

import functools
import http.server
import importlib.util
import threading
from pathlib import Path

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
    # what the driver's JVM was started with (the runtime conf shows whichever config
    # last asked for the shared session)
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = list(runtime.getInputArguments())
    assert {"-Duser.timezone=UTC", "-XX:-DontCompileHugeMethods"} <= set(arguments)
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


STOP_AND_RESTART = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from conftest import make_config
from pyspark import SparkContext
from feature_store.spark import build_session, stop_session_and_jvm
config = make_config(Path(sys.argv[2]))
spark = build_session(config)
first = SparkContext._gateway.proc
stop_session_and_jvm(spark)
print("first JVM exit code", first.poll())
spark = build_session(config)
print("second session counts", spark.range(7).count())
"""


def test_stopping_the_session_and_jvm_ends_the_jvm_and_a_new_session_starts(tmp_path):
    """make run frees the driver JVM's memory for the DAGs' tasks, then reports from a new
    session (spark.stop() alone leaves the JVM running)."""
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", STOP_AND_RESTART, tests, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("first", "second"))]
    assert lines == ["first JVM exit code 0", "second session counts 7"]


def _delta_jars_script():
    """infra/delta_jars.py, which set-up runs before any package is installed."""
    path = Path(__file__).resolve().parent.parent / "infra" / "delta_jars.py"
    spec = importlib.util.spec_from_file_location("delta_jars", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_jar_lock_pins_the_installed_delta_in_the_folder_spark_loads(config):
    """Set-up fetches the locked jars into the folder the session factory reads; a lock
    behind the installed Delta would land them where no session looks."""
    from feature_store.spark import kept_jars_dir

    jars = _delta_jars_script()
    roots, pinned = jars.read_lock(jars.LOCK)
    assert roots == delta_maven_coordinates()
    folder = Path(config.paths.state_dir) / "jars" / jars.folder_name(roots)
    assert folder == kept_jars_dir(config)
    names = {jars.ivy_name(path) for path, _ in pinned}
    assert {"io.delta_delta-spark_4.2_2.13-4.4.0.jar", "io.delta_delta-storage-4.4.0.jar"} <= names
    assert all(len(digest) == 64 for _, digest in pinned)


@pytest.fixture
def jar_repository(tmp_path):
    """A Maven-style repository over HTTP on this host, serving ``tmp_path / "repo"``."""
    root = tmp_path / "repo"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def publish_jar(root: Path, path: str, data: bytes) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)


def test_locked_jars_are_fetched_under_spark_names_once(jar_repository, tmp_path):
    import hashlib

    jars = _delta_jars_script()
    root, url = jar_repository
    paths = ["io/delta/delta-storage/9.9/delta-storage-9.9.jar", "org/x/y-z/1.0/y-z-1.0.jar"]
    lines = []
    for i, path in enumerate(paths):
        publish_jar(root, path, b"jar %d" % i)
        lines.append(f"{path} {hashlib.sha256(b'jar %d' % i).hexdigest()}")
    lock = tmp_path / "delta-jars.lock"
    lock.write_text(
        "# pinned\nroots: io.delta:delta-spark_4.2_2.13:9.9 io.delta:delta-storage:9.9\n"
    )
    lock.write_text(lock.read_text() + "\n".join(lines) + "\n")

    folder = jars.fetch(tmp_path / "state", lock, repository=url)

    assert folder == tmp_path / "state" / "jars" / "io.delta_delta-spark_4.2_2.13_9.9"
    assert sorted(p.name for p in folder.iterdir()) == [
        "COMPLETE",
        "io.delta_delta-storage-9.9.jar",
        "org.x_y-z-1.0.jar",
    ]
    assert (folder / "org.x_y-z-1.0.jar").read_bytes() == b"jar 1"
    # a complete folder is kept as it is: no request at all
    (root / paths[0]).unlink()
    assert jars.fetch(tmp_path / "state", lock, repository=url) == folder


def test_a_jar_whose_bytes_differ_from_the_lock_is_refused_and_nothing_is_kept(
    jar_repository, tmp_path
):
    jars = _delta_jars_script()
    root, url = jar_repository
    path = "io/delta/delta-storage/9.9/delta-storage-9.9.jar"
    publish_jar(root, path, b"tampered")
    lock = tmp_path / "delta-jars.lock"
    lock.write_text(f"roots: io.delta:delta-storage:9.9\n{path} {'0' * 64}\n")
    with pytest.raises(jars.JarError, match="SHA-256 [0-9a-f]{64}, the lock pins 0{64}"):
        jars.fetch(tmp_path / "state", lock, repository=url)
    with pytest.raises(jars.JarError, match="HTTP Error 404"):
        jars.fetch(tmp_path / "state", lock, repository=url + "/nowhere")
    assert list((tmp_path / "state" / "jars").iterdir()) == []

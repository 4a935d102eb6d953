"""The one Spark session factory, for jobs, the CLI and the tests.

Delta's jars are not in the delta-spark wheel. Spark resolves them from Maven
Central through its own package resolution (`spark.jars.packages`) on first use and
caches them in the Ivy cache; `marquee doctor --warm` does that once at set-up and keeps
a copy of the resolved jars under ``<state_dir>/jars``. Every later driver loads that
copy as ``spark.jars``: no Ivy resolution (3 s and a screen of report per JVM start).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from feature_store.config import Config

log = logging.getLogger(__name__)

SCALA_VERSION = "2.13"
# The drivers' logging: warnings, one line each, no start-up notices.
LOG4J_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "log4j2.properties"
# For drivers that live a minute on small data (a demo's DAG tasks): the C2 compiler
# costs more than it saves there (a daily DAG run 270 -> 185 s in the tests).
SHORT_LIVED_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_JARS_COMPLETE = "COMPLETE"  # written last by keep_delta_jars: the folder is whole

# delta-spark's POM drags in older copies of libraries Spark already ships (Hadoop
# client, Parquet, Jackson, log4j...). Two versions of one class on the classpath is
# a bug waiting to happen, so resolve Delta's own jars only.
_PROVIDED_BY_SPARK = (
    "com.fasterxml.jackson.core:jackson-annotations",
    "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-databind",
    "com.github.luben:zstd-jni",
    "com.google.code.findbugs:jsr305",
    "commons-pool:commons-pool",
    "io.airlift:aircompressor",
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common",
    "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures",
    "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-jackson",
    "org.locationtech.jts:jts-core",
    "org.roaringbitmap:RoaringBitmap",
    "org.roaringbitmap:shims",
    "org.slf4j:slf4j-api",
    "org.xerial.snappy:snappy-java",
)


class SparkSetupError(RuntimeError):
    """Spark cannot start: Java or Delta's jars are missing. The message says how to fix it."""


def delta_maven_coordinates() -> list[str]:
    """Maven coordinates of the Delta jars matching the installed pyspark and delta-spark."""
    import pyspark

    delta_version = importlib.metadata.version("delta-spark")
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return [
        f"io.delta:delta-spark_{spark_minor}_{SCALA_VERSION}:{delta_version}",
        f"io.delta:delta-storage:{delta_version}",
    ]


def kept_jars_dir(config: Config) -> Path:
    """Where set-up keeps the resolved Delta jars, one folder per Delta and Spark version."""
    name = delta_maven_coordinates()[0].replace(":", "_")
    return Path(config.paths.state_dir) / "jars" / name


def delta_jars(config: Config) -> list[str]:
    """Delta's jars as local files: ``spark.jars_dir`` when configured, else the copy set-up
    kept (empty when there is none yet: Spark then resolves them from Maven)."""
    sc = config.spark
    if sc.jars_dir:
        jars = sorted(str(p) for p in Path(sc.jars_dir).glob("*.jar"))
        if not jars:
            raise SparkSetupError(
                f"spark.jars_dir {sc.jars_dir} holds no jars: run marquee doctor --maven"
            )
        return jars
    kept = kept_jars_dir(config)
    if not (kept / _JARS_COMPLETE).is_file():
        return []
    return sorted(str(p) for p in kept.glob("*.jar"))


def keep_delta_jars(spark: SparkSession, config: Config) -> Path | None:
    """Copy the jars Spark resolved for this session (``spark.jars``) to `kept_jars_dir`,
    so later drivers skip resolution. None when the session did not resolve them."""
    resolved = [j for j in spark.conf.get("spark.jars", "").split(",") if j.endswith(".jar")]
    target = kept_jars_dir(config)
    # a session started from the kept copy (set-up run again) has nothing new to keep
    if not resolved or config.spark.jars_dir or delta_jars(config):
        return None
    target.mkdir(parents=True, exist_ok=True)
    for jar in resolved:
        shutil.copy2(jar.removeprefix("file:").removeprefix("//"), target)
    (target / _JARS_COMPLETE).write_text("\n".join(delta_maven_coordinates()) + "\n")
    return target


def check_java() -> str:
    """Return the Java version string, or raise a clear error when Java is missing or too old."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise SparkSetupError(
            "Java not found: Spark needs Java 17. Install it (Debian: apt-get install "
            "openjdk-17-jre-headless) or set JAVA_HOME."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise SparkSetupError(f"Spark 4 needs Java 17 or newer; {java} reports: {out.strip()}")
    return out.splitlines()[0] if out else "unknown"


def java_options(config: Config, *, driver: bool) -> str:
    """The JVM options of the driver or the executors: UTC clocks (event dates are UTC
    days), the driver's Derby files under the state folder, then the config's own."""
    # Let the JIT compile methods over 8,000 bytes of bytecode: whole-stage codegen of a
    # wide query (the generator's sessions, a feature table's aggregates) makes such
    # methods, which HotSpot would otherwise interpret: sessions ran 1.6x faster.
    options = ["-Duser.timezone=UTC", "-XX:-DontCompileHugeMethods"]
    if driver:
        options.append(f"-Dderby.system.home={config.paths.state_dir}")
        if LOG4J_CONFIG.is_file():
            options.append(f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}")
    if config.spark.java_options:
        options.append(config.spark.java_options)
    return " ".join(options)


def build_session(config: Config, *, master: str | None = None) -> SparkSession:
    """Create (or return the running) Spark session configured for Delta and this machine."""
    check_java()
    sc = config.spark
    builder = (
        SparkSession.builder.master(master or sc.master)
        .appName(sc.app_name)
        .config("spark.driver.memory", sc.driver_memory)
        .config("spark.driver.maxResultSize", sc.max_result_size)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", java_options(config, driver=True))
        .config("spark.executor.extraJavaOptions", java_options(config, driver=False))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.adaptive.coalescePartitions.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(sc.shuffle_partitions))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.databricks.delta.snapshotPartitions", str(sc.delta_snapshot_partitions))
        .config(
            "spark.sql.sources.parallelPartitionDiscovery.parallelism",
            str(sc.file_listing_parallelism),
        )
        # Idempotent partition rewrites rely on replaceWhere over data columns.
        .config("spark.databricks.delta.replaceWhere.dataColumns.enabled", "true")
        # Inferring every filter's constraints grew combinatorially on the staged titles'
        # plan (a 1-row day's bronze write planned for 38 s); the jobs need no inferred filter
        .config("spark.sql.constraintPropagation.enabled", "false")
        .config("spark.ui.enabled", str(sc.ui_enabled).lower())
        .config("spark.ui.showConsoleProgress", str(sc.show_progress).lower())
        .config("spark.sql.warehouse.dir", str(Path(config.paths.state_dir) / "warehouse"))
        .config("spark.pyspark.python", sys.executable)
    )
    extra_packages = sc.extra_package_list
    jars = delta_jars(config)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
        if extra_packages:
            builder = builder.config("spark.jars.packages", ",".join(extra_packages))
    else:
        packages = [*delta_maven_coordinates(), *extra_packages]
        builder = builder.config("spark.jars.packages", ",".join(packages))
        builder = builder.config("spark.jars.excludes", ",".join(_PROVIDED_BY_SPARK))
    for key, value in sc.extra_conf.items():
        builder = builder.config(key, value)

    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/gateway errors carry Ivy's resolution report on stderr
        raise SparkSetupError(
            "Spark could not start with Delta Lake. If the log above shows 'unresolved "
            f"dependency', the Delta jars {delta_maven_coordinates()} could not be fetched: "
            "check access to Maven Central, or fetch them with `marquee doctor --maven` "
            f"and set spark.jars_dir. Cause: {exc}"
        ) from exc
    # Python workers (the pseudonymization UDF) must run this interpreter, which has
    # pyarrow: outside spark-submit PySpark starts whatever `python3` the PATH finds.
    spark.sparkContext.pythonExec = spark.conf.get("spark.pyspark.python", sys.executable)
    spark.sparkContext.setLogLevel(sc.log_level)
    _check_delta_loaded(spark)
    return spark


def _check_delta_loaded(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - the only way to ask the JVM for a class
    try:
        jvm.java.lang.Class.forName(
            "io.delta.sql.DeltaSparkSessionExtension",
            True,
            jvm.Thread.currentThread().getContextClassLoader(),
        )
    except Exception as exc:
        raise SparkSetupError(
            "Delta Lake's jars are not on Spark's classpath "
            "(io.delta.sql.DeltaSparkSessionExtension not found); run `marquee doctor --warm`."
        ) from exc


def stop_session_and_jvm(spark: SparkSession) -> None:
    """Stop the session and end the driver's JVM with it.

    ``spark.stop()`` keeps PySpark's gateway JVM (and the heap the driver grew) alive for
    the next session of this process. The gateway JVM exits when its stdin closes; the
    next ``build_session`` starts a new one.
    """
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway  # noqa: SLF001 - PySpark keeps the gateway here
    if gateway is None:
        return
    gateway.shutdown()
    process = getattr(gateway, "proc", None)
    if process is not None:
        process.stdin.close()
        process.wait(timeout=120)
    SparkContext._gateway = None  # noqa: SLF001
    SparkContext._jvm = None  # noqa: SLF001

"""The cluster path: a Spark standalone cluster (one master, two workers on loopback)
started by ``infra/spark-standalone/cluster.sh`` with pyspark's own launchers, a feature
build submitted to it with ``marquee submit``, and the table it writes compared with the
same build in local mode on a copy of the same bronze lake."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from chispa import assert_approx_df_equality
from conftest import SHORT_LIVED_JVM, TEST_KEY, extra_conf, make_config, state_overrides

from feature_store import lake as lk
from feature_store.features.build import build_features
from feature_store.features.tables import REGISTRY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "infra" / "spark-standalone" / "cluster.sh"
TABLES = ["profile_daily", "title_daily"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "MARQUEE_PYTHON": sys.executable,
        "CLUSTER_DIR": str(folder),
        "MASTER_PORT": str(free_port()),
        "MASTER_WEBUI_PORT": str(free_port()),
        "WORKERS": "2",
        "WORKER_CORES": "1",
        "WORKER_MEMORY": "1g",
        # the master and workers live for one build: no C2 compiler (see SHORT_LIVED_JVM)
        "SPARK_DAEMON_JAVA_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    started = subprocess.run(
        [str(CLUSTER_SCRIPT), "start"], env=env, capture_output=True, text=True
    )
    try:
        assert started.returncode == 0, started.stderr
        yield {
            "master": f"spark://127.0.0.1:{env['MASTER_PORT']}",
            "state_url": f"http://127.0.0.1:{env['MASTER_WEBUI_PORT']}/json/",
        }
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], env=env, check=False)


def master_state(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


# A driver and executors that fit beside the 1g workers on two cores, with the options
# of short-lived JVMs.
CLUSTER_SIZES = (
    "spark.driver_memory=1g",
    extra_conf({"spark.executor.memory": "512m", "spark.executor.cores": "1"}),
    SHORT_LIVED_JVM,
)


def test_a_feature_build_on_the_cluster_writes_what_local_mode_writes(
    spark, cluster, generated_world, tmp_path
):
    assert master_state(cluster["state_url"])["aliveworkers"] == 2

    # the shared world's bronze, one copy for each build
    local_state, cluster_state = tmp_path / "local", tmp_path / "cluster"
    generated_world.copy(local_state, "bronze")
    generated_world.copy(cluster_state, "bronze")
    day = generated_world.spec.end_date

    local_config = make_config(local_state, *CLUSTER_SIZES)
    assert build_features(spark, local_config, day, TABLES).ok

    command = [str(Path(sys.executable).parent / "marquee"), "submit", "build_features"]
    command += ["--master", cluster["master"]]
    for override in state_overrides(cluster_state, *CLUSTER_SIZES):
        command += ["--set", override]
    command += ["--", "--date", day.isoformat(), *(f"--table={t}" for t in TABLES)]
    env = {**os.environ, "MARQUEE_PSEUDONYMIZATION_KEY": TEST_KEY}
    submitted = subprocess.run(command, env=env, capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr[-4000:]

    # It ran as an application of the cluster, not in local mode (the master moves an
    # application to "completed" a moment after its driver has gone).
    deadline = time.monotonic() + 60
    while (state := master_state(cluster["state_url"]))["activeapps"]:
        assert time.monotonic() < deadline, state["activeapps"]
        time.sleep(1)
    assert [(a["name"], a["state"]) for a in state["completedapps"]] == [("marquee", "FINISHED")]

    for table in TABLES:
        local = lk.read_table(spark, lk.Lake(str(local_state / "lake")).features(table))
        remote = lk.read_table(spark, lk.Lake(str(cluster_state / "lake")).features(table))
        assert local.count() > 0
        # Every value the same but written_at (when each build committed); sums to the
        # last digits only, since two executors add partial sums in another order.
        keys = [*REGISTRY.get(table).keys, "as_of_date"]
        assert_approx_df_equality(
            remote.drop("written_at").orderBy(*keys),
            local.drop("written_at").orderBy(*keys),
            1e-9,
            ignore_nullable=True,
        )


def test_the_submit_command_gives_the_jvm_what_the_session_factory_would(tmp_path):
    from feature_store.spark import LOG4J_CONFIG, delta_maven_coordinates
    from feature_store.submit import JOBS_DIR, spark_submit_command

    config = make_config(
        tmp_path,
        "spark.driver_memory=3g",
        "spark.java_options=-XX:TieredStopAtLevel=1",
        "spark.jars_dir=",  # no local copy of Delta's jars: the cluster resolves them
    )
    master = "spark://10.1.2.3:7077"
    command, env = spark_submit_command(
        config, "build_features", ["--date", "2026-03-01"], master=master
    )
    assert command[0].endswith("pyspark/bin/spark-submit")
    assert command[1:3] == ["--master", master]
    assert command[command.index("--driver-memory") + 1] == "3g"
    assert command[command.index("--packages") + 1] == ",".join(delta_maven_coordinates())
    confs = dict(c.split("=", 1) for c in command[1::] if "=" in c and c.startswith("spark."))
    assert confs["spark.pyspark.python"] == sys.executable
    # UTC clocks, huge methods compiled (and the driver's Derby and log settings), then the
    # config's own options
    ours = "-Duser.timezone=UTC -XX:-DontCompileHugeMethods"
    assert confs["spark.driver.extraJavaOptions"] == (
        f"{ours} -Dderby.system.home={tmp_path} "
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -XX:TieredStopAtLevel=1"
    )
    assert confs["spark.executor.extraJavaOptions"] == f"{ours} -XX:TieredStopAtLevel=1"
    # the job itself, its flags, and the master again for build_session
    tail = command[command.index(str(JOBS_DIR / "build_features.py")) :]
    assert tail[1:] == ["--date", "2026-03-01", "--master", master]
    assert env["SPARK_HOME"] == str(Path(command[0]).parent.parent)
    with pytest.raises(ValueError, match="no job 'build_feature'.*build_features"):
        spark_submit_command(config, "build_feature", [], master=master)

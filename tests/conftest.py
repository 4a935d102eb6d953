"""One Spark session for the whole run (local[2], few shuffle partitions, UI off),
built by the same factory as the jobs, with all state under a temporary folder; one
generated world per run (tests/worlds.py); and one embedded Airflow per test process for
the DAG tests."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from feature_store.config import Config, load_config

TEST_KEY = "test-pseudonymization-key-0123456789"
DAGS = Path(__file__).resolve().parent.parent / "dags"


# The modules that take longest, longest first (measured wall seconds of a one-worker run,
# docs/benchmarks.md): with two xdist workers handing out whole modules in collection order
# (--no-loadscope-reorder), the long ones start early and the short ones fill the gaps, so
# neither worker is left with a long module at the end while the other idles.
LONGEST_MODULES = (
    "test_dags.py",
    "test_backfill.py",
    "test_churn.py",
    "test_dags_training.py",
    "test_ingest_delta.py",
    "test_forget.py",
    "test_feature_store_delta.py",
    "test_cluster.py",
    "test_forecast.py",
    "test_jobs.py",
    "test_recs_platform.py",
    "test_training_sets.py",
    "test_publish.py",
    "test_duckdb_reference.py",
    "test_generator_lakes.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first, the rest in their usual order (a stable sort)."""
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("marquee-state")


# Every test JVM runs queries of a few rows: generating and compiling each query's code
# (whole-stage codegen, Janino) costs more than it saves there; interpreted, the feature
# builds of the tests took 15-20 % less time. Adaptive execution re-plans the rest of a
# query after each shuffle, which a few rows never need: without it, the backfill and
# ingest modules took 8 % less CPU (docs/benchmarks.md).
TINY_DATA_SPARK = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}


def extra_conf(conf: dict[str, str] | None = None) -> str:
    """A ``--set`` of ``spark.extra_conf``: the tests' own Spark settings plus ``conf``."""
    return "spark.extra_conf=" + json.dumps({**TINY_DATA_SPARK, **(conf or {})})


# For the test process's own session only: Delta's per-file column statistics (collected
# on every write, read to skip files) cost a tenth of the in-process tests' time on lakes
# of a few files each, where no file can be skipped. The JVMs the end-to-end tests start
# (DAG tasks, the cluster, the demo) keep Delta's defaults, as deployments run them.
TEST_SESSION_DELTA = extra_conf(
    {
        "spark.databricks.delta.stats.collect": "false",
        "spark.databricks.delta.stats.skipping": "false",
    }
)


@pytest.fixture(scope="session")
def config(state_dir: Path) -> Config:
    return make_config(state_dir, TEST_SESSION_DELTA)


# For the JVMs a test starts in another process (a spark-submit, an Airflow task, a
# cluster's executors): each lives a minute on tiny data, where the C2 compiler costs more
# than it saves (the daily DAG's run 270 -> 185 s, the training DAG's 240 -> 160 s). Not
# for the test workers' own long-lived JVMs, which were slower with it.
SHORT_LIVED_JVM = "spark.java_options=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _kept_delta_jars() -> list[str]:
    """Set-up's copy of Delta's jars (`make test` runs set-up first), for every JVM a test
    starts: an Ivy resolution per start cost seconds, and the JVMs of parallel test
    workers waited on each other's lock of Ivy's cache. Without a copy, Ivy resolves."""
    from feature_store.spark import delta_jars, kept_jars_dir

    project = load_config(None, [], environ={"MARQUEE_PSEUDONYMIZATION_KEY": TEST_KEY})
    return [f"spark.jars_dir={kept_jars_dir(project)}"] if delta_jars(project) else []


def state_overrides(state_dir: Path, *extra: str) -> list[str]:
    """``--set`` values that put all state under ``state_dir`` and size Spark for two
    cores and tiny data; ``extra`` come last and win. Tests that start jobs in other
    processes (spark-submit, Airflow tasks) pass these on the command line."""
    return [
        f"paths.state_dir={state_dir}",
        f"paths.lake={state_dir}/lake",
        f"paths.mlflow={state_dir}/mlflow",
        f"paths.published={state_dir}/published",
        "spark.shuffle_partitions=2",
        "spark.delta_snapshot_partitions=1",
        "spark.file_listing_parallelism=2",
        "spark.show_progress=false",
        "spark.driver_memory=2g",
        "spark.log_level=ERROR",
        extra_conf(),
        *_kept_delta_jars(),
        *extra,
    ]


def make_config(state_dir: Path, *overrides: str) -> Config:
    return load_config(
        None,
        state_overrides(state_dir, *overrides),
        environ={"MARQUEE_PSEUDONYMIZATION_KEY": TEST_KEY},
    )


@pytest.fixture(scope="session")
def spark(config: Config):
    from feature_store.spark import build_session

    session = build_session(config)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def generated_world(spark, tmp_path_factory):
    """The run's one generated and ingested lake (tests/worlds.py): read it, never write
    to it; copy it (``generated_world.copy(tmp_path)``) to change it."""
    from worlds import shared_world

    return shared_world(spark, tmp_path_factory)


@pytest.fixture(scope="session")
def model_world(spark, tmp_path_factory):
    """The run's one lake of weeks of bronze and the churn and recommender features
    (tests/worlds.py), read-only like ``generated_world``."""
    from worlds import shared_model_world

    return shared_model_world(spark, tmp_path_factory)


def load_bench_module(name: str):
    """A module of bench/ (not a package: its scripts import each other by file name,
    so bench/ goes on the import path)."""
    bench = Path(__file__).resolve().parents[1] / "bench"
    if str(bench) not in sys.path:
        sys.path.append(str(bench))
    path = bench / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_landing(
    lake_root: str | Path, source: str, date: dt.date, lines: list, name="part-0.txt"
) -> Path:
    """Write landing lines (dicts become JSON, str and bytes are written as they are)."""
    folder = Path(lake_root) / "landing" / source / f"date={date.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        chunks.append(line if isinstance(line, bytes) else line.encode())
    path = folder / name
    path.write_bytes(b"\n".join(chunks) + b"\n")
    return path


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """A fresh Airflow (SQLite) for this test process, configured before Airflow is first
    imported (its settings are read once); Spark tasks use the local connection."""
    if "airflow.settings" in sys.modules:
        pytest.fail("Airflow was imported before the airflow_home fixture could configure it")
    from feature_store.airflow_local import airflow_environment

    state = tmp_path_factory.mktemp("airflow-state")
    env = {
        **airflow_environment(make_config(state)),  # as make run sets it up
        # the jobs under spark-submit must pseudonymize like the generator did
        "MARQUEE_PSEUDONYMIZATION_KEY": TEST_KEY,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        from airflow.utils import db

        db.initdb()
        yield env


@pytest.fixture(scope="session")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), include_examples=False)

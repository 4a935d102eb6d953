"""The Airflow DAGs in dags/: they import cleanly, their task graphs, how a run finds its
day, backfill, and the daily DAG end to end with ``dag.test()`` on tiny data (the
training DAG's end-to-end runs are in tests/test_dags_training.py).

Airflow runs against a temporary AIRFLOW_HOME with SQLite, configured before Airflow is
first imported. Every Spark task is a real ``spark-submit`` (a JVM and a Spark session
each, ~20 s before any work), so the daily run here makes four.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DAGS, SHORT_LIVED_JVM, make_config, state_overrides
from worlds import WORLD_OVERRIDES

from feature_store import lake as lk
from feature_store import serving, shared_driver

pytestmark = pytest.mark.integration

UTC = dt.UTC
FORECAST = "popularity_forecast"


def dag_overrides(state: Path) -> list[str]:
    """--set values for the tasks' jobs: state under ``state``, a 1g driver per task, and
    the JVM options of short-lived JVMs (see conftest)."""
    return state_overrides(state, "spark.driver_memory=1g", SHORT_LIVED_JVM)


def run(dag, *, logical_date, conf, **kwargs):
    """dag.test() without retries (a failure fails at once); task id -> state."""
    for task in dag.tasks:
        task.retries = 0
    dag_run = dag.test(logical_date=logical_date, run_conf=conf, **kwargs)
    return dag_run, {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


# --- import and structure -----------------------------------------------------------------


def test_dags_import_without_errors_and_parse_without_heavy_imports(dagbag, airflow_home):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"marquee_daily", "marquee_training"}
    # Parsing imports no Spark, MLflow or configuration code (the scheduler parses often).
    probe = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"DagBag(dag_folder={str(DAGS)!r}, include_examples=False); "
        "heavy = ('pyspark', 'mlflow', 'feature_store.config'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **airflow_home},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def upstream(dag) -> dict[str, set[str]]:
    return {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}


def test_daily_dag_ingests_builds_and_validates_its_interval_day(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    from feature_store import orchestration as orc

    dag = dagbag.get_dag("marquee_daily")
    assert upstream(dag) == {
        "window": set(),
        "start_spark_driver": set(),
        "ingest": {"window", "start_spark_driver"},
        "build_features": {"window", "ingest"},
        "validate_features": {"window", "build_features"},
        "publish_online_features": {"window", "validate_features"},
        "stop_spark_driver": {"start_spark_driver", "publish_online_features"},
    }
    # the shared driver lives as long as the run's jobs, and is stopped whatever they do
    assert dag.get_task("start_spark_driver").is_setup
    assert dag.get_task("stop_spark_driver").is_teardown
    assert isinstance(dag.timetable, CronDataIntervalTimetable)  # runs have [D, D+1)
    assert dag.max_active_runs == 1 and dag.max_active_tasks == 1 and not dag.catchup
    for task in dag.tasks:
        assert task.retries == 2 and task.retry_delay == dt.timedelta(minutes=5)
        assert task.depends_on_past  # a day after the day before
    spark_tasks = [t for t in dag.tasks if isinstance(t, orc.SparkJobOperator)]
    others = {t.task_id for t in dag.tasks} - {t.task_id for t in spark_tasks}
    assert others == {"window", "start_spark_driver", "stop_spark_driver"}
    assert [t.application.split("/")[-1] for t in spark_tasks] == [
        "ingest_events.py",
        "build_features.py",
        "validate_features.py",
        "publish_artifacts.py",
    ]
    assert dag.get_task("ingest").outlets == [orc.BRONZE]
    assert dag.get_task("validate_features").outlets == [orc.FEATURES]


def test_training_dag_trains_registers_promotes_and_publishes_each_model(dagbag):
    from airflow.sdk import AssetOrTimeSchedule, TriggerRule

    from feature_store import orchestration as orc

    dag = dagbag.get_dag("marquee_training")
    expected = {
        "window": set(),
        "start_spark_driver": set(),
        "publish": {f"promote_{m}" for m in orc.MODELS},
        "stop_spark_driver": {"start_spark_driver", "publish"},
    }
    for model in orc.MODELS:
        expected[f"train_{model}"] = {"window", "start_spark_driver"}
        expected[f"registered_{model}"] = {f"train_{model}", "window"}
        expected[f"promote_{model}"] = {f"registered_{model}"}
    assert upstream(dag) == expected
    assert dag.get_task("publish").trigger_rule == TriggerRule.ALL_DONE
    # after every validated day (the daily DAG's asset) or weekly on Monday
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.asset_condition == orc.FEATURES
    assert dag.timetable.timetable.expression == "0 6 * * 1"
    assert dag.max_active_runs == 1 and dag.max_active_tasks == 1
    assert all(t.retries == 2 for t in dag.tasks)
    assert dag.params["models"] == list(orc.MODELS)
    train = dag.get_task("train_recommender")
    assert train.application.endswith("jobs/train_recommender.py")
    assert train.job_args[:2] == ["--tag", "airflow.run_id={{ run_id }}"]


# --- the run's day ------------------------------------------------------------------------


def event(date: str | None):
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult

    from feature_store import orchestration as orc

    asset = {"name": orc.FEATURES.name, "uri": orc.FEATURES.uri, "extra": {}}
    extra = {"date": date} if date else {}
    stamp = dt.datetime(2026, 3, 9, 1, tzinfo=UTC)
    return AssetEventDagRunReferenceResult(
        asset=asset, extra=extra, source_aliases=[], timestamp=stamp
    )


def test_the_run_day_comes_from_params_asset_events_or_the_data_interval(airflow_home):
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from feature_store.orchestration import run_date

    def day(**context):
        return run_date({"params": {"date": None}, **context})

    daily_end = dt.datetime(2026, 3, 6, tzinfo=UTC)  # interval [03-05, 03-06)
    assert day(data_interval_end=daily_end) == dt.date(2026, 3, 5)
    monday = dt.datetime(2026, 3, 9, 6, tzinfo=UTC)  # the weekly run: the week to Sunday
    assert day(data_interval_end=monday) == dt.date(2026, 3, 8)
    # asset-triggered: the newest day among the events, whatever the interval says
    events = TriggeringAssetEventsAccessor.build([event("2026-03-04"), event("2026-03-06")])
    assert day(triggering_asset_events=events, data_interval_end=monday) == dt.date(2026, 3, 6)
    assert run_date({"params": {"date": "2026-02-01"}, "triggering_asset_events": events}) == (
        dt.date(2026, 2, 1)
    )
    with pytest.raises(AirflowFailException, match="without a 'date' extra"):
        day(triggering_asset_events=TriggeringAssetEventsAccessor.build([event(None)]))
    with pytest.raises(AirflowFailException, match="no data interval"):
        day(data_interval_end=None)


def test_backfill_creates_one_daily_run_per_day(dagbag, airflow_home):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    from feature_store.orchestration import run_date

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dagbag, "dags-folder", None)
    command = ["backfill", "create", "--dag-id", "marquee_daily"]
    command += ["--from-date", "2026-06-01", "--to-date", "2026-06-03"]
    # required with depends_on_past: which existing runs a backfill may run again
    command += ["--reprocess-behavior", "failed"]
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, *command], env={**os.environ, **airflow_home}, check=True)
    with create_session() as session:
        runs = session.query(DagRun).filter(
            DagRun.dag_id == "marquee_daily", DagRun.run_type == DagRunType.BACKFILL_JOB
        )
        days = sorted(
            run_date({"params": {}, "data_interval_end": r.data_interval_end}) for r in runs
        )
        # No scheduler runs them; left queued they would hold back later tests' runs of
        # this DAG (depends_on_past looks at the run before).
        runs.delete()
        session.query(Backfill).delete()
    assert days == [dt.date(2026, 6, 1), dt.date(2026, 6, 2), dt.date(2026, 6, 3)]


# --- end to end -----------------------------------------------------------------------------

# One feature table and the one source it reads: every source and table costs seconds of
# fixed work however tiny the data (the jobs do all of them by default; their own tests
# cover that).
JOB_ARGS = {
    "ingest_events": ["--source", "viewing"],
    "build_features": ["--table", "region_title_daily"],
    "validate_features": ["--table", "region_title_daily"],
    "publish_artifacts": ["--table", "region_title_daily"],
}


def test_daily_dag_end_to_end(spark, dagbag, generated_world, tmp_path):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    # the last landing day of the shared world, dirt and all, in a lake of its own
    state = tmp_path / "state"
    day = generated_world.spec.end_date
    generated_world.copy(state, f"landing/viewing/date={day.isoformat()}")
    config = make_config(state)
    dag_run, states = run(
        dagbag.get_dag("marquee_daily"),
        logical_date=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), UTC),
        # a spark-submit per task here; the training DAG's test runs its jobs on a shared driver
        conf={
            "overrides": [
                *dag_overrides(state),
                *WORLD_OVERRIDES,
                "spark.task_driver=spark-submit",
            ],
            "job_args": JOB_ARGS,
        },
    )
    assert states == dict.fromkeys(
        ["window", "start_spark_driver", "ingest", "build_features", "validate_features"]
        + ["publish_online_features", "stop_spark_driver"],
        "success",
    )
    assert not shared_driver.socket_path(state).exists()  # no driver was started
    assert dag_run.state == "success"
    lake = lk.Lake(config.lake)
    viewing = lk.read_table(spark, lake.bronze("viewing"))
    assert viewing.filter(viewing.ingest_date == day).count() > 0
    built = lk.read_table(spark, lake.features("region_title_daily")).select("as_of_date")
    assert [r[0] for r in built.distinct().collect()] == [day]
    online = serving.load_manifest(serving.resolve(state / "published", "online_features"))
    assert online["as_of_date"] == day.isoformat()
    assert list(online["tables"]) == ["region_title_daily"]
    with create_session() as session:
        extras = {e.asset.name: e.extra for e in session.query(AssetEvent).all()}
    assert extras == {
        "marquee_bronze": {"date": day.isoformat()},
        "marquee_features": {"date": day.isoformat()},
    }


def test_the_embedded_airflow_keeps_its_home_database_and_secret_under_the_state_dir(tmp_path):
    from feature_store.airflow_local import airflow_environment

    config = make_config(tmp_path, "spark.master=spark://10.0.0.5:7077")
    first, again = airflow_environment(config), airflow_environment(config)
    home = tmp_path / "airflow"
    assert first["AIRFLOW_HOME"] == str(home)
    assert first["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home}/airflow.db"
    assert first["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS)
    # one secret per home, made once, readable by its owner only
    assert first["AIRFLOW__API_AUTH__JWT_SECRET"] == again["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(first["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32
    assert (home / "jwt_secret").stat().st_mode & 0o077 == 0
    # the Spark tasks go to the configured master
    assert json.loads(first["AIRFLOW_CONN_MARQUEE_SPARK"]) == {
        "conn_type": "spark",
        "host": "spark://10.0.0.5:7077",
    }


def test_a_quiet_run_that_raises_still_shows_what_it_printed(capsys):
    """make run holds back what a DAG run prints; when dag.test itself raises (a broken
    metadata database, a DAG that cannot be serialised), that output is the first clue
    and must reach stderr with the error."""
    import warnings

    from feature_store.airflow_local import EmbeddedAirflow

    class RaisingDag:  # stands in for the DAG only: what is tested is the wrapper
        def test(self, **_):
            print("task outlets before the crash")
            warnings.warn("an Airflow deprecation", DeprecationWarning, stacklevel=1)
            raise RuntimeError("metadata database is locked")

    class OneDagBag:
        import_errors: dict = {}

        def get_dag(self, dag_id):
            return RaisingDag()

    airflow = EmbeddedAirflow(OneDagBag(), quiet=True)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="metadata database is locked"):
            airflow.run("marquee_daily", logical_date=dt.datetime(2026, 1, 9), conf={})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "task outlets before the crash\n"
    assert [w.category for w in shown] == []

"""The Airflow DAGs in dags/: they import cleanly, their task graphs, how a run finds its
day, backfill, and both DAGs end to end with ``dag.test()`` on tiny data.

Airflow runs against a temporary AIRFLOW_HOME with SQLite, configured before Airflow is
first imported. Every Spark task is a real ``spark-submit`` (a JVM and a Spark session
each, ~20 s before any work), so the end-to-end runs keep few: the daily DAG (4), the
training DAG for the popularity forecast (train, promote, publish: 3) and a refused
promotion (1).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_KEY, make_config

from feature_store import lake as lk
from feature_store import serving
from feature_store.generator import GenerationSpec, generate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
UTC = dt.UTC
FORECAST = "popularity_forecast"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    """A fresh Airflow (SQLite) for this module; Spark tasks use the local connection."""
    if "airflow.settings" in sys.modules:
        pytest.fail("Airflow was imported before tests/test_dags.py could configure it")
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


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), include_examples=False)


def overrides(state: Path) -> list[str]:
    """--set values for the jobs: state under ``state``, sizes for two cores and tiny data."""
    return [
        f"paths.state_dir={state}",
        f"paths.lake={state}/lake",
        f"paths.mlflow={state}/mlflow",
        f"paths.published={state}/published",
        "spark.shuffle_partitions=2",
        "spark.delta_snapshot_partitions=1",
        "spark.file_listing_parallelism=2",
        "spark.driver_memory=1g",
        "spark.log_level=ERROR",
    ]


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
        "ingest": {"window"},
        "build_features": {"window", "ingest"},
        "validate_features": {"window", "build_features"},
        "publish_online_features": {"window", "validate_features"},
    }
    assert isinstance(dag.timetable, CronDataIntervalTimetable)  # runs have [D, D+1)
    assert dag.max_active_runs == 1 and dag.max_active_tasks == 1 and not dag.catchup
    for task in dag.tasks:
        assert task.retries == 2 and task.retry_delay == dt.timedelta(minutes=5)
        assert task.depends_on_past  # a day after the day before
    spark_tasks = [t for t in dag.tasks if t.task_id != "window"]
    assert all(isinstance(t, orc.SparkJobOperator) for t in spark_tasks)
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
    expected = {"window": set(), "publish": {f"promote_{m}" for m in orc.MODELS}}
    for model in orc.MODELS:
        expected[f"train_{model}"] = {"window"}
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


def test_daily_dag_end_to_end(spark, dagbag, tmp_path):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    state = tmp_path / "state"
    config = make_config(state)
    spec = GenerationSpec(
        seed=5,
        accounts=60,
        titles=30,
        days=1,
        start_date=dt.date(2026, 3, 4),
        dirty_share=0.0,
        late_share=0.0,
        sessions_per_day=1.0,
    )
    generate(spark, config.lake, spec, pseudonymization_key=TEST_KEY)
    day = spec.end_date
    dag_run, states = run(
        dagbag.get_dag("marquee_daily"),
        logical_date=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), UTC),
        conf={"overrides": overrides(state), "job_args": JOB_ARGS},
    )
    assert states == dict.fromkeys(
        ["window", "ingest", "build_features", "validate_features", "publish_online_features"],
        "success",
    )
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


@pytest.fixture(scope="module")
def forecast_lake(spark, tmp_path_factory):
    """The forecast's synthetic ten weeks of region x title series (tests/test_forecast.py)."""
    from test_forecast import END, write_lake

    state = tmp_path_factory.mktemp("training")
    write_lake(spark, str(state / "lake"))
    return state, END


def aliases(client) -> dict[str, str]:
    return {a: str(v) for a, v in client.get_registered_model(FORECAST).aliases.items()}


def training_conf(state: Path) -> dict:
    return {
        "models": [FORECAST],
        "overrides": overrides(state),
        # one backtest origin and 10 trees: still well ahead of both baselines on this data
        "job_args": {
            "train_forecast": ["--backtest-origins", "1", "--top-n", "5", "--gbt-max-iter", "10"]
        },
    }


def test_training_dag_end_to_end_promotes_and_publishes(spark, dagbag, forecast_lake):
    from mlflow import MlflowClient

    state, end = forecast_lake
    dag = dagbag.get_dag("marquee_training")
    # a weekly run on the Monday after `end`: its day is `end` (a Sunday)
    monday = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(6), UTC)
    dag_run, states = run(dag, logical_date=monday, conf=training_conf(state))
    forecast_tasks = ["window", *(f"{s}_{FORECAST}" for s in ("train", "registered", "promote"))]
    assert {t: states[t] for t in [*forecast_tasks, "publish"]} == dict.fromkeys(
        [*forecast_tasks, "publish"], "success"
    )
    # the models not asked for are skipped, and the run is a success
    assert {s for t, s in states.items() if t not in forecast_tasks and t != "publish"} == {
        "skipped"
    }
    assert dag_run.state == "success"
    ti = {t.task_id: t for t in dag_run.get_task_instances()}
    outcome = ti[f"promote_{FORECAST}"].xcom_pull(task_ids=f"promote_{FORECAST}")
    assert outcome["promoted"] and outcome["as_of"] == end.isoformat()
    uri = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version(FORECAST, outcome["version"])
    assert aliases(client) == {"champion": outcome["version"], "challenger": outcome["version"]}
    assert version.tags["airflow.run_id"] == dag_run.run_id
    for artifact in ("popularity_forecast", "cdn_plan"):
        manifest = serving.load_manifest(serving.resolve(state / "published", artifact))
        assert manifest["model"]["version"] == outcome["version"]
        assert manifest["as_of_date"] == end.isoformat()
    # make run's report of such a run: the promotion, the registry, what serving can pull
    report_lines = demo_report(spark, state, dag_run).splitlines()
    assert f"{FORECAST}: 1 version" in report_lines
    listed = next(
        line.split() for line in report_lines if line.startswith(f"  {outcome['version']} ")
    )
    assert listed[1:3] == ["challenger,champion", end.isoformat()]
    assert (
        f"{FORECAST} v{outcome['version']}: promoted to champion (passed the gate)" in report_lines
    )
    published = [line.split() for line in report_lines if "marquee pull" in line]
    assert [(p[0], p[1]) for p in published] == [
        ("cdn_plan", serving.latest_version(state / "published", "cdn_plan")),
        (FORECAST, serving.latest_version(state / "published", FORECAST)),
    ]


def demo_report(spark, state: Path, dag_run) -> str:
    from feature_store import demo
    from feature_store.airflow_local import DagRunResult

    instances = dag_run.get_task_instances()
    result = DagRunResult(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        state=str(dag_run.state),
        task_states={ti.task_id: str(ti.state) for ti in instances},
        outputs={
            ti.task_id: ti.xcom_pull(task_ids=ti.task_id)
            for ti in instances
            if ti.task_id.startswith("promote_") and ti.state == "success"
        },
    )
    outcome = demo.DemoOutcome(runs=[result])
    spec = GenerationSpec(
        seed=1,
        accounts=1,
        titles=20,
        days=1,
        start_date=dt.date(2026, 3, 1),
        dirty_share=0.0,
        late_share=0.0,
        sessions_per_day=1.0,
    )
    return demo.report(spark, make_config(state), spec, outcome)


def test_a_refused_promotion_publishes_nothing_and_the_run_succeeds(dagbag, forecast_lake):
    """A version no better than the champion on the same evaluation data: here the
    champion's model registered again (as a re-run of the same day would) under the run
    id of a run whose training step is marked done."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from mlflow import MlflowClient

    state, end = forecast_lake
    uri = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(FORECAST, "champion")
    monday = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(6), UTC)
    run_after = dt.datetime(2026, 4, 1, 12, tzinfo=UTC)
    run_id = DagRun.generate_run_id(
        run_type=DagRunType.MANUAL, logical_date=monday, run_after=run_after
    )
    again = client.create_model_version(
        FORECAST,
        champion.source,
        run_id=champion.run_id,
        tags={**champion.tags, "airflow.run_id": run_id},
    )
    published_before = serving.list_versions(state / "published", "popularity_forecast")
    dag_run, states = run(
        dagbag.get_dag("marquee_training"),
        logical_date=monday,
        conf=training_conf(state),
        run_after=run_after,
        mark_success_pattern=f"train_{FORECAST}",
    )
    assert dag_run.run_id == run_id and dag_run.state == "success"
    assert states[f"promote_{FORECAST}"] == "success" and states["publish"] == "skipped"
    ti = {t.task_id: t for t in dag_run.get_task_instances()}
    outcome = ti[f"promote_{FORECAST}"].xcom_pull(task_ids=f"promote_{FORECAST}")
    assert outcome["version"] == str(again.version) and not outcome["promoted"]
    assert outcome["reason"].startswith("improvement over champion")
    assert aliases(client) == {"champion": str(champion.version), "challenger": str(again.version)}
    assert serving.list_versions(state / "published", "popularity_forecast") == published_before


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

"""The training DAG end to end with ``dag.test()``: the popularity forecast trained,
registered, promoted and published (3 jobs on the run's shared driver), make run's report
of that run, and a refused promotion that publishes nothing (1). A module of its own
beside tests/test_dags.py, so that the two end-to-end runs can go to different test
workers (which they do when the daily DAG's module is still running)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import make_config
from test_dags import FORECAST, UTC, dag_overrides, run

from feature_store import serving, shared_driver
from feature_store.synthetic import GenerationSpec

pytestmark = pytest.mark.integration


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
        "overrides": dag_overrides(state),
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
    forecast_tasks += ["start_spark_driver", "stop_spark_driver"]
    assert {t: states[t] for t in [*forecast_tasks, "publish"]} == dict.fromkeys(
        [*forecast_tasks, "publish"], "success"
    )
    # the models not asked for are skipped, and the run is a success
    assert {s for t, s in states.items() if t not in forecast_tasks and t != "publish"} == {
        "skipped"
    }
    assert dag_run.state == "success"
    # the jobs ran on the one driver the run started, and its teardown stopped it
    jobs = [line.split()[:4] for line in (state / "shared-driver.log").read_text().splitlines()]
    assert [j for j in jobs if j[:2] == ["shared", "driver:"] and "exit=" in j[-1]] == [
        ["shared", "driver:", "train_forecast", "exit=0"],
        ["shared", "driver:", "manage_models", "exit=0"],
        ["shared", "driver:", "publish_artifacts", "exit=0"],
    ]
    assert not shared_driver.socket_path(state).exists()
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
    from feature_store.airflow_local import DagRunResult
    from feature_store.synthetic import demo

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

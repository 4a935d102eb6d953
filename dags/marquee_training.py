"""Training: recommender, churn and popularity forecast -> registered version -> gated
promotion -> publish.

Runs when `marquee_daily` has validated a day (the `marquee_features` asset; the newest
event's date is the run's day) and weekly on Monday (the run's day is Sunday). Each
`train_*` task trains, evaluates and registers its model through spark-submit and tags
the version with the Airflow run id; `registered_*` reads that version back from the
registry, with its key metrics; `promote_*` runs the gate of mlflow/registry.yaml. A
refused promotion is not an error: that model's artifacts are not published and serving
keeps its champion's. `publish` publishes the artifacts of the promoted models.

Params: `models` (which to train), `recs_label_days` (the recommender is judged on the
days after its as-of date, so it learns that many days before the run's day), `date`,
`config`, `overrides` and `job_args` (extra flags per job, e.g. small-data settings).

With `spark.task_driver: shared`, the jobs run on one Spark driver that the setup task
start_spark_driver starts and the teardown task stop_spark_driver stops.
"""

import datetime as dt

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, dag

from feature_store import orchestration as orc


@dag(
    dag_id="marquee_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * 1", timezone="UTC", interval=dt.timedelta(days=7)),
        assets=orc.FEATURES,
    ),
    start_date=orc.START_DATE,
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,  # two cores: one Spark job at a time
    default_args=orc.DEFAULT_ARGS,
    params={
        **orc.common_params(),
        "models": Param(list(orc.MODELS), type="array", items={"enum": list(orc.MODELS)}),
        "recs_label_days": Param(7, type="integer", minimum=1),
    },
    tags=["marquee"],
    doc_md=__doc__,
)
def marquee_training():
    dates = orc.window()
    driver = orc.start_spark_driver()  # with spark.task_driver=shared; else a no-op
    publish = orc.PublishOperator(task_id="publish", trigger_rule=TriggerRule.ALL_DONE)
    publish >> orc.stop_spark_driver(driver)
    for model, job in orc.MODELS.items():
        args = ["--tag", "airflow.run_id={{ run_id }}"]
        if model == "recommender":
            args += ["--label-days", "{{ params.recs_label_days }}"]
        train = orc.SparkJobOperator(
            task_id=f"train_{model}", job=job, model=model, date=dates[model], job_args=args
        )
        version = orc.registered.override(task_id=f"registered_{model}")(model, dates[model])
        promote = orc.PromoteOperator(
            task_id=f"promote_{model}",
            model=model,
            version=version["version"],
            as_of=version["as_of"],
        )
        driver >> train >> version >> promote >> publish


marquee_training()

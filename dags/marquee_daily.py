"""Daily: ingest the day's landing files into bronze, build its feature tables, validate
them, and publish the online feature snapshot serving reads.

The day is the run's data interval [D, D+1), D its logical date. Backfill days A to B:

    airflow backfill create --dag-id marquee_daily --from-date A --to-date B \
        --reprocess-behavior failed

Each task waits for the same task of the day before (`depends_on_past`, which is why a
backfill must say what to do with days already run: `failed` runs them again only when
they failed, `completed` always): ingestion deduplicates against earlier days and the
feature checks compare with the day before, so days go in order and a failed day stops
the days after it until it is fixed. Every job replaces what it wrote for its day, so a
re-run or retry is safe. The validate task emits `marquee_features` with
`{"date": D}`, which triggers `marquee_training`.

With `spark.task_driver: shared` (conf/local.yaml), the setup task start_spark_driver
starts one Spark driver that the jobs of the run share, and the teardown task
stop_spark_driver stops it; with `spark-submit`, each task is its own spark-submit.
"""

from airflow.sdk import CronDataIntervalTimetable, dag

from feature_store import orchestration as orc


@dag(
    dag_id="marquee_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=orc.START_DATE,
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,  # two cores: one Spark job at a time
    default_args={**orc.DEFAULT_ARGS, "depends_on_past": True},
    params=orc.common_params(),
    tags=["marquee"],
    doc_md=__doc__,
)
def marquee_daily():
    day = orc.window()["date"]
    driver = orc.start_spark_driver()  # with spark.task_driver=shared; else a no-op
    ingest = orc.SparkJobOperator(
        task_id="ingest", job="ingest_events", date=day, outlets=[orc.BRONZE]
    )
    build = orc.SparkJobOperator(task_id="build_features", job="build_features", date=day)
    validate = orc.SparkJobOperator(
        task_id="validate_features", job="validate_features", date=day, outlets=[orc.FEATURES]
    )
    # Serving's online features follow every validated day.
    online = orc.SparkJobOperator(
        task_id="publish_online_features",
        job="publish_artifacts",
        date=day,
        job_args=["--artifact=online_features"],
    )
    driver >> ingest >> build >> validate >> online >> orc.stop_spark_driver(driver)


marquee_daily()

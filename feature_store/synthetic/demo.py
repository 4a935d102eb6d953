"""The demo platform (what ``make run`` runs): a generated streaming service run day by
day through the Airflow DAGs, as a deployment would run it.

It generates the service and backfills the feature history in this process, runs the daily
DAG for each landing day, oldest first, then the training DAG once for the last day, and
ends with a one-screen report from what the runs left in the lake, the registry and the
published folder. The steps: docs/synthetic-data.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from feature_store import lake as lk
from feature_store import serving
from feature_store.artwork.steps import ArtworkSettings
from feature_store.churn import steps as churn
from feature_store.churn.data import HORIZON_DAYS, SNAPSHOT_TABLES, ChurnDataError
from feature_store.config import Config
from feature_store.console import StageProgress, Stages
from feature_store.features.build import RangeBuildReport, build_feature_range
from feature_store.features.tables import PROFILE_DAILY
from feature_store.synthetic import GenerationSpec, generate, reports

log = logging.getLogger(__name__)

# The recommender learns up to RECS_LABEL_DAYS before the last day and is judged on the
# views of those days; its ranker learns from the RECS_RANKER_DAYS before that.
RECS_LABEL_DAYS = 2
RECS_RANKER_DAYS = 2
# Churn snapshots 3 days apart: the demo's ten weeks leave room for several training
# snapshots between the first full 30-day window and the last one labelled 30 days on.
CHURN_EVERY_DAYS = 3
# Churn training rows the plan aims for. On a 100,000-account lake the GBT's ROC-AUC on
# the same test snapshot was 0.705 from one training snapshot (62,509 rows) as from three
# (193,039): past that, more snapshots are history built for nothing (docs/benchmarks.md).
CHURN_TRAIN_ROWS = 200_000
CHURN_ROWS_PER_ACCOUNT = 0.6  # a snapshot's training rows per account (active, not held out)


@dataclass
class DemoOutcome:
    runs: list[Any] = field(default_factory=list)  # airflow_local.DagRunResult, in order
    failed: list[str] = field(default_factory=list)  # what did not go through, for people

    @property
    def ok(self) -> bool:
        return not self.failed


def prepare(spark: SparkSession, config: Config, spec: GenerationSpec) -> list[dt.date]:
    """Step 1 whole: generate, then backfill the history. Returns failed dates."""
    generate_service(spark, config, spec)
    return build_history(spark, config, spec)


def generate_service(spark: SparkSession, config: Config, spec: GenerationSpec) -> str:
    """Step 1: the demo service's history into bronze, its last days as landing files.
    Returns a line saying what was made."""
    result = generate(
        spark, config.lake, spec, pseudonymization_key=config.privacy.pseudonymization_key
    )
    return (
        f"{spec.accounts:,} accounts, {spec.days} days: {spec.history_days} in bronze, "
        f"{result.lines:,} landing lines"
    )


def recs_dates(spec: GenerationSpec) -> set[dt.date]:
    """The as-of dates whose profiles and interactions the training DAG's recommender
    reads: its own (RECS_LABEL_DAYS before the last day) and its ranker's generators'
    (RECS_RANKER_DAYS before that)."""
    as_of = spec.end_date - dt.timedelta(days=RECS_LABEL_DAYS)
    return {as_of, as_of - dt.timedelta(days=RECS_RANKER_DAYS)}


def artwork_dates(spec: GenerationSpec) -> set[dt.date]:
    """profile_daily as-of dates that give every impression of the artwork policies'
    window (training and held-out days before the last day) a segment within the
    table's TTL: the segment is profile_daily's latest before the impression's day."""
    settings = ArtworkSettings()
    ttl = PROFILE_DAILY.ttl_days
    first = spec.end_date - dt.timedelta(days=settings.train_days + settings.holdout_days - 1)
    dates, day = set(), first - dt.timedelta(days=1)
    while day < spec.end_date:
        dates.add(day)
        day += dt.timedelta(days=ttl)
    return dates


def churn_train_snapshots(accounts: int) -> int:
    """Training snapshots the churn model gets: enough for CHURN_TRAIN_ROWS, at least
    one and at most churn's MAX_TRAIN_SNAPSHOTS (all of them for the demo's size)."""
    wanted = math.ceil(CHURN_TRAIN_ROWS / max(1.0, accounts * CHURN_ROWS_PER_ACCOUNT))
    return min(churn.MAX_TRAIN_SNAPSHOTS, max(1, wanted))


def history_plan(spec: GenerationSpec) -> list[tuple[tuple[str, ...], list[dt.date]]]:
    """The feature partitions the models need among the history days (the landing days
    get every table from the daily DAG), as (tables, as-of dates) backfills: the daily
    region x title series every day (forecasts), the account and profile features of the
    churn snapshots and of the recommender's dates (the profiles it ranks for), the
    interactions the recommender trains on, the viewers' segments of the artwork
    policies' impressions."""
    history = spec.dates[: spec.history_days]
    try:
        train, test = churn.choose_snapshots(
            spec.dates,
            as_of=spec.end_date,
            horizon_days=HORIZON_DAYS,
            history_start=spec.start_date,
            labels_through=spec.end_date,
            every_days=CHURN_EVERY_DAYS,
            max_train=churn_train_snapshots(spec.accounts),
        )
        snapshots = {*train, test}
    except ChurnDataError:
        snapshots = set()  # too short for churn; the churn training says why
    recs = recs_dates(spec)
    snapshot_dates = (snapshots | recs).intersection(history)
    plan = [
        (("region_title_daily",), history),
        (tuple(SNAPSHOT_TABLES), sorted(snapshot_dates)),
        (("profile_title_interactions",), sorted(recs.intersection(history))),
        (("profile_daily",), sorted(artwork_dates(spec).intersection(history) - snapshot_dates)),
    ]
    return [(tables, dates) for tables, dates in plan if dates]


def build_history(
    spark: SparkSession,
    config: Config,
    spec: GenerationSpec,
    *,
    on_backfill: Callable[[tuple[str, ...], RangeBuildReport], None] = lambda t, r: None,
) -> list[dt.date]:
    """Step 1, second half: each `history_plan` entry as one backfill (one pass per
    table). Returns the dates whose build failed."""
    failed: set[dt.date] = set()
    for tables, dates in history_plan(spec):
        report = build_feature_range(spark, config, dates, tables)
        on_backfill(tables, report)
        if not report.ok:
            failed.update(report.failed_dates)
            log.error("history backfill failed:\n%s", report.format_table())
    return sorted(failed)


def run_dags(
    config: Config,
    spec: GenerationSpec,
    *,
    config_file: str | None,
    overrides: Sequence[str],
    stages: Stages,
) -> DemoOutcome:
    """Steps 2 and 3: the daily DAG per landing day, then the training DAG, each a stage
    whose bar advances with the tasks. The tasks' own output is kept to warnings and
    errors (it is in the lake, the registry and the report)."""
    from feature_store.airflow_local import embedded_airflow

    common = {"config": config_file, "overrides": list(overrides)}
    outcome = DemoOutcome()
    with (
        embedded_airflow(config, quiet=True) as airflow,
        _shared_driver(config, config_file, overrides),
    ):
        days = spec.landing_dates
        steps = airflow.task_count("marquee_daily") * len(days)
        label = "1 landing day" if len(days) == 1 else f"{len(days)} landing days"
        with stages.stage(f"Daily DAG, {label}", steps=steps) as stage:
            for day in days:
                # A daily run's data interval is [D, D+1): it is due at D+1's midnight.
                run = airflow.run(
                    "marquee_daily",
                    logical_date=_midnight(day + dt.timedelta(days=1)),
                    conf=common,
                    on_task=_task_progress(stage, day.isoformat()),
                    retries=0,  # a failure is reported now, not after retry delays
                )
                outcome.runs.append(run)
                if not run.ok:  # the days after depend on it (depends_on_past)
                    outcome.failed.append(f"daily run for {day}: {run.task_states}")
                    return outcome
            stage.note("ingest, build, validate, publish online features")
        with stages.stage("Training DAG", steps=airflow.task_count("marquee_training")) as stage:
            training = airflow.run(
                "marquee_training",
                logical_date=_midnight(spec.end_date + dt.timedelta(days=1)),
                conf={**common, **_training_conf(spec)},
                on_task=_task_progress(stage, "training"),
                retries=0,
            )
            outcome.runs.append(training)
            if not training.ok:
                outcome.failed.append(f"training run: {training.task_states}")
            stage.note("train, register, promote, publish 4 models")
    return outcome


@contextlib.contextmanager
def _shared_driver(
    config: Config, config_file: str | None, overrides: Sequence[str]
) -> Iterator[None]:
    """With ``spark.task_driver: shared``, one driver for both DAGs' runs: the demo holds
    it from before the daily run to after the training run, so the training run's jobs
    start on a driver the daily run has warmed. It stops when the demo releases it.
    ``marquee demo`` serves as that driver itself (jobs/shared_driver.py `hosted_here`);
    with none listening, one is started."""
    if config.spark.task_driver != "shared":
        yield
        return
    from feature_store import shared_driver
    from feature_store.orchestration import config_args

    args = config_args({"config": config_file, "overrides": list(overrides)})
    args += ["--master", config.spark.master]  # embedded Airflow's marquee_spark connection
    started = shared_driver.start(config.paths.state_dir, args, holder="marquee demo")
    try:
        yield
    finally:
        shared_driver.release(started.socket, started.holder)


def _training_conf(spec: GenerationSpec) -> dict[str, Any]:
    return {
        "date": spec.end_date.isoformat(),
        "recs_label_days": RECS_LABEL_DAYS,
        "job_args": {
            "train_recommender": ["--ranker-days", str(RECS_RANKER_DAYS)],
            "train_churn": [
                *("--every-days", str(CHURN_EVERY_DAYS)),
                *("--max-train-snapshots", str(churn_train_snapshots(spec.accounts))),
            ],
        },
    }


def _task_progress(stage: StageProgress, run_name: str) -> Callable[[str, str], None]:
    def on_task(task_id: str, state: str) -> None:
        if state == "running":
            stage.working_on(f"{run_name} {task_id}")
        else:
            stage.advance()

    return on_task


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _artwork_lines(client) -> list[str]:
    """The newest artwork run: the served policy's estimated play rate beside its true
    one and the oracle's (the hidden truth of the generated service)."""
    from feature_store.artwork.tracking import MODEL_NAME

    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    if not versions:
        return []
    newest = max(versions, key=lambda v: int(v.version))
    metrics = client.get_run(newest.run_id).data.metrics

    def m(name: str) -> float:
        return metrics.get(name, float("nan"))

    served = newest.tags.get("policy.served", "?")
    line = (
        f"artwork policy v{newest.version} serves {served}: play rate {m('served.dr'):.4f} "
        f"[{m('served.dr_low'):.4f}, {m('served.dr_high'):.4f}] estimated (doubly robust), "
        f"{m('truth.served'):.4f} true; uniform {m('truth.uniform'):.4f}, "
        f"oracle {m('truth.oracle'):.4f}"
    )
    return [line, ""]


def report(spark: SparkSession, config: Config, spec: GenerationSpec, outcome: DemoOutcome) -> str:
    """Step 4: what the runs did, from the lake, the registry and the published folder."""
    from feature_store.registry.listing import format_listing, list_models
    from feature_store.registry.policy import load_policy
    from feature_store.registry.store import client_for
    from feature_store.tracking import tracking_uri

    lake = lk.Lake(config.lake)
    sections = [
        "Airflow runs (AIRFLOW_HOME .marquee/airflow; `make airflow` shows them):",
        *(f"  {run.format_line()}" for run in outcome.runs),
        "",
        reports.bronze_summary(spark, config.lake),
        "",
        reports.feature_log_summary(spark, config.lake, spec.landing_dates),
        f"validation results and data docs: {lake.validation_results}",
        "",
    ]
    promotions = [
        value
        for run in outcome.runs
        for task, value in run.outputs.items()
        if task.startswith("promote_")
    ]
    for promotion in promotions:
        verdict = "promoted to champion" if promotion["promoted"] else "not promoted"
        sections.append(
            f"{promotion['model']} v{promotion['version']}: {verdict} ({promotion['reason']})"
        )
    client = client_for(config)
    policy = load_policy(config.paths.registry_policy)
    sections += ["", format_listing(list_models(client, policy)), ""]
    sections += _artwork_lines(client)
    published = config.paths.published
    sections.append(f"published artifacts under {published}:")
    for artifact in serving.list_artifacts(published):
        latest = serving.latest_version(published, artifact)
        manifest = serving.load_manifest(serving.resolve(published, artifact, latest))
        sections.append(
            f"  {artifact:<21}{latest:<32}{manifest['rows']:>12,} rows  "
            f"pull: marquee pull {artifact} --latest --to DIR"
        )
    sections.append(f"MLflow: {tracking_uri(config)}   (`make mlflow` serves its UI)")
    return "\n".join(sections)

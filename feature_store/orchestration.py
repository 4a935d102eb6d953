"""What the Airflow DAGs in ``dags/`` share: run dates, assets, and the jobs through
spark-submit.

DAG files import this module at parse time, so at module level it imports only the standard
library and Airflow. A run never reads the clock: its day is ``params.date``, else the
newest ``date`` among the asset events that triggered it, else the last whole day before
its data interval ends. Every job runs as ``spark-submit jobs/<job>.py`` on the
``marquee_spark`` connection (the config's ``spark.master`` without it), or on the DAG run's
shared driver with ``spark.task_driver: shared``. Details: docs/airflow.md.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, Param, get_current_context, setup, task, teardown
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from feature_store.config import Config

log = logging.getLogger(__name__)

CONN_ID = "marquee_spark"
JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"  # as feature_store.submit's
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# The daily DAG's outputs. Events carry {"date": "YYYY-MM-DD"}: the day they hold.
BRONZE = Asset(name="marquee_bronze", uri="x-marquee://lake/bronze")
FEATURES = Asset(name="marquee_features", uri="x-marquee://lake/features")

# Registered model name -> its training job.
MODELS = {
    "recommender": "train_recommender",
    "churn": "train_churn",
    "popularity_forecast": "train_forecast",
    "artwork_policy": "train_artwork",
}
RUN_TAG = "airflow.run_id"  # set on each registered version by the training task

DEFAULT_ARGS = {
    "owner": "marquee",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=5),
}


def common_params() -> dict[str, Param]:
    """The params every DAG takes: `date`, `config`, `overrides` and `job_args`."""
    return {
        "date": Param(None, type=["null", "string"], format="date", description="process this day"),
        "config": Param(None, type=["null", "string"], description="default: conf/local.yaml"),
        "overrides": Param([], type="array", description="section.key=value, as --set"),
        "job_args": Param({}, type="object", description="job name -> extra flags"),
    }


def run_date(context: Mapping[str, Any]) -> dt.date:
    """The day this run processes (module doc), from params, asset events or interval."""
    explicit = (context.get("params") or {}).get("date")
    if explicit:
        return dt.date.fromisoformat(explicit)
    events = context.get("triggering_asset_events") or {}
    if events:
        dates = [e.extra.get("date") for found in events.values() for e in found]
        if not any(dates):
            raise AirflowFailException(
                "triggered by asset events without a 'date' extra; trigger with params.date"
            )
        return max(dt.date.fromisoformat(d) for d in dates if d)
    end = context.get("data_interval_end")
    if end is None:
        raise AirflowFailException("no data interval, asset event or params.date gives a day")
    return (end - dt.timedelta(days=1)).date()


@task(multiple_outputs=True)
def window() -> dict[str, str]:
    """The run's day and, for training, the as-of date of each model: the recommender is
    judged on the ``recs_label_days`` after its as-of date, so it learns that much earlier."""
    context = get_current_context()
    day = run_date(context)
    recs = day - dt.timedelta(days=int(context["params"].get("recs_label_days", 0)))
    return {
        "date": day.isoformat(),
        "recommender": recs.isoformat(),
        "churn": day.isoformat(),
        "popularity_forecast": day.isoformat(),
        "artwork_policy": day.isoformat(),
    }


def load_config(params: Mapping[str, Any]) -> Config:
    """The configuration the jobs of this run load (same file, same overrides)."""
    from feature_store.config import load_config as load

    return load(params.get("config") or None, list(params.get("overrides") or []))


def config_args(params: Mapping[str, Any]) -> list[str]:
    """The flags that give a job this run's config file and overrides (progress bars off)."""
    # Progress bars are noise in task logs; the run's own overrides come after and win.
    args = ["--set", "spark.show_progress=false"]
    if params.get("config"):
        args += ["--config", params["config"]]
    for override in params.get("overrides") or []:
        args += ["--set", override]
    return args


class SparkJobOperator(SparkSubmitOperator):
    """``spark-submit jobs/<job>.py [job_args] --date D [job_args param] [config] --master M``.

    With ``model``, the task is skipped when that model is not in ``params.models``. Its
    outlets get an event whose extra is ``{"date": D}``."""

    template_fields = (*SparkSubmitOperator.template_fields, "date", "job_args")

    def __init__(
        self,
        *,
        job: str,
        date: Any = None,
        job_args: list[Any] | None = None,
        model: str | None = None,
        conn_id: str = CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            application=str(JOBS_DIR / f"{job}.py"),
            conn_id=conn_id,
            name=f"marquee-{job}",
            **kwargs,
        )
        self.job, self.date, self.job_args, self.model = job, date, list(job_args or []), model
        self._master: str | None = None

    def execute(self, context: Context) -> Any:
        """Submit the job for ``date``; skipped when `model` is not in ``params.models``."""
        params = context["params"]
        if self.model and self.model not in params.get("models", MODELS):
            raise AirflowSkipException(f"{self.model} is not among this run's models")
        date_args = ["--date", str(self.date)] if self.date else []
        extra = [str(a) for a in (params.get("job_args") or {}).get(self.job, [])]
        self.submit(context, [*self.job_args, *date_args, *extra])
        for asset in self.outlets:
            if self.date and isinstance(asset, Asset):
                context["outlet_events"][asset].extra = {"date": str(self.date)}

    def submit(self, context: Context, args: list[str]) -> None:
        """One spark-submit of this job with ``args``, the run's config and master."""
        params = context["params"]
        config = load_config(params)  # a bad config fails here, before any JVM starts
        from feature_store.submit import submit_settings

        settings = submit_settings(config)
        self.conf = {**settings.pop("conf"), **(self.conf or {})}
        self.env_vars = {**settings.pop("env_vars"), **(self.env_vars or {})}
        self.packages, self.exclude_packages, self.jars = (
            settings["packages"],
            settings["exclude_packages"],
            settings["jars"],
        )
        self._driver_memory = settings["driver_memory"]
        self._master = spark_master(config, self._conn_id)
        self.application_args = [*args, *config_args(params), "--master", self._master]
        self._hook = None  # rebuilt by execute with these arguments
        if config.spark.task_driver == "shared":
            self._run_on_shared_driver(config)
        else:
            super().execute(context)

    def _run_on_shared_driver(self, config) -> None:
        """The job on the DAG run's shared driver (start_spark_driver), its output in
        this task's log; a failure carries the output's last lines, as spark-submit's."""
        from feature_store import shared_driver

        last: collections.deque[str] = collections.deque(maxlen=40)

        def on_line(line: str) -> None:
            last.append(line)
            self.log.info("%s", line)

        path = shared_driver.socket_path(config.paths.state_dir)
        try:
            code = shared_driver.run_job(path, self.job, self.application_args, on_line)
        except shared_driver.SharedDriverError as exc:
            raise AirflowException(str(exc)) from exc
        if code != 0:
            output = "\n".join(last)
            raise AirflowException(
                f"{self.job} exited with code {code} on the shared driver:\n{output}"
            )

    def _get_hook(self):
        hook = super()._get_hook()
        if self._master:  # the hook's own default without a connection is YARN
            hook._connection["master"] = self._master
        if hook._connection["deploy_mode"] == "cluster":
            raise AirflowFailException(
                "the jobs run in client mode: their driver needs this checkout and its venv"
            )
        return hook


@setup
@task
def start_spark_driver() -> dict[str, Any]:
    """With ``spark.task_driver: shared``, hold the driver this run's jobs share: the one
    listening for this state folder, or a new one. With spark-submit, nothing: each task
    starts its own driver."""
    from feature_store import shared_driver

    context = get_current_context()
    params = context["params"]
    config = load_config(params)
    if config.spark.task_driver != "shared":
        return {"socket": None, "holder": None}
    args = [*config_args(params), "--master", spark_master(config)]
    holder = f"{context['dag'].dag_id}/{context['run_id']}"
    try:
        started = shared_driver.start(config.paths.state_dir, args, holder=holder)
    except shared_driver.SharedDriverError as exc:
        raise AirflowException(str(exc)) from exc
    log.info(
        "jobs of this run go to the shared driver on %s (log: %s)", started.socket, started.log_file
    )
    return {"socket": str(started.socket), "holder": holder}


def stop_spark_driver(driver: Any) -> Any:
    """The teardown task that releases this run's hold on the shared driver (which stops
    when no run holds it). A new decorated task per DAG: Airflow's teardown decorator
    keeps the trigger rule it sets on its first call and refuses a second."""
    return teardown(task(task_id="stop_spark_driver")(_release_spark_driver))(driver)


def _release_spark_driver(driver: dict[str, Any]) -> None:
    from feature_store import shared_driver

    if driver.get("socket") and driver.get("holder"):
        shared_driver.release(Path(driver["socket"]), driver["holder"])


def spark_master(config: Config, conn_id: str = CONN_ID) -> str:
    """The master the jobs run on: the ``conn_id`` connection's, else the config's."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.warning("no connection %s: Spark master %s", conn_id, config.spark.master)
        return config.spark.master
    return SparkSubmitHook(conn_id=conn_id)._connection["master"]


@task(multiple_outputs=True)
def registered(model: str, as_of: str) -> dict[str, Any]:
    """The version the training task registered in this run (found by its run tag, never
    "the latest version"), and its key metrics as the promotion policy lists them."""
    from mlflow import MlflowClient

    from feature_store.registry.policy import load_policy
    from feature_store.tracking import tracking_uri

    context = get_current_context()
    config = load_config(context["params"])
    uri = tracking_uri(config)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = context["run_id"]
    found = [
        v
        for v in client.search_model_versions(f"name = '{model}'")
        if v.tags.get(RUN_TAG) == run_id
    ]
    if not found:
        raise AirflowException(f"no version of {model} carries {RUN_TAG}={run_id}")
    version = max(found, key=lambda v: int(v.version))  # a retried task registers again
    if version.tags.get("data.as_of") != as_of:
        raise AirflowFailException(
            f"{model} v{version.version} is as of {version.tags.get('data.as_of')}, not {as_of}"
        )
    logged = client.get_run(version.run_id).data.metrics
    shown = load_policy(config.paths.registry_policy).for_model(model).shown_metrics
    metrics = {m: logged[m] for m in shown if m in logged}
    log.info("%s v%s as of %s: %s", model, version.version, as_of, metrics)
    return {"version": str(version.version), "as_of": as_of, "metrics": metrics}


class PromoteOperator(SparkJobOperator):
    """``marquee models promote MODEL --version V`` (the gate in mlflow/registry.yaml).

    Returns ``{"model", "version", "as_of", "promoted", "reason"}``. A refused promotion
    is an outcome, not a failure: the task succeeds with ``promoted`` false and the
    publish task leaves that model's artifacts alone. Any other failure fails the task.
    Re-running after a promotion is a no-op (the version is already the champion)."""

    template_fields = (*SparkJobOperator.template_fields, "version", "as_of")

    def __init__(self, *, model: str, version: Any, as_of: Any, **kwargs: Any) -> None:
        super().__init__(job="manage_models", model=model, **kwargs)
        self.version, self.as_of = version, as_of

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the gate on the version; returns the outcome (class doc), refused or not."""
        from feature_store.registry import CHALLENGER, CHAMPION
        from feature_store.registry.store import aliases, client_for

        params = context["params"]
        if self.model not in params.get("models", MODELS):
            raise AirflowSkipException(f"{self.model} is not among this run's models")
        model, version = self.model, str(self.version)
        outcome = {"model": model, "version": version, "as_of": str(self.as_of)}
        client = client_for(load_config(params))
        if aliases(client, model).get(CHAMPION) == version:
            return {**outcome, "promoted": True, "reason": "already the champion"}
        actor = f"airflow:{context['dag'].dag_id}/{context['run_id']}"
        try:
            self.submit(context, ["promote", model, "--version", version, "--actor", actor])
        except AirflowException as exc:
            # The job exits 1 both when the gate refuses and when it breaks; a refusal
            # prints "<model> v<version> not promoted: <failed checks>" and leaves the
            # version as challenger, not champion.
            now = aliases(client, model)
            marker = f"{model} v{version} not promoted: "
            refused = marker in str(exc) and now.get(CHALLENGER) == version
            if not refused or now.get(CHAMPION) == version:
                raise
            reason = str(exc).split(marker, 1)[1].splitlines()[0]
            self.log.warning("%s v%s refused by the gate: %s", model, version, reason)
            return {**outcome, "promoted": False, "reason": reason}
        return {**outcome, "promoted": True, "reason": "passed the gate"}


class PublishOperator(SparkJobOperator):
    """``marquee publish --date D --artifact ...`` for the models promoted in this run, one
    spark-submit per as-of date. A model whose promotion was refused keeps serving its
    champion's last published artifacts. Fails (after publishing the others) when a
    selected model has no promotion outcome, i.e. its training or promotion failed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(job="publish_artifacts", **kwargs)

    def execute(self, context: Context) -> dict[str, list[str]]:
        """Publish the artifacts of the models promoted in this run: as-of date -> names."""
        from feature_store.publish import ARTIFACTS

        selected = [m for m in MODELS if m in context["params"].get("models", MODELS)]
        outcomes = {m: context["ti"].xcom_pull(task_ids=f"promote_{m}") for m in selected}
        by_date: dict[str, list[str]] = {}
        for model, outcome in outcomes.items():
            if outcome and outcome["promoted"]:
                names = [a.name for a in ARTIFACTS.values() if a.model == model]
                by_date.setdefault(outcome["as_of"], []).extend(names)
        for date, names in sorted(by_date.items()):
            self.submit(context, ["--date", date, *(f"--artifact={n}" for n in names)])
        failed = [m for m, outcome in outcomes.items() if outcome is None]
        if failed:
            raise AirflowFailException(f"no promotion outcome for {', '.join(failed)}")
        if not by_date:
            raise AirflowSkipException("no model was promoted: nothing to publish")
        return by_date

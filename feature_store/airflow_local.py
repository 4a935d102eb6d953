"""The platform's DAGs run by an Airflow embedded in this process (what ``make run`` does).

Airflow's metadata database is SQLite under ``<state>/airflow`` (the same home ``make
airflow`` serves, so the UI shows these runs), the DAGs are those of ``dags/``, and the
``marquee_spark`` connection points at the config's Spark master. Each DAG run executes
with ``dag.test()``: the scheduler's work done in this process, task by task, every Spark
task a real ``spark-submit`` of a job, exactly as a deployed Airflow would run them.

Airflow reads its settings from the environment once, when it is first imported, so
``embedded_airflow`` sets them before that import and refuses if Airflow was imported
already with another home.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feature_store.config import Config

log = logging.getLogger(__name__)

DAGS_DIR = Path(__file__).resolve().parent.parent / "dags"


def airflow_home(config: Config) -> Path:
    """The embedded Airflow's home: ``airflow/`` in the state folder."""
    return Path(config.paths.state_dir) / "airflow"


def airflow_environment(config: Config) -> dict[str, str]:
    """The environment Airflow reads its settings from, for this configuration."""
    home = airflow_home(config)
    home.mkdir(parents=True, exist_ok=True)
    # The in-process execution API signs each task's token with this secret: made once
    # per home, kept out of the repository and of every log.
    secret_file = home / "jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
        "AIRFLOW_CONN_MARQUEE_SPARK": json.dumps(
            {"conn_type": "spark", "host": config.spark.master}
        ),
    }


@dataclass(frozen=True)
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str]
    outputs: dict[str, Any]  # task id -> its return value (XCom), for tasks that have one

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def format_line(self) -> str:
        """One line: the DAG, the run, its state and how many tasks ended in each state."""
        counts: dict[str, int] = {}
        for state in self.task_states.values():
            counts[state] = counts.get(state, 0) + 1
        tasks = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"{self.dag_id} {self.run_id}: {self.state} ({tasks})"


class EmbeddedAirflow:
    """The DAGs of ``dags/`` on the metadata database of ``airflow_environment``.

    ``quiet``: what a run prints on stdout is held back and shown only when the run
    fails (Airflow 3.2 prints every task's asset outlets), and the deprecation warnings
    of Airflow's own in-process execution API are not shown."""

    def __init__(self, dagbag, *, quiet: bool = False) -> None:
        self.dagbag = dagbag
        self.quiet = quiet

    def task_count(self, dag_id: str) -> int:
        """The number of tasks of DAG `dag_id`; raises `KeyError` when there is none."""
        return len(self._dag(dag_id).task_ids)

    def _dag(self, dag_id: str):
        dag = self.dagbag.get_dag(dag_id)
        if dag is None:
            raise KeyError(f"no DAG {dag_id!r} in {DAGS_DIR} ({self.dagbag.import_errors})")
        return dag

    def run(
        self,
        dag_id: str,
        *,
        logical_date: dt.datetime,
        conf: Mapping[str, Any],
        on_task: Callable[[str, str], None] | None = None,
        retries: int | None = None,
    ) -> DagRunResult:
        """One DAG run; ``on_task(task_id, state)`` hears each task start and end.
        ``retries``: instead of the tasks' own (0: a failed task ends the run at once,
        rather than waiting out its retry delay in this process)."""
        dag = self._dag(dag_id)
        log.info("Airflow: %s for %s", dag_id, logical_date.isoformat())
        printed = io.StringIO()
        succeeded = False
        try:
            with _quiet_deprecations(self.quiet), contextlib.ExitStack() as stack:
                if self.quiet:
                    stack.enter_context(contextlib.redirect_stdout(printed))
                if on_task is not None:
                    stack.enter_context(_listening(on_task))
                if retries is not None:
                    stack.enter_context(_retrying(dag, retries))
                dag_run = dag.test(logical_date=logical_date, run_conf=dict(conf))
            succeeded = str(dag_run.state) == "success"
        finally:
            # what the run printed is the first clue when it failed, or when dag.test raised
            if not succeeded and printed.getvalue():
                sys.stderr.write(printed.getvalue())
        instances = dag_run.get_task_instances()
        outputs = {}
        for ti in instances:
            if ti.state == "success":
                value = ti.xcom_pull(task_ids=ti.task_id)
                if value is not None:
                    outputs[ti.task_id] = value
        return DagRunResult(
            dag_id=dag_id,
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            task_states={ti.task_id: str(ti.state) for ti in instances},
            outputs=outputs,
        )


def _make_listener(on_task: Callable[[str, str], None]) -> Any:
    """Airflow's task listener hooks (the task runner calls them in this process), passed
    on to ``on_task``. Made here: Airflow is imported only once its settings are set."""
    from airflow.listeners import hookimpl

    class Listener:
        def __init__(self) -> None:
            self.on_task = on_task

        @hookimpl
        def on_task_instance_running(self, previous_state, task_instance) -> None:
            self.on_task(task_instance.task_id, "running")

        @hookimpl
        def on_task_instance_success(self, previous_state, task_instance) -> None:
            self.on_task(task_instance.task_id, "success")

        @hookimpl
        def on_task_instance_failed(self, previous_state, task_instance, error) -> None:
            self.on_task(task_instance.task_id, "failed")

        @hookimpl
        def on_task_instance_skipped(self, previous_state, task_instance) -> None:
            self.on_task(task_instance.task_id, "skipped")

    return Listener()


@contextlib.contextmanager
def _retrying(dag, retries: int) -> Iterator[None]:
    """The DAG's tasks with ``retries`` for one run, their own restored afterwards."""
    own = {task.task_id: task.retries for task in dag.tasks}
    for task in dag.tasks:
        task.retries = retries
    try:
        yield
    finally:
        for task in dag.tasks:
            task.retries = own[task.task_id]


@contextlib.contextmanager
def _listening(on_task: Callable[[str, str], None]) -> Iterator[None]:
    from airflow.sdk.listener import get_listener_manager

    manager = get_listener_manager()
    listener = _make_listener(on_task)
    manager.add_listener(listener)
    try:
        yield
    finally:
        manager.pm.unregister(listener)


@contextlib.contextmanager
def _quiet_deprecations(quiet: bool) -> Iterator[None]:
    """``quiet``: DeprecationWarnings are not shown inside the block (Airflow's own, and
    those of the libraries it uses, which a user of the platform cannot act on)."""
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", DeprecationWarning)
        yield


@contextlib.contextmanager
def embedded_airflow(config: Config, *, quiet: bool = False) -> Iterator[EmbeddedAirflow]:
    """Airflow set up for this configuration (database migrated, DAGs parsed). ``quiet``:
    only warnings and errors of the tasks (a spark-submit's whole output otherwise)."""
    environment = airflow_environment(config)
    if quiet:
        environment["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    loaded = sys.modules.get("airflow.settings")
    if loaded is not None and os.environ.get("AIRFLOW_HOME") != environment["AIRFLOW_HOME"]:
        raise RuntimeError(
            "Airflow was imported with another AIRFLOW_HOME before the embedded set-up"
        )
    previous = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        with _quiet_deprecations(quiet):  # SQLAlchemy's, about Airflow's own mappers
            db.initdb()  # creates or migrates; idempotent
            dagbag = DagBag(dag_folder=str(DAGS_DIR), include_examples=False)
        if dagbag.import_errors:
            raise RuntimeError(f"DAG import errors: {dagbag.import_errors}")
        yield EmbeddedAirflow(dagbag, quiet=quiet)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def airflow_cli(config: Config, args: Sequence[str]) -> int:
    """Airflow's own command line on this home (``marquee airflow standalone``,
    ``marquee airflow backfill create ...``); the Spark jobs it starts find the
    ``.venv`` first on the PATH."""
    environment = airflow_environment(config)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, **environment, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(Path(bin_dir) / "airflow"), *args], env=env, check=False).returncode

"""Running a job of ``jobs/`` through ``spark-submit``, locally or on a cluster.

``spark-submit`` starts the driver JVM before the job's code runs, so what ``build_session``
sets for the JVM itself must be given on the command line: ``submit_settings`` is that
list, taken from the configuration. The Airflow operator and ``marquee submit`` both use
it, so a job runs the same way either way. The driver runs in client mode on the submitting
machine; the executors run the Python named by ``spark.pyspark.python``. More:
docs/airflow.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from feature_store.config import Config

log = logging.getLogger(__name__)

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"


def spark_home() -> str:
    """pyspark's own Spark (its bin/ has spark-submit and spark-class), never a system one."""
    return importlib.util.find_spec("pyspark").submodule_search_locations[0]


def submit_settings(config: Config) -> dict[str, Any]:
    """What ``build_session`` sets for the JVM itself, as spark-submit options."""
    from feature_store.spark import (
        _PROVIDED_BY_SPARK,
        delta_jars,
        delta_maven_coordinates,
        java_options,
    )

    sc = config.spark
    home = spark_home()
    settings: dict[str, Any] = {
        "driver_memory": sc.driver_memory,
        "conf": {
            "spark.driver.extraJavaOptions": java_options(config, driver=True),
            "spark.executor.extraJavaOptions": java_options(config, driver=False),
            "spark.log.level": sc.log_level,
            # The driver imports feature_store: this virtual environment's Python.
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            **sc.extra_conf,
        },
        "env_vars": {"SPARK_HOME": home, "PATH": f"{home}/bin{os.pathsep}{os.environ['PATH']}"},
        "packages": None,
        "exclude_packages": None,
        "jars": None,
    }
    extra = sc.extra_package_list
    jars = delta_jars(config)
    if jars:
        settings["jars"] = ",".join(jars)
        settings["packages"] = ",".join(extra) or None
    else:
        settings["packages"] = ",".join([*delta_maven_coordinates(), *extra])
        settings["exclude_packages"] = ",".join(_PROVIDED_BY_SPARK)
    return settings


def spark_submit_command(
    config: Config, job: str, job_args: list[str], *, master: str
) -> tuple[list[str], dict[str, str]]:
    """The spark-submit command line of ``jobs/<job>.py`` and the environment it needs.

    The job also gets ``--master``, so that ``build_session`` keeps the submitted master
    rather than the config's."""
    application = JOBS_DIR / f"{job}.py"
    if not application.is_file():
        known = ", ".join(sorted(p.stem for p in JOBS_DIR.glob("*.py") if p.stem != "__init__"))
        raise ValueError(f"no job {job!r} in {JOBS_DIR} (known: {known})")
    settings = submit_settings(config)
    command = [str(Path(spark_home()) / "bin" / "spark-submit"), "--master", master]
    command += ["--name", f"marquee-{job}", "--driver-memory", settings["driver_memory"]]
    for key, value in settings["conf"].items():
        command += ["--conf", f"{key}={value}"]
    for option in ("packages", "exclude_packages", "jars"):
        if settings[option]:
            command += [f"--{option.replace('_', '-')}", settings[option]]
    command += [str(application), *job_args, "--master", master]
    return command, {**os.environ, **settings["env_vars"]}


def main(argv: list[str] | None = None) -> int:
    """``marquee submit JOB [--master M] [--config F] [--set K=V] [-- JOB'S OWN FLAGS]``."""
    from feature_store import runtime

    parser = argparse.ArgumentParser(
        prog="marquee submit",
        description="Run a job of jobs/ through spark-submit (a cluster with --master)",
        epilog="example: marquee submit build_features --master spark://host:7077 "
        "-- --date 2026-01-09",
    )
    parser.add_argument("job", help="a job of jobs/, e.g. build_features")
    runtime.add_common_args(parser)
    # The job's own flags come after "--" (argparse's REMAINDER would also swallow
    # --master and --set given after the job's name).
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.job_args = argv[split + 1 :]

    def body(args: argparse.Namespace) -> int:
        config = runtime.load(args)
        job_args = list(args.job_args)
        # The job loads the same configuration: the same file and overrides.
        if args.config:
            job_args += ["--config", args.config]
        for override in args.overrides:
            job_args += ["--set", override]
        try:
            command, env = spark_submit_command(
                config, args.job, job_args, master=args.master or config.spark.master
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return runtime.EXIT_USAGE
        log.info("spark-submit %s on %s", args.job, args.master or config.spark.master)
        return subprocess.run(command, env=env, check=False).returncode

    return runtime.run(body, args)

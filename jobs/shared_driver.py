"""A long-lived Spark driver that runs the jobs of jobs/ sent to it, one at a time
(feature_store/shared_driver.py: why, and the protocol). A DAG run's start_spark_driver
task starts it; `marquee demo` starts one for both of its DAG runs.

python jobs/shared_driver.py --socket PATH [--config FILE] [--set KEY=VALUE ...] [--master M]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import SparkSession

from feature_store import runtime
from feature_store.config import Config
from feature_store.shared_driver import (
    DEFAULT_IDLE_SECONDS,
    is_listening,
    log_path,
    serve,
    serving_in_thread,
    socket_path,
)

JOBS = Path(__file__).resolve().parent
NOT_SERVED = {"shared_driver", "run_demo"}  # a driver inside a driver; the demo's own


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shared_driver", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket to listen on")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=DEFAULT_IDLE_SECONDS,
        help="stop after this long without a request (default: an hour)",
    )
    return parser.parse_args(argv)


def run_job(job: str, argv: list[str]) -> int:
    if not re.fullmatch(r"[a-z_]+", job) or job in NOT_SERVED or not (JOBS / f"{job}.py").exists():
        print(f"error: no job {job!r} in {JOBS}", file=sys.stderr)
        return runtime.EXIT_USAGE
    main = getattr(importlib.import_module(f"jobs.{job}"), "main", None)
    if main is None:
        print(f"error: jobs/{job}.py has no main(argv) to run", file=sys.stderr)
        return runtime.EXIT_USAGE
    return int(main(argv) or 0)


def forget_job_state() -> None:
    """What one job cached is not the next one's: cached tables, and their memory."""
    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.catalog.clearCache()
    gc.collect()


@contextlib.contextmanager
def hosted_here(config: Config) -> Iterator[None]:
    """This process (``marquee demo``) is the shared driver of its DAG runs while the block
    runs: their jobs use its Spark session, whose JVM its generation and backfill have
    already started and warmed, instead of a new JVM that pays both again. A driver that
    already listens for this state folder (another run's) is shared, not replaced."""
    path = socket_path(config.paths.state_dir)
    if is_listening(path):
        yield
        return
    with (
        open(log_path(config.paths.state_dir), "a", encoding="utf-8") as notes,
        serving_in_thread(path, run_job, after_job=forget_job_state, notes=notes),
    ):
        yield


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    runtime.session(config, args)  # the JVM starts once, before the first job
    print(f"shared driver: Spark up, listening on {args.socket}", flush=True)
    serve(args.socket, run_job, after_job=forget_job_state, idle_seconds=args.idle_seconds)
    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()
    return runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

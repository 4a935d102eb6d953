"""The whole platform on embedded defaults, through Airflow: generate a demo streaming
service, run the daily DAG (ingest, build, validate, publish online features) for each
landing day and the training DAG (train, register, gated promotion, publish) once, then
print a one-screen report. This is what `make run` runs (feature_store/synthetic/demo.py).

Quiet by default: one line per stage with its time, a bar with an ETA while it runs;
`--verbose` shows the library's log as well."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

from feature_store import runtime
from feature_store.console import Stages
from feature_store.spark import SHORT_LIVED_JVM_OPTIONS
from feature_store.synthetic import demo
from jobs.generate_data import spec_from
from jobs.shared_driver import hosted_here

STAGES = 5  # generate, history, daily DAG, training DAG, report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee demo", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="the library's log too")
    for flag in ("--accounts", "--titles", "--days", "--seed"):
        parser.add_argument(flag, type=int)
    args = parser.parse_args(argv)
    args.quiet = args.quiet or not args.verbose
    # Spark's console bars would draw over the stages' own, and its warnings about plans
    # and task sizes are for whoever tunes a job; a --set may turn either back on.
    args.overrides = ["spark.show_progress=false", "spark.log_level=ERROR", *args.overrides]
    return args


def _main(args: argparse.Namespace) -> int:
    stages = Stages(STAGES)
    config = runtime.load(args)
    unset = ("start_date", "dirty_share", "late_share", "sessions_per_day")
    unset += ("landing_compression", "landing_days")
    spec = spec_from(argparse.Namespace(**vars(args), **dict.fromkeys(unset)), config.generator)
    with stages.stage("Generate the demo service") as stage:
        spark = runtime.session(config, args)
        stage.note(demo.generate_service(spark, config, spec))
    plan = demo.history_plan(spec)
    with stages.stage("Backfill the feature history", steps=len(plan)) as stage:
        failed = demo.build_history(
            spark, config, spec, on_backfill=lambda tables, report: stage.advance(tables[0])
        )
        stage.note(f"{sum(len(d) * len(t) for t, d in plan)} partitions, one pass per table")
    if failed:
        print(f"error: history feature builds failed for {failed}", file=sys.stderr)
        return runtime.EXIT_FAILED
    task_overrides = args.overrides
    if config.spark.task_driver == "spark-submit":  # drivers that live a minute each
        task_overrides = [f"spark.java_options={SHORT_LIVED_JVM_OPTIONS}", *args.overrides]
    with hosted_here(config) if config.spark.task_driver == "shared" else nullcontext():
        outcome = demo.run_dags(
            config, spec, config_file=args.config, overrides=task_overrides, stages=stages
        )
    with stages.stage("Report"):
        text = demo.report(spark, config, spec, outcome)
    print(f"\n{text}")
    for problem in outcome.failed:
        print(f"error: {problem}", file=sys.stderr)
    print(f"\nlake: {config.lake}   total time {stages.elapsed():.0f}s")
    return runtime.EXIT_OK if outcome.ok else runtime.EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

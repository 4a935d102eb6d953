"""The whole platform on embedded defaults, through Airflow: generate a demo streaming
service, run the daily DAG (ingest, build, validate, publish online features) for each
landing day and the training DAG (train, register, gated promotion, publish) once, then
print a one-screen report. This is what `make run` runs (feature_store/demo.py)."""

from __future__ import annotations

import argparse
import sys
import time

from feature_store import demo, runtime
from feature_store.spark import stop_session_and_jvm
from jobs.generate_data import spec_from


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee demo", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    for flag in ("--accounts", "--titles", "--days", "--seed"):
        parser.add_argument(flag, type=int)
    return parser.parse_args(argv)


def _main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = runtime.load(args)
    unset = ("start_date", "dirty_share", "late_share", "sessions_per_day")
    unset += ("landing_compression", "landing_days")
    spec = spec_from(argparse.Namespace(**vars(args), **dict.fromkeys(unset)), config.generator)
    spark = runtime.session(config, args)
    failed = demo.prepare(spark, config, spec)
    if failed:
        print(f"error: history feature builds failed for {failed}", file=sys.stderr)
        return runtime.EXIT_FAILED
    # The DAGs' tasks start their own Spark drivers; this one would only hold memory.
    stop_session_and_jvm(spark)
    outcome = demo.run_dags(
        config,
        spec,
        config_file=args.config,
        overrides=args.overrides,
        on_run=lambda run: print(run.format_line(), flush=True),
    )
    spark = runtime.session(config, args)
    print(demo.report(spark, config, spec, outcome))
    for problem in outcome.failed:
        print(f"error: {problem}", file=sys.stderr)
    print(f"\nlake: {config.lake}   total time {time.perf_counter() - started:.0f}s")
    return runtime.EXIT_OK if outcome.ok else runtime.EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

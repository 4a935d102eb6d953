"""What every entry point shares: common flags, logging, config and session set-up."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import sys
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from feature_store.config import Config, ConfigError, load_config
from feature_store.spark import SparkSetupError, build_session

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Add `--config`, `--set`, `--master` and `-q/--quiet` to `parser`."""
    parser.add_argument("--config", help="YAML configuration (default: conf/local.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration key, e.g. --set spark.driver_memory=12g",
    )
    parser.add_argument("--master", help="Spark master URL (default: spark.master from config)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def iso_date(text: str) -> dt.date:
    """`text` as a date, for argparse ``type=``; raises `ArgumentTypeError` unless YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def date_range(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[dt.date]:
    """`--date D` or `--start A --end B` (inclusive) as a list of dates."""
    if args.date and (args.start or args.end):
        parser.error("give either --date or --start/--end, not both")
    if args.date:
        return [args.date]
    if not (args.start and args.end):
        parser.error("give --date, or both --start and --end")
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    return [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]


def configure_logging(quiet: bool = False) -> None:
    """Log to stderr at INFO (WARNING when `quiet`), py4j at WARNING."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


def load(args: argparse.Namespace) -> Config:
    """Set up logging (`--quiet`) and load the config from `--config` and `--set`."""
    configure_logging(getattr(args, "quiet", False))
    return load_config(args.config, args.overrides)


def session(config: Config, args: argparse.Namespace) -> SparkSession:
    """The Spark session for `config`, on `--master` when given."""
    return build_session(config, master=args.master)


def run(main_body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a job body, turning set-up errors into clear messages and exit codes."""
    try:
        return main_body(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SparkSetupError as exc:
        print(f"spark set-up error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def add_tag_arg(parser: argparse.ArgumentParser) -> None:
    """``--tag KEY=VALUE`` (repeatable): tags for the model version a training job registers."""
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="also tag the registered version (repeatable), e.g. the orchestrator's run id",
    )


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {text!r}")
    return key, value


@dataclasses.dataclass(frozen=True)
class TrainingJob:
    """What a model's train job plugs into the one skeleton every train job shares."""

    model_name: str  # the registered model its versions belong to
    data_error: type[Exception]  # the lake cannot feed the model: exit 1 with the message
    train: Callable[[SparkSession, Config, argparse.Namespace], Any]  # -> a run with model_version
    summary: Callable[[Any, Config], str]  # the run's table for the console


def run_training(job: TrainingJob, args: argparse.Namespace) -> int:
    """Load the config, start Spark, train (and register), tag the version it registered
    with ``--tag`` values, and print the run's summary."""
    config = load(args)
    spark = session(config, args)
    try:
        run = job.train(spark, config, args)
    except job.data_error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.tag and run.model_version:
        from feature_store.tracking import tag_model_version

        tag_model_version(job.model_name, run.model_version, dict(args.tag))
    print(job.summary(run, config))
    return EXIT_OK

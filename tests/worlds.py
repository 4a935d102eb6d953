"""The generated worlds several test modules read, each built once per test run.

Generating and ingesting a lake costs minutes of fixed Spark and Delta work, so the
modules that need a realistic lake share one instead of each making their own:
- the world (`shared_world`): landing files, two of its days ingested with their dirt --
  the generator's own checks, the daily DAG, the cluster build;
- the model world (`shared_model_world`): weeks of bronze written directly and the
  feature partitions the churn and recommender models train on -- the model tests that
  compare a model with the generator's hidden truth.
They are read-only: a test that writes to a lake works on a copy (`World.copy`: a copy of
a few hundred small files takes about a second).

Under pytest-xdist, every worker asks for the world; the first builds it in a folder the
run's workers share, the others wait on a file lock and read what it left.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import TEST_KEY, make_config
from pyspark.sql import SparkSession

from feature_store.config import Config
from feature_store.features.build import build_feature_range
from feature_store.ingest import IngestReport, ingest_date
from feature_store.synthetic import GenerationResult, GenerationSpec, generate, generate_bronze

# Sized for the generator's statistical checks with room to spare (on ~4,000 sessions:
# picked titles of the favourite genre 1.70x as often as passed-over ones, against 1.5x
# required; artwork click-through correlation 0.83 over 36 segment x style cells, against
# 0.3 over 10), and a few cancels. The first two days go straight into bronze as a
# platform's history; the last two arrive as dirty landing files, so that ingestion meets
# late events and duplicates of the day before, and only two days pay for a full ingest.
WORLD_SPEC = GenerationSpec(
    seed=11,
    accounts=400,
    titles=150,
    days=4,
    start_date=dt.date(2026, 3, 2),
    dirty_share=0.04,
    late_share=0.05,
    sessions_per_day=1.5,
    history_days=2,
)
# Dirt is injected at 4 %: the ingests must accept it (the reconciliation checks it).
WORLD_OVERRIDES = ("ingest.max_quarantine_share=0.2",)


@dataclasses.dataclass(frozen=True)
class World:
    """A generated lake whose landing days have been ingested, with what that reported."""

    state: Path
    result: GenerationResult
    reports: tuple[IngestReport, ...]

    @property
    def spec(self) -> GenerationSpec:
        return self.result.spec

    @property
    def config(self) -> Config:
        return make_config(self.state, *WORLD_OVERRIDES)

    @property
    def lake(self) -> str:
        return self.config.lake

    def copy(self, state: Path, *parts: str) -> Path:
        """Copy the lake (or only ``parts`` of it, e.g. ``"bronze"`` or
        ``"landing/viewing/date=2026-03-05"``) to ``state/lake``; returns that lake."""
        lake = state / "lake"
        for part in parts or ("",):
            shutil.copytree(Path(self.lake) / part, lake / part, dirs_exist_ok=True)
        return lake


def shared_folder(tmp_path_factory) -> Path:
    """The run's temporary folder that all of its xdist workers see."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(root: Path, name: str, build: Callable[[Path], Any]) -> Any:
    """``build(root / name)``'s value, computed by the first test process that asks; the
    others wait for it on a file lock and unpickle it."""
    folder, done = root / name, root / f"{name}.pickle"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if done.exists():
            return pickle.loads(done.read_bytes())
        shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
        folder.mkdir(parents=True)
        value = build(folder)
        partial = done.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(value))
        partial.replace(done)
        return value


def generate_world(spark: SparkSession, state: Path, spec: GenerationSpec = WORLD_SPEC) -> World:
    """Generate ``spec`` under ``state`` and ingest its landing days in order."""
    config = make_config(state, *WORLD_OVERRIDES)
    result = generate(spark, config.lake, spec, pseudonymization_key=TEST_KEY)
    reports = tuple(ingest_date(spark, config, date) for date in spec.landing_dates)
    return World(state, result, reports)


def shared_world(spark: SparkSession, tmp_path_factory) -> World:
    return build_once(
        shared_folder(tmp_path_factory), "world", lambda state: generate_world(spark, state)
    )


def model_day(day: int) -> dt.date:
    return MODEL_SPEC.start_date + dt.timedelta(days=day)


# Churn needs the longest history: features whose 30-day windows are full (from day 29),
# a 14-day label window after its evaluation snapshot (day 32), and every account scored
# on the last day; 4,000 accounts give it 2,700 training rows and 600 held-out ones. The
# recommender learns as of day 32 from the generators fitted as of day 29 and is judged on
# days 33 to 35. Few sessions per day keep it to ~28k sessions.
MODEL_SPEC = GenerationSpec(
    seed=11,
    accounts=4000,
    titles=60,
    days=47,
    start_date=dt.date(2026, 2, 1),
    dirty_share=0.0,
    late_share=0.0,
    sessions_per_day=0.15,
)
MODEL_FEATURE_DATES = (model_day(29), model_day(32), model_day(46))
MODEL_TABLES = ("profile_daily", "account_daily", "profile_title_interactions")


def generate_model_world(spark: SparkSession, state: Path) -> World:
    """Bronze for ``MODEL_SPEC`` and its feature tables as of ``MODEL_FEATURE_DATES``,
    built in one pass."""
    config = make_config(state)
    result = generate_bronze(spark, config.lake, MODEL_SPEC, pseudonymization_key=TEST_KEY)
    report = build_feature_range(spark, config, MODEL_FEATURE_DATES, MODEL_TABLES)
    if not report.ok:
        raise AssertionError(report.format_table())
    return World(state, result, ())


def shared_model_world(spark: SparkSession, tmp_path_factory) -> World:
    return build_once(
        shared_folder(tmp_path_factory),
        "model-world",
        lambda state: generate_model_world(spark, state),
    )

"""One Spark session for the whole run (local[2], few shuffle partitions, UI off),
built by the same factory as the jobs, with all state under a temporary folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from feature_store.config import Config, load_config

TEST_KEY = "test-pseudonymization-key-0123456789"


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("marquee-state")


@pytest.fixture(scope="session")
def config(state_dir: Path) -> Config:
    return make_config(state_dir)


def make_config(state_dir: Path, *overrides: str) -> Config:
    return load_config(
        None,
        [
            f"paths.state_dir={state_dir}",
            f"paths.lake={state_dir}/lake",
            f"paths.mlflow={state_dir}/mlflow",
            f"paths.published={state_dir}/published",
            "spark.shuffle_partitions=2",
            "spark.delta_snapshot_partitions=1",
            "spark.file_listing_parallelism=2",
            "spark.show_progress=false",
            "spark.driver_memory=2g",
            "spark.log_level=ERROR",
            *overrides,
        ],
        environ={"MARQUEE_PSEUDONYMIZATION_KEY": TEST_KEY},
    )


@pytest.fixture(scope="session")
def spark(config: Config):
    from feature_store.spark import build_session

    session = build_session(config)
    yield session
    session.stop()


def write_landing(
    lake_root: str | Path, source: str, date: dt.date, lines: list, name="part-0.txt"
) -> Path:
    """Write landing lines (dicts become JSON, str and bytes are written as they are)."""
    folder = Path(lake_root) / "landing" / source / f"date={date.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        chunks.append(line if isinstance(line, bytes) else line.encode())
    path = folder / name
    path.write_bytes(b"\n".join(chunks) + b"\n")
    return path

"""Typed configuration, loaded once at the edge (CLI, jobs, tests).

A YAML file maps onto frozen dataclasses. Unknown keys and values of the wrong type are
errors that name the file and the dotted key; relative paths resolve against the directory
of the file. The pseudonymization key comes from the environment variable named in
`privacy.key_env` (for the local demo, generated once into `<state_dir>/secrets/`) and is
never logged nor part of `repr()`. The manifest signing key is only a path here
(`publish.signing_key_file`). More: docs/ingestion.md.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import os
import secrets
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "conf" / "local.yaml"
SIGNING_KEY_NAME = "manifest-signing.key"


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names file and key."""


TASK_DRIVERS = ("spark-submit", "shared")


@dataclasses.dataclass(frozen=True)
class SparkConfig:
    master: str = "local[2]"
    app_name: str = "marquee"
    driver_memory: str = "4g"
    # Results collected to the driver at most (Spark's spark.driver.maxResultSize). The
    # recommender trains on the implicit feedback collected as one frame: at 3M
    # profiles that is 30M rows, over 1 GB serialized (Spark's default is 1g).
    max_result_size: str = "4g"
    shuffle_partitions: int = 8
    # Delta reconstructs table state with this many tasks (its default, 50, is built
    # for clusters; on two cores it turns every small read into 50 tiny tasks).
    delta_snapshot_partitions: int = 4
    # Tasks for listing files in parallel (VACUUM, partition discovery). Spark's default,
    # 10,000, is built for clusters: on two cores one VACUUM of a tiny table took 55 s.
    file_listing_parallelism: int = 8
    # A keyed look-up (profile -> segment) of at most this many rows is broadcast to
    # every task rather than joined by shuffling the large side (100M impressions). On
    # one machine a few million rows cost a few hundred MB; on a cluster, lower it.
    broadcast_lookup_max_rows: int = 5_000_000
    ui_enabled: bool = False
    show_progress: bool = True
    log_level: str = "WARN"
    # A folder of jars fetched by Maven (`marquee doctor --maven`) used instead of
    # Spark's own package resolution, for machines where that resolution fails.
    jars_dir: str = ""
    # More Maven packages for Spark to resolve beside Delta's, comma-separated: e.g.
    # org.apache.hadoop:hadoop-aws:<Spark's Hadoop version> for s3a:// lake paths.
    extra_packages: str = ""
    extra_conf: dict[str, str] = dataclasses.field(default_factory=dict)
    # More JVM options for the driver and executors, after the ones Marquee sets (UTC):
    # e.g. -XX:TieredStopAtLevel=1 for short jobs on tiny data, where compiling hot code
    # costs more CPU than it saves.
    java_options: str = ""
    # How the Airflow DAGs run their Spark jobs: one spark-submit per task (a new driver
    # each), or "shared": one driver per DAG run that every task's job runs on
    # (feature_store/shared_driver.py), which saves each task a JVM's start and warm-up.
    task_driver: str = "spark-submit"

    @property
    def extra_package_list(self) -> list[str]:
        return [p.strip() for p in self.extra_packages.split(",") if p.strip()]


@dataclasses.dataclass(frozen=True)
class PathsConfig:
    state_dir: str = ".marquee"
    lake: str = ".marquee/lake"
    mlflow: str = ".marquee/mlflow"
    published: str = ".marquee/published"
    # The promotion policy (gates per registered model), kept as data in the repository.
    # Absolute by default so that a configuration file elsewhere still finds it.
    registry_policy: str = str(REPO_ROOT / "mlflow" / "registry.yaml")


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    # A run fails (and writes no bronze data) when more than this share of a
    # source's lines is quarantined.
    max_quarantine_share: float = 0.05
    # ... once at least this many lines are quarantined: a source with six lines a day
    # (the day's new profiles) is at 17% with one bad line, which says nothing about
    # the file.
    min_quarantined_lines: int = 3
    # Events older than this many days before the file date are beyond the
    # watermark: quarantined as `beyond_watermark`, never silently merged.
    watermark_days: int = 7
    # Timestamps more than this far past the end of the file date are `future_timestamp`.
    future_tolerance_hours: int = 24
    # Lines longer than this are skipped by the reader and reported per file.
    max_line_bytes: int = 1_048_576


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 7
    accounts: int = 5_000
    titles: int = 800
    days: int = 10
    start_date: dt.date = dt.date(2026, 1, 5)
    # Share of landing records made dirty (malformed, missing or mistyped fields,
    # unknown enum values, future timestamps, empty lines, duplicates).
    dirty_share: float = 0.01
    # Share of events that arrive in a later day's file (1-3 days late).
    late_share: float = 0.02
    # Mean number of sessions per active profile per day.
    sessions_per_day: float = 0.5
    # none, or gzip: landing zones often hold compressed JSON lines (about 8x smaller).
    landing_compression: str = "none"
    # At most this many of the last days arrive as landing files; the days before them
    # are written straight into bronze as history (0: every day as landing files).
    landing_days: int = 0


@dataclasses.dataclass(frozen=True)
class PrivacyConfig:
    key_env: str = "MARQUEE_PSEUDONYMIZATION_KEY"
    # After a forget request deletes a member's rows, VACUUM removes the files that
    # still hold them once they are older than this (Delta's time-travel window).
    vacuum_retention_hours: int = 168
    pseudonymization_key: str = dataclasses.field(default="", repr=False)


@dataclasses.dataclass(frozen=True)
class PublishConfig:
    # Versions kept per published artifact (`marquee publish`); older ones are removed,
    # never the one `latest` names.
    retention_versions: int = 5
    # The Ed25519 private key (PEM) that signs every published manifest, kept apart
    # from the artifacts. Empty: <state_dir>/secrets/manifest-signing.key, generated
    # on first use (mode 0600).
    signing_key_file: str = ""
    # The publisher's Ed25519 public key (base64 of its 32 bytes) that `marquee pull`
    # trusts; `marquee doctor` prints it. Empty: the public half of signing_key_file,
    # for a serving host that is also the publisher.
    trusted_public_key: str = ""


@dataclasses.dataclass(frozen=True)
class Config:
    source: str
    spark: SparkConfig = dataclasses.field(default_factory=SparkConfig)
    paths: PathsConfig = dataclasses.field(default_factory=PathsConfig)
    ingest: IngestConfig = dataclasses.field(default_factory=IngestConfig)
    generator: GeneratorConfig = dataclasses.field(default_factory=GeneratorConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    publish: PublishConfig = dataclasses.field(default_factory=PublishConfig)

    @property
    def lake(self) -> str:
        return self.paths.lake

    @property
    def state_dir(self) -> Path:
        return Path(self.paths.state_dir)


_SECTIONS = {
    "spark": SparkConfig,
    "paths": PathsConfig,
    "ingest": IngestConfig,
    "generator": GeneratorConfig,
    "privacy": PrivacyConfig,
    "publish": PublishConfig,
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load a YAML config, apply `section.key=value` overrides, resolve the secret key."""
    file = Path(path) if path else DEFAULT_CONFIG
    if not file.is_file():
        raise ConfigError(f"{file}: configuration file not found")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: top level must be a mapping of sections")
    for override in overrides or []:
        _apply_override(data, override, file)

    sections = {}
    for name, value in data.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{file}: unknown key '{name}' (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: '{name}' must be a mapping")
        sections[name] = _build(_SECTIONS[name], value, file, name)

    base = file.resolve().parent
    paths = sections.get("paths", PathsConfig())
    paths = dataclasses.replace(
        paths, **{f.name: _resolve(base, getattr(paths, f.name)) for f in dataclasses.fields(paths)}
    )
    sections["paths"] = paths
    spark = sections.get("spark", SparkConfig())
    if spark.jars_dir:
        sections["spark"] = dataclasses.replace(spark, jars_dir=_resolve(base, spark.jars_dir))
    publish = sections.get("publish", PublishConfig())
    if publish.signing_key_file:
        signing_key_file = _resolve(base, publish.signing_key_file)
        sections["publish"] = dataclasses.replace(publish, signing_key_file=signing_key_file)
    _check_values(sections, file)

    privacy = sections.get("privacy", PrivacyConfig())
    # an empty mapping is an environment without the key, not "use the process's own"
    environment = os.environ if environ is None else environ
    key = _pseudonymization_key(privacy, Path(paths.state_dir), environment)
    sections["privacy"] = dataclasses.replace(privacy, pseudonymization_key=key)
    return Config(source=str(file), **sections)


def _apply_override(data: dict[str, Any], override: str, file: Path) -> None:
    key, sep, raw = override.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"{file}: override '{override}' must look like section.key=value")
    section, name = parts
    data.setdefault(section, {})
    if not isinstance(data[section], dict):
        raise ConfigError(f"{file}: '{section}' must be a mapping")
    data[section][name] = yaml.safe_load(raw) if raw.strip() else ""


def _build(cls: type, values: dict[str, Any], file: Path, section: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if section == "privacy" and key == "pseudonymization_key":
            raise ConfigError(
                f"{file}: key '{section}.{key}' is not allowed: the key comes from the "
                "environment variable named by privacy.key_env"
            )
        if key not in fields:
            raise ConfigError(f"{file}: unknown key '{section}.{key}' (known: {', '.join(fields)})")
        kwargs[key] = _coerce(value, hints[key], file, f"{section}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, file: Path, key: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    elif hint is dt.date:
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
    elif origin is dict and isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{file}: key '{key}' must be {name}, got {value!r}")


def _check_values(sections: dict[str, Any], file: Path) -> None:
    def fail(key: str, why: str) -> None:
        raise ConfigError(f"{file}: key '{key}' {why}")

    spark = sections.get("spark", SparkConfig())
    if spark.shuffle_partitions < 1:
        fail("spark.shuffle_partitions", "must be at least 1")
    if spark.delta_snapshot_partitions < 1:
        fail("spark.delta_snapshot_partitions", "must be at least 1")
    if spark.file_listing_parallelism < 1:
        fail("spark.file_listing_parallelism", "must be at least 1")
    if not spark.driver_memory[:-1].isdigit() or spark.driver_memory[-1].lower() not in "kmgt":
        fail("spark.driver_memory", f"must look like 4g or 512m, got {spark.driver_memory!r}")
    if sections.get("privacy", PrivacyConfig()).vacuum_retention_hours < 0:
        fail("privacy.vacuum_retention_hours", "must not be negative")
    publish = sections.get("publish", PublishConfig())
    if publish.retention_versions < 1:
        fail("publish.retention_versions", "must be at least 1")
    if publish.trusted_public_key and not _is_public_key(publish.trusted_public_key):
        fail("publish.trusted_public_key", "must be the base64 of a 32-byte Ed25519 public key")
    if spark.task_driver not in TASK_DRIVERS:
        fail("spark.task_driver", f"must be one of {', '.join(TASK_DRIVERS)}")
    ingest = sections.get("ingest", IngestConfig())
    if not 0.0 <= ingest.max_quarantine_share <= 1.0:
        fail("ingest.max_quarantine_share", "must be between 0 and 1")
    if ingest.watermark_days < 0:
        fail("ingest.watermark_days", "must not be negative")
    if ingest.max_line_bytes < 1024:
        fail("ingest.max_line_bytes", "must be at least 1024")
    gen = sections.get("generator", GeneratorConfig())
    for key in ("accounts", "titles", "days"):
        if getattr(gen, key) < 1:
            fail(f"generator.{key}", "must be at least 1")
    if gen.titles < 20:
        fail("generator.titles", "must be at least 20 (the catalogue needs every genre)")
    for key in ("dirty_share", "late_share"):
        if not 0.0 <= getattr(gen, key) <= 0.5:
            fail(f"generator.{key}", "must be between 0 and 0.5")
    if gen.landing_compression not in ("none", "gzip"):
        fail("generator.landing_compression", "must be none or gzip")
    if gen.sessions_per_day <= 0:
        fail("generator.sessions_per_day", "must be positive")
    if gen.landing_days < 0:
        fail("generator.landing_days", "must not be negative (0: every day as landing files)")


def _is_public_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


def manifest_signing_key_file(config: Config) -> Path:
    """Where the private key that signs published manifests is kept."""
    configured = config.publish.signing_key_file
    return Path(configured) if configured else config.state_dir / "secrets" / SIGNING_KEY_NAME


def _resolve(base: Path, value: str) -> str:
    if "://" in value or not value:  # object-store URIs pass through untouched
        return value
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())


def _pseudonymization_key(
    privacy: PrivacyConfig, state_dir: Path, environ: Mapping[str, str]
) -> str:
    key = environ.get(privacy.key_env, "")
    if key:
        if len(key) < 16:
            raise ConfigError(
                f"environment variable {privacy.key_env} holds a key shorter than 16 characters"
            )
        return key
    # Local demo default: generated once, kept out of the repository and the logs.
    key_file = state_dir / "secrets" / "pseudonymization.key"
    if key_file.is_file():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key

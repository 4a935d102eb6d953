"""Checks the machine can run Marquee; with ``--warm``, starts Spark once so that its
resolver fetches Delta's jars and keeps a copy (set-up's fallback when the locked fetch
of infra/delta_jars.py cannot reach Maven Central)."""

from __future__ import annotations

import ctypes.util
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from feature_store.config import Config, manifest_signing_key_file
from feature_store.spark import (
    SparkSetupError,
    build_session,
    check_java,
    delta_jars,
    delta_maven_coordinates,
    keep_delta_jars,
    kept_jars_dir,
)

log = logging.getLogger(__name__)


def native_blas_library() -> str | None:
    """The libblas.so.3 MLlib's netlib loader would find, if any."""
    return ctypes.util.find_library("blas")


def manifest_signing_report(config: Config) -> str:
    """The public key serving hosts must trust (`publish.trusted_public_key`), if this
    host publishes; never creates the key."""
    from feature_store import signing

    key_file = manifest_signing_key_file(config)
    if not key_file.is_file():
        return f"manifest signing key: none yet at {key_file} (the first publish creates it)"
    public_key = signing.public_key_text(signing.signing_key(config))
    return (
        f"manifest signing public key: {public_key} "
        "(set publish.trusted_public_key to it on serving hosts)"
    )


def warm(config: Config) -> list[str]:
    """Start Spark with Delta (resolving and caching its jars), write and read a tiny
    Delta table, and report which BLAS MLlib uses. Returns report lines."""
    lines = [f"python: {sys.version.split()[0]}", f"java: {check_java()}"]
    spark = build_session(config)
    with tempfile.TemporaryDirectory(prefix="marquee-doctor-") as tmp:
        spark.range(3).write.format("delta").save(f"{tmp}/t")
        rows = spark.read.format("delta").load(f"{tmp}/t").count()
    if rows != 3:
        raise SparkSetupError(f"Delta round trip returned {rows} rows instead of 3")
    lines.append(f"spark {spark.version} with Delta: ok ({', '.join(delta_maven_coordinates())})")
    kept = keep_delta_jars(spark, config)
    if kept:
        lines.append(f"Delta jars kept in {kept} (no Maven resolution at each Spark start)")
    elif delta_jars(config):
        lines.append(f"Delta jars: loaded from {kept_jars_dir(config)}")
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    blas = jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    native = blas == "JNIBLAS"
    lines.append(
        f"MLlib BLAS: {blas}" + ("" if native else " (Java fallback: install libopenblas0-pthread)")
    )
    return lines


def fetch_jars_with_maven(target: Path) -> list[Path]:
    """Fallback when Spark's own resolver cannot reach Maven Central: let Maven fetch
    Delta's jars (its default repository) into `target`, for `spark.jars_dir`."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise SparkSetupError("mvn not found: install Maven or fix Spark's access to Maven Central")
    target.mkdir(parents=True, exist_ok=True)
    for coordinate in delta_maven_coordinates():
        subprocess.run(
            [
                mvn,
                "-q",
                "dependency:copy",
                f"-Dartifact={coordinate}",
                f"-DoutputDirectory={target}",
            ],
            check=True,
        )
    return sorted(target.glob("*.jar"))

"""Delta's jars for Spark from a lock file, without starting Spark (standard library only).

Set-up runs `fetch` beside the Python packages' install: each jar of the lock comes from
Maven Central, is checked against its pinned SHA-256 and lands in the folder the session
factory loads kept jars from (`feature_store.spark.kept_jars_dir`). Resolving them with
Spark's own resolver instead cost a JVM start on set-up's critical path.

    python infra/delta_jars.py fetch --state-dir .marquee
    python infra/delta_jars.py lock --jars .marquee/jars/<folder>   # after a version bump

`lock` pins the jars a Spark resolution left in a folder (`marquee doctor --warm` with no
lock: Ivy's names, `group_artifact-version.jar`), found by content in Ivy's cache.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

LOCK = Path(__file__).resolve().parent / "delta-jars.lock"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
COMPLETE = "COMPLETE"  # feature_store.spark's marker of a whole kept folder
ROOTS = "roots:"


class JarError(Exception):
    pass


def read_lock(lock: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The root coordinates and the (Maven path, SHA-256) of every jar."""
    roots, jars = [], []
    for line in lock.read_text().splitlines():
        line = line.strip()
        if line.startswith(ROOTS):
            roots = line.removeprefix(ROOTS).split()
        elif line and not line.startswith("#"):
            path, digest = line.split()
            jars.append((path, digest))
    if not roots or not jars:
        raise JarError(f"{lock}: no '{ROOTS}' line or no jars")
    return roots, jars


def ivy_name(maven_path: str) -> str:
    """``io/delta/delta-storage/4.4.0/delta-storage-4.4.0.jar`` -> the name Spark's
    resolver gives it, ``io.delta_delta-storage-4.4.0.jar``."""
    *group, _artifact, _version, file = maven_path.split("/")
    return f"{'.'.join(group)}_{file}"


def folder_name(roots: list[str]) -> str:
    return roots[0].replace(":", "_")


def _download(repository: str, maven_path: str, digest: str, target: Path) -> None:
    url = f"{repository}/{maven_path}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as exc:
        raise JarError(f"{url}: {exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise JarError(f"{url}: SHA-256 {got}, the lock pins {digest}")
    (target / ivy_name(maven_path)).write_bytes(data)


def fetch(state_dir: Path, lock: Path = LOCK, repository: str = MAVEN_CENTRAL) -> Path:
    """Download the lock's jars into ``state_dir/jars/<first root>``; a folder already
    complete is kept. Returns the folder."""
    roots, jars = read_lock(lock)
    folder = state_dir / "jars" / folder_name(roots)
    if (folder / COMPLETE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetching-", dir=folder.parent))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for done in [pool.submit(_download, repository, p, d, staging) for p, d in jars]:
                done.result()
        (staging / COMPLETE).write_text("\n".join(roots) + "\n")
        shutil.rmtree(folder, ignore_errors=True)  # a half-kept folder of an older set-up
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def lock_lines(jars_folder: Path, ivy_cache: Path) -> list[str]:
    """`path sha256` for each jar of ``jars_folder``, its Maven path read from where the
    same bytes sit in Ivy's cache (``<group>/<artifact>/jars/<artifact>-<version>.jar``;
    ``bundles/`` for OSGi bundles)."""
    cached = {}
    for jar in ivy_cache.glob("*/*/*/*.jar"):
        group, artifact = jar.parent.parent.parent.name, jar.parent.parent.name
        version = jar.name.removeprefix(f"{artifact}-").removesuffix(".jar")
        path = f"{group.replace('.', '/')}/{artifact}/{version}/{jar.name}"
        cached[hashlib.sha256(jar.read_bytes()).hexdigest()] = path
    lines = []
    for jar in sorted(jars_folder.glob("*.jar")):
        digest = hashlib.sha256(jar.read_bytes()).hexdigest()
        if digest not in cached:
            raise JarError(f"{jar.name}: not found in Ivy's cache {ivy_cache}")
        lines.append(f"{cached[digest]} {digest}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download the locked jars")
    get.add_argument("--state-dir", type=Path, required=True)
    pin = sub.add_parser("lock", help="write the lock from a folder Spark's resolver filled")
    pin.add_argument("--jars", type=Path, required=True)
    pin.add_argument("--ivy-cache", type=Path, default=Path.home() / ".ivy2.5.2" / "cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            folder = fetch(args.state_dir)
            print(f"Delta jars: {len(list(folder.glob('*.jar')))} locked jars in {folder}")
        else:
            roots = (args.jars / COMPLETE).read_text().split()
            body = "\n".join(lock_lines(args.jars, args.ivy_cache))
            header = (
                "# Delta's jars for Spark, pinned: infra/delta_jars.py fetches them at set-up.\n"
            )
            LOCK.write_text(f"{header}{ROOTS} {' '.join(roots)}\n{body}\n")
            print(f"wrote {LOCK}")
    except (JarError, OSError) as exc:
        print(f"error: Delta jars: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

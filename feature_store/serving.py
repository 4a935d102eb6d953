"""The serving side of published artifacts: list, resolve, verify, pull and read them.

`verify` and `pull` take the public key they trust and refuse a version whose signed
manifest (Ed25519) or files do not match in any way, or which holds a symbolic link; `pull`
copies into a temporary folder beside the destination and renames it into place only once
every byte is verified, so a refused pull leaves nothing behind. This is what serving hosts
import: the standard library only (`cryptography`, pyarrow and pandas for `read_table`),
never Spark or MLflow. The publisher uses the same layout helpers. Layout and checks:
docs/registry-and-publishing.md.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
LATEST = "latest"
MANIFEST_VERSION = 1  # bumped on any incompatible change of the manifest's shape
FORMAT = "parquet"
SIGNATURE = "signature"  # the manifest key holding the signature of all the others
SIGNATURE_ALGORITHM = "ed25519"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # artifact and table names
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]*$")  # no separators: never a path
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20

log = logging.getLogger(__name__)


class ArtifactError(Exception):
    """A published artifact cannot be used; names the artifact, version and problem."""

    def __init__(self, artifact: str, version: str | None, problem: str) -> None:
        self.artifact, self.version, self.problem = artifact, version, problem
        where = f"{artifact} version {version}" if version else artifact
        super().__init__(f"{where}: {problem}")


class UnknownArtifactError(ArtifactError):
    """Nothing has ever been published under this artifact name."""


class UnknownVersionError(ArtifactError):
    """The version (or the one `latest` names) does not exist."""


class ManifestError(ArtifactError):
    """manifest.json is missing, truncated, not JSON or not a valid manifest."""


class SignatureError(ManifestError):
    """The manifest is unsigned, changed after signing, or signed by an untrusted key."""


class IntegrityError(ArtifactError):
    """A file is missing, has the wrong size or checksum, is not in the manifest, or is a
    symbolic link (never followed)."""


class DestinationError(ArtifactError):
    """The pull destination holds something else; it is never overwritten."""


@dataclasses.dataclass(frozen=True)
class Pulled:
    artifact: str
    version: str
    path: Path
    manifest: dict[str, Any]
    copied: bool  # False: the destination already held this verified version


# ---- layout ---------------------------------------------------------------------------


def artifact_dir(root: str | os.PathLike[str], artifact: str) -> Path:
    """The folder of `artifact` under `root`; raises `UnknownArtifactError` for a bad name."""
    if not _NAME.match(artifact):
        raise UnknownArtifactError(artifact, None, "not a valid artifact name")
    return Path(root) / artifact


def list_artifacts(root: str | os.PathLike[str]) -> list[str]:
    """The artifact names published under `root`, sorted (none when it does not exist)."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and _NAME.match(p.name))


def list_versions(root: str | os.PathLike[str], artifact: str) -> list[str]:
    """Version folders, oldest first (names sort in version order). Staging and retired
    folders are hidden (dot names) and never listed."""
    folder = artifact_dir(root, artifact)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _VERSION.match(p.name))


def latest_version(root: str | os.PathLike[str], artifact: str) -> str | None:
    """The version `latest` names (None when nothing was published)."""
    pointer = artifact_dir(root, artifact) / LATEST
    try:
        text = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    if not _VERSION.match(text):
        raise UnknownVersionError(artifact, LATEST, f"the latest pointer is malformed: {text!r}")
    return text


def resolve(root: str | os.PathLike[str], artifact: str, version: str | None = None) -> Path:
    """The folder of ``version`` (None or "latest": the one `latest` names). Checks that
    it exists, not what it holds: `verify` and `pull` do that."""
    folder = artifact_dir(root, artifact)
    if not folder.is_dir():
        known = ", ".join(list_artifacts(root)) or "none"
        raise UnknownArtifactError(
            artifact, None, f"nothing published under {root} (artifacts: {known})"
        )
    if version in (None, LATEST):
        version = latest_version(root, artifact)
        if version is None:
            raise UnknownVersionError(artifact, LATEST, "no latest pointer: nothing published")
    elif not _VERSION.match(version):
        raise UnknownVersionError(artifact, version, "not a valid version name")
    path = folder / version
    if not path.is_dir():
        recent = ", ".join(list_versions(root, artifact)[-5:]) or "none"
        raise UnknownVersionError(artifact, version, f"unknown version (recent: {recent})")
    return path


# ---- the manifest -----------------------------------------------------------------------


def load_manifest(
    folder: str | os.PathLike[str], *, artifact: str | None = None, version: str | None = None
) -> dict[str, Any]:
    """Parse and check manifest.json of a version folder (its shape, not the files).

    ``artifact`` and ``version``, when given, must be what the manifest describes (in a
    published root they are the folder names; a pulled copy may live under any name)."""
    folder = Path(folder)
    try:
        raw = (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        where = (artifact or str(folder), version)
        raise ManifestError(*where, f"{MANIFEST} is missing") from None
    return parse_manifest(raw, artifact=artifact, version=version, folder=folder)


def parse_manifest(
    raw: bytes, *, artifact: str | None, version: str | None, folder: Path | None = None
) -> dict[str, Any]:
    """The manifest in `raw` bytes, checked as `check_manifest` does; raises `ManifestError`."""
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (artifact or str(folder), version)
        raise ManifestError(*where, f"{MANIFEST} is truncated or not valid JSON ({exc})") from None
    check_manifest(manifest, artifact=artifact, version=version)
    return manifest


def check_manifest(manifest: Any, *, artifact: str | None, version: str | None) -> None:
    """Raise ManifestError naming the first key that is missing or of the wrong type, or
    the artifact or version when they are not the expected ones."""
    if isinstance(manifest, dict):  # name the error after what it claims to be, if unsure
        artifact = artifact or str(manifest.get("artifact", "?"))
        version = version or str(manifest.get("version", "?"))
    check = _ManifestCheck(artifact, version)
    if not isinstance(manifest, dict):
        check.fail("not a JSON object")
    _check_identity(check, manifest)
    _check_model(check, manifest)
    check.need(manifest, "feature_table_versions", dict)
    tables = check.need(manifest, "tables", dict)
    if not tables:
        check.fail("'tables' is empty")
    total = _check_tables(check, tables)
    if check.need(manifest, "rows", int) != total:
        check.fail(f"'rows' is {manifest['rows']} but the tables hold {total}")
    _check_files(check, check.need(manifest, "files", list), tables)
    if SIGNATURE not in manifest:
        raise SignatureError(artifact, version, "the manifest is not signed; refusing it")
    for key in ("algorithm", "key_id", "value"):
        check.need(manifest[SIGNATURE], key, str, f"{SIGNATURE}.")


@dataclasses.dataclass(frozen=True)
class _ManifestCheck:
    """Checks of one manifest's keys; each failure names its artifact and version."""

    artifact: str | None
    version: str | None

    def fail(self, problem: str) -> NoReturn:
        raise ManifestError(self.artifact or "?", self.version, f"invalid manifest: {problem}")

    def need(self, mapping: dict, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
        """``mapping[key]``, failing unless ``mapping`` is a dict holding ``key`` with a
        value of ``kind`` (a bool is not an int); ``where`` prefixes the key's name."""
        if not isinstance(mapping, dict) or key not in mapping:
            self.fail(f"missing key '{where}{key}'")
        value = mapping[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            self.fail(f"key '{where}{key}' has the wrong type ({type(value).__name__})")
        return value


def _check_identity(check: _ManifestCheck, manifest: dict) -> None:
    """The manifest's own version, what it describes, its format and its dates."""
    if check.need(manifest, "manifest_version", int) != MANIFEST_VERSION:
        check.fail(f"manifest_version {manifest['manifest_version']} is not {MANIFEST_VERSION}")
    if check.need(manifest, "artifact", str) != check.artifact:
        check.fail(f"it describes artifact {manifest['artifact']!r}")
    if check.need(manifest, "version", str) != check.version:
        check.fail(f"it describes version {manifest['version']!r}")
    if check.need(manifest, "format", str) != FORMAT:
        check.fail(f"format {manifest['format']!r} is not {FORMAT}")
    for key in ("created_at", "as_of_date"):
        try:
            dt.datetime.fromisoformat(check.need(manifest, key, str))
        except ValueError:
            check.fail(f"key '{key}' is not an ISO date or time")


def _check_model(check: _ManifestCheck, manifest: dict) -> None:
    """``model`` is required but may be null (an artifact no model made)."""
    model = manifest.get("model", "missing")
    if model == "missing":
        check.fail("missing key 'model'")
    if model is not None:
        check.need(model, "name", str, "model.")
        check.need(model, "version", (str, type(None)), "model.")
        check.need(model, "run_id", (str, type(None)), "model.")


def _check_tables(check: _ManifestCheck, tables: dict) -> int:
    """Check each table's entry; return the rows the tables hold in all."""
    total = 0
    for name, table in tables.items():
        where = f"tables.{name}."
        if not _NAME.match(name):
            check.fail(f"table name {name!r} is not valid")
        if check.need(table, "path", str, where) != name:
            check.fail(f"key '{where}path' must be {name!r}")
        rows = check.need(table, "rows", int, where)
        if rows < 0:
            check.fail(f"key '{where}rows' is negative")
        total += rows
        for i, column in enumerate(check.need(table, "schema", list, where)):
            check.need(column, "name", str, f"{where}schema[{i}].")
            check.need(column, "type", str, f"{where}schema[{i}].")
        check.need(table, "source", dict, where)
        for key in ("as_of_date", "oldest_as_of_date"):  # online snapshots: per table
            if table.get(key) is not None and not _is_date(table[key]):
                check.fail(f"key '{where}{key}' is not an ISO date")
    return total


def _check_files(check: _ManifestCheck, files: list, tables: dict) -> None:
    """Each file entry: a path <table>/<file> of a listed table, listed once, with its
    size and sha256."""
    seen = set()
    for i, entry in enumerate(files):
        where = f"files[{i}]."
        path = check.need(entry, "path", str, where)
        parts = PurePosixPath(path).parts
        if path.startswith("/") or "\\" in path or ".." in parts or len(parts) != 2:
            check.fail(f"file path {path!r} must be <table>/<file>")
        if parts[0] not in tables or parts[1] == MANIFEST:
            check.fail(f"file {path!r} belongs to no table")
        if path in seen:
            check.fail(f"file {path!r} is listed twice")
        seen.add(path)
        if check.need(entry, "bytes", int, where) < 0:
            check.fail(f"key '{where}bytes' is negative")
        if not _SHA256.match(check.need(entry, "sha256", str, where)):
            check.fail(f"key '{where}sha256' is not a sha256 hex digest")


def _is_date(value: Any) -> bool:
    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


# ---- signatures -------------------------------------------------------------------------


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """What a manifest's signature covers: canonical JSON of every key but the signature."""
    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public_key: str) -> str:
    """A short name for a public key (base64 of its 32 bytes), for messages."""
    return hashlib.sha256(public_key.encode()).hexdigest()[:16]


def check_signature(manifest: dict[str, Any], public_key: str) -> None:
    """Raise SignatureError unless ``manifest`` (shape already checked) is signed by the
    key whose public half is ``public_key`` (base64 of its 32 bytes)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    where = manifest["artifact"], manifest["version"]
    signature = manifest[SIGNATURE]
    if signature["algorithm"] != SIGNATURE_ALGORITHM:
        problem = f"the manifest is signed with {signature['algorithm']!r}, not ed25519"
        raise SignatureError(*where, problem)
    if signature["key_id"] != key_id(public_key):
        raise SignatureError(*where, f"the manifest is signed by key {signature['key_id']}, "
                             f"not by the trusted key {key_id(public_key)}")  # fmt: skip
    try:
        value = base64.b64decode(signature["value"], validate=True)
        trusted = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        trusted.verify(value, signed_bytes(manifest))
    except (InvalidSignature, binascii.Error, ValueError):
        problem = "the manifest's signature does not verify: it was changed after signing"
        raise SignatureError(*where, problem) from None


# ---- files ------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_in(folder: str | os.PathLike[str]) -> list[str]:
    """Every file below ``folder`` but the manifest, as sorted relative POSIX paths."""
    base = Path(folder)
    found = (p.relative_to(base).as_posix() for p in base.rglob("*") if not p.is_dir())
    return sorted(p for p in found if p != MANIFEST)


def fsync_tree(folder: str | os.PathLike[str]) -> None:
    """Flush every file and folder below ``folder`` to disk (before a rename publishes it)."""
    base = Path(folder)
    for path in [*sorted(base.rglob("*"), reverse=True), base]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush `folder` itself (its entries, e.g. after a rename) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a small file so that readers see the old or the new content, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


# ---- verification and pulling ---------------------------------------------------------


def verify(
    folder: str | os.PathLike[str],
    *,
    artifact: str | None = None,
    version: str | None = None,
    public_key: str,
) -> dict[str, Any]:
    """Check a version folder in place: no symbolic link, a manifest signed by the key
    ``public_key`` names, every file's size and sha256, nothing unlisted. Returns the
    manifest; raises ManifestError (SignatureError) or IntegrityError."""
    folder = Path(folder)
    where = artifact or str(folder), version
    raw = _read_manifest_bytes(folder, *where)
    manifest = _trusted_manifest(folder, raw, artifact, version, public_key)
    artifact, version = manifest["artifact"], manifest["version"]
    for entry in manifest["files"]:
        with _open_no_follow(folder, entry["path"], artifact, version) as reader:
            digest = hashlib.file_digest(reader, "sha256").hexdigest()
        if digest != entry["sha256"]:
            raise IntegrityError(artifact, version, f"checksum mismatch for {entry['path']}")
    return manifest


def _trusted_manifest(
    folder: Path, raw: bytes, artifact: str | None, version: str | None, public_key: str
) -> dict[str, Any]:
    """The manifest of a version once its shape, signature and listing hold."""
    _refuse_links(folder, artifact or str(folder), version)
    manifest = parse_manifest(raw, artifact=artifact, version=version, folder=folder)
    check_signature(manifest, public_key)
    _check_listing(folder, manifest, manifest["artifact"], manifest["version"])
    return manifest


def _refuse_links(folder: Path, artifact: str, version: str | None) -> None:
    """Refuse a version holding a symbolic link, or anything but folders and regular
    files, anywhere below it (the folder itself included): links are never followed."""
    if folder.is_symlink():
        raise IntegrityError(artifact, version, "the version folder is a symbolic link: refused")
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                where = Path(entry.path).relative_to(folder).as_posix()
                if entry.is_symlink():
                    problem = f"symbolic link {where} in the version: refused, never followed"
                    raise IntegrityError(artifact, version, problem)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif not entry.is_file(follow_symlinks=False):
                    raise IntegrityError(artifact, version, f"{where} is not a regular file")


def _open_no_follow(folder: Path, path: str, artifact: str, version: str | None):
    """Open ``path`` (relative, POSIX) below ``folder`` for reading without following a
    symbolic link at any step, so a link swapped in after `_refuse_links` is refused too.
    FileNotFoundError passes through for the caller to name."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # NONBLOCK: a FIFO cannot hang us
    *folders, name = PurePosixPath(path).parts
    fds: list[int] = []
    try:
        fds.append(os.open(folder, flags | os.O_DIRECTORY))
        for part in folders:
            fds.append(os.open(part, flags | os.O_DIRECTORY, dir_fd=fds[-1]))
        fd = os.open(name, flags, dir_fd=fds[-1])
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        problem = f"a symbolic link on the path of {path}: refused, never followed"
        raise IntegrityError(artifact, version, problem) from None
    finally:
        for opened in fds:
            os.close(opened)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IntegrityError(artifact, version, f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _check_listing(folder: Path, manifest: dict, artifact: str, version: str) -> None:
    """Cheap checks before reading any data: missing, unlisted and mis-sized files."""
    listed = {e["path"]: e for e in manifest["files"]}
    present = files_in(folder)
    unlisted = [p for p in present if p not in listed]
    if unlisted:
        raise IntegrityError(artifact, version, f"unlisted file {unlisted[0]}")
    for path, entry in listed.items():
        file = folder / path
        if not file.is_file():
            raise IntegrityError(artifact, version, f"missing file {path}")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise IntegrityError(
                artifact, version, f"{path} is {size} bytes, the manifest says {entry['bytes']}"
            )


def pull(
    root: str | os.PathLike[str],
    artifact: str,
    dest: str | os.PathLike[str],
    version: str | None = None,
    *,
    public_key: str,
) -> Pulled:
    """Copy a verified version (default: latest) to the folder ``dest``; its manifest
    must be signed by the key ``public_key`` (base64) names, and it must hold no link.

    Files are hashed as they are copied, so what lands is what was checked. The copy is
    built in a hidden folder beside ``dest`` and renamed to ``dest`` when complete; on
    any failure that folder is removed and ``dest`` is left as it was. A ``dest`` that
    already holds this verified version is kept as it is; anything else there is refused.
    """
    remove_stale_copy(root, artifact, dest, public_key=public_key)
    source = resolve(root, artifact, version)
    version = source.name
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        try:
            manifest = verify(dest, artifact=artifact, version=version, public_key=public_key)
        except ArtifactError:
            raise DestinationError(
                artifact, version, f"{dest} exists and is not a verified copy of this version"
            ) from None
        return Pulled(artifact, version, dest, manifest, copied=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Versions are never rewritten (a forget publishes a new one), so one read suffices.
    raw = _read_manifest_bytes(source, artifact, version)
    manifest = _copy_verified(source, raw, dest, artifact, version, public_key)
    return Pulled(artifact, version, dest, manifest, copied=True)


def remove_stale_copy(
    root: str | os.PathLike[str], artifact: str, dest: str | os.PathLike[str], *, public_key: str
) -> str | None:
    """Remove ``dest`` when it holds a copy of a version ``root`` no longer publishes, or
    one a forget request replaced (its data may hold a forgotten member); returns the
    version removed. Anything else at ``dest`` is left for `pull` to judge."""
    dest = Path(dest)
    if dest.is_symlink() or not (dest / MANIFEST).is_file():
        return None
    try:
        held = load_manifest(dest, artifact=artifact)["version"]
    except ManifestError:
        return None  # not a copy of this artifact: pull refuses it, untouched
    current = list_versions(root, artifact)
    successor = _replacement_of(root, artifact, held, current, public_key)
    if not current or (held in current and successor is None):
        return None
    why = f"replaced by version {successor} after a forget request" if successor else (
        "no longer published")  # fmt: skip
    retired = dest.parent / f".{dest.name}.stale-{uuid.uuid4().hex}"
    os.rename(dest, retired)  # gone from dest in one step, then deleted
    shutil.rmtree(retired)
    log.warning("pull %s: removed the copy of version %s at %s: %s", artifact, held, dest, why)
    return held


def _replacement_of(
    root, artifact: str, version: str, current: list[str], public_key: str
) -> str | None:
    """The published version whose signed redactions say it replaces ``version``
    (directly or through earlier redactions), if any: an unsigned claim is ignored, so
    whoever can write the published folder cannot make a host drop its copy."""
    for candidate in reversed(current):
        try:
            manifest = load_manifest(artifact_dir(root, artifact) / candidate)
            check_signature(manifest, public_key)
        except ManifestError:
            continue
        if any(r.get("replaces_version") == version for r in manifest.get("redactions", [])):
            return candidate
    return None


def _read_manifest_bytes(folder: Path, artifact: str, version: str | None) -> bytes:
    try:
        with _open_no_follow(folder, MANIFEST, artifact, version) as handle:
            return handle.read()
    except FileNotFoundError:
        raise ManifestError(artifact, version, f"{MANIFEST} is missing") from None


def _copy_verified(
    source: Path, raw: bytes, dest: Path, artifact: str, version: str, public_key: str
) -> dict:
    manifest = _trusted_manifest(source, raw, artifact, version, public_key)
    tmp = dest.parent / f".{dest.name}.pull-{uuid.uuid4().hex}"
    try:
        for entry in manifest["files"]:
            target = tmp / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with _open_no_follow(source, entry["path"], artifact, version) as reader:
                    size, digest = _copy_hashing(reader, target)
            except FileNotFoundError:  # removed since the listing was checked
                raise IntegrityError(artifact, version, f"missing file {entry['path']}") from None
            if size != entry["bytes"] or digest != entry["sha256"]:
                raise IntegrityError(artifact, version, f"checksum mismatch for {entry['path']}")
        (tmp / MANIFEST).write_bytes(raw)
        fsync_tree(tmp)
        os.rename(tmp, dest)  # replaces an empty dest folder; fails rather than merge
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(dest.parent)
    return manifest


def _copy_hashing(reader, target: Path) -> tuple[int, str]:
    """Copy an open file, returning its size and sha256 as read (one pass over the bytes)."""
    digest, size = hashlib.sha256(), 0
    with open(target, "wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    return size, digest.hexdigest()


# ---- reading ----------------------------------------------------------------------------


def read_table(
    folder: str | os.PathLike[str], table: str | None = None, *, columns: list[str] | None = None
) -> pd.DataFrame:
    """One table of a (pulled) version folder as a pandas DataFrame; ``table`` may be
    omitted when the artifact has only one. Reads exactly the files the manifest lists."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = load_manifest(folder)
    tables = manifest["tables"]
    if table is None:
        if len(tables) != 1:
            raise ValueError(f"{folder}: choose a table among {', '.join(sorted(tables))}")
        (table,) = tables
    if table not in tables:
        raise KeyError(f"{folder}: no table {table!r} (tables: {', '.join(sorted(tables))})")
    files = [e["path"] for e in manifest["files"] if e["path"].split("/")[0] == table]
    if not files:
        names = columns or [c["name"] for c in tables[table]["schema"]]
        return pd.DataFrame({name: [] for name in names})
    parts = [pq.read_table(folder / f, columns=columns) for f in files]
    return pa.concat_tables(parts).to_pandas()

"""The serving-side pull client on hand-made versions: no Spark, no MLflow.

Each refusal test damages one thing in a published version the way disks, copies and
crashes do (or an attacker would: a forged file and manifest, a foreign signature, a
symbolic link), and checks the specific error, its artifact and version, and that nothing
is left at (or beside) the destination.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TEST_KEY
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from feature_store import serving, signing
from feature_store.serving import (
    DestinationError,
    IntegrityError,
    ManifestError,
    SignatureError,
    UnknownArtifactError,
    UnknownVersionError,
)
from jobs import pull_artifact

ART = "churn_scores"
V1 = "20260310-20260311T080000.000Z"
V2 = "20260311-20260312T080000.000Z"
PART0, PART1 = f"{ART}/part-00000.parquet", f"{ART}/part-00001.parquet"
PUBLISHER = Ed25519PrivateKey.generate()  # the publisher's signing key
PUBLIC_KEY = signing.public_key_text(PUBLISHER)  # what serving hosts trust


def scores(as_of: str, n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [f"acct-{i}" for i in range(n)],
            "churn_probability": [round(i / 10, 2) for i in range(n)],
            "risk_band": ["low", "medium", "high"] * (n // 3),
            "as_of_date": [pd.Timestamp(as_of).date()] * n,
        }
    )


def publish_by_hand(root: Path, version: str, frame: pd.DataFrame, *, latest=True) -> Path:
    """A version as the publisher lays it out: two Parquet files and a manifest."""
    folder = root / ART / version
    (folder / ART).mkdir(parents=True)
    half = len(frame) // 2
    for i, part in enumerate((frame.iloc[:half], frame.iloc[half:])):
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, folder / ART / f"part-{i:05d}.parquet")
    manifest = {
        "manifest_version": 1,
        "artifact": ART,
        "version": version,
        "created_at": version.split("-")[1][:8] + "T08:00:00.000Z",
        "as_of_date": str(frame["as_of_date"].iloc[0]),
        "format": "parquet",
        "model": {"name": "churn", "version": "3", "run_id": "abc123"},
        "feature_table_versions": {"account_daily": 5},
        "tables": {
            ART: {
                "path": ART,
                "rows": len(frame),
                "keys": ["account_id"],
                "schema": [
                    {"name": "account_id", "type": "string", "nullable": True},
                    {"name": "churn_probability", "type": "double", "nullable": True},
                    {"name": "risk_band", "type": "string", "nullable": True},
                    {"name": "as_of_date", "type": "date", "nullable": True},
                ],
                "source": {"path": "/lake/predictions/churn_scores", "delta_version": 7},
            }
        },
        "rows": len(frame),
        "files": [
            {
                "path": p,
                "bytes": (folder / p).stat().st_size,
                "sha256": serving.sha256_file(folder / p),
            }
            for p in (PART0, PART1)
        ],
        "redactions": [],
    }
    manifest = signing.sign(manifest, PUBLISHER)
    (folder / serving.MANIFEST).write_text(json.dumps(manifest, indent=2))
    if latest:
        (root / ART / serving.LATEST).write_text(version + "\n")
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    published = tmp_path / "published"
    publish_by_hand(published, V1, scores("2026-03-10"))
    publish_by_hand(published, V2, scores("2026-03-11", n=9))
    return published


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "serving" / "churn"


def test_pull_copies_the_latest_verified_version_and_read_table_returns_its_rows(root, dest):
    assert serving.list_artifacts(root) == [ART]
    assert serving.list_versions(root, ART) == [V1, V2]
    assert serving.resolve(root, ART).name == V2

    pulled = serving.pull(root, ART, dest, public_key=PUBLIC_KEY)

    assert (pulled.version, pulled.path, pulled.copied) == (V2, dest, True)
    assert pulled.manifest["rows"] == 9
    for name in (PART0, PART1, serving.MANIFEST):
        assert (dest / name).read_bytes() == (root / ART / V2 / name).read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["churn"]  # no temp folder left
    pd.testing.assert_frame_equal(serving.read_table(dest), scores("2026-03-11", n=9))
    assert list(serving.read_table(dest, columns=["risk_band"]).columns) == ["risk_band"]


def test_pull_of_a_named_version_is_idempotent_and_never_overwrites_another(root, dest):
    first = serving.pull(root, ART, dest, version=V1, public_key=PUBLIC_KEY)
    again = serving.pull(root, ART, dest, version=V1, public_key=PUBLIC_KEY)
    assert (first.copied, again.copied) == (True, False)
    pd.testing.assert_frame_equal(serving.read_table(dest), scores("2026-03-10"))

    with pytest.raises(DestinationError, match=f"{ART} version {V2}: .* not a verified copy"):
        serving.pull(root, ART, dest, version=V2, public_key=PUBLIC_KEY)
    assert json.loads((dest / serving.MANIFEST).read_text())["version"] == V1


def _flip_a_byte(folder: Path) -> None:
    data = bytearray((folder / PART0).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / PART0).write_bytes(bytes(data))


def _truncate_file(folder: Path) -> None:
    with open(folder / PART1, "r+b") as handle:
        handle.truncate(40)


def _truncate_manifest(folder: Path) -> None:
    text = (folder / serving.MANIFEST).read_bytes()
    (folder / serving.MANIFEST).write_bytes(text[: len(text) // 2])


def _edit_manifest(change):
    def damage(folder: Path) -> None:
        manifest = json.loads((folder / serving.MANIFEST).read_text())
        change(manifest)
        (folder / serving.MANIFEST).write_text(json.dumps(manifest))

    return damage


def _other_versions_manifest(folder: Path) -> None:
    other = folder.parent / V1 / serving.MANIFEST
    (folder / serving.MANIFEST).write_bytes(other.read_bytes())


def _forge(resign=None, *, drop_signature=False, claim_trusted_key=False):
    """Edit a data file and its manifest entry (size and sha256 recomputed), as someone
    with write access to the published folder but not the publisher's key would; then
    keep the old signature, drop it, or sign with another key."""

    def damage(folder: Path) -> None:
        forged = scores("2026-03-11", n=9).iloc[:4].assign(churn_probability=0.0)
        pq.write_table(pa.Table.from_pandas(forged, preserve_index=False), folder / PART0)
        manifest = json.loads((folder / serving.MANIFEST).read_text())
        manifest["files"][0].update(
            bytes=(folder / PART0).stat().st_size, sha256=serving.sha256_file(folder / PART0)
        )
        if drop_signature:
            del manifest[serving.SIGNATURE]
        if resign is not None:
            manifest = signing.sign(manifest, resign)
        if claim_trusted_key:
            manifest[serving.SIGNATURE]["key_id"] = serving.key_id(PUBLIC_KEY)
        (folder / serving.MANIFEST).write_text(json.dumps(manifest))

    return damage


def _outside(folder: Path, name: str) -> Path:
    """A place outside the published root for what a link points to."""
    return folder.parent.parent.parent / f"elsewhere-{name}"


def _link_a_file(folder: Path) -> None:
    """The file replaced by a link to an identical copy: size and sha256 still match."""
    copy = _outside(folder, "part")
    copy.write_bytes((folder / PART0).read_bytes())
    (folder / PART0).unlink()
    (folder / PART0).symlink_to(copy)


def _link_the_table_folder(folder: Path) -> None:
    moved = _outside(folder, "table")
    (folder / ART).rename(moved)
    (folder / ART).symlink_to(moved, target_is_directory=True)


def _link_the_manifest(folder: Path) -> None:
    copy = _outside(folder, "manifest")
    copy.write_bytes((folder / serving.MANIFEST).read_bytes())
    (folder / serving.MANIFEST).unlink()
    (folder / serving.MANIFEST).symlink_to(copy)


def _link_the_version(folder: Path) -> None:
    moved = _outside(folder, "version")
    folder.rename(moved)
    folder.symlink_to(moved, target_is_directory=True)


ATTACKS = {
    "file and manifest entry edited": (
        _forge(),
        SignatureError,
        "the manifest's signature does not verify: it was changed after signing",
    ),
    "re-signed with another key": (
        _forge(Ed25519PrivateKey.generate()),
        SignatureError,
        rf"the manifest is signed by key [0-9a-f]{{16}}, not by the trusted key "
        rf"{serving.key_id(PUBLIC_KEY)}",
    ),
    "re-signed with another key claiming the trusted one": (
        _forge(Ed25519PrivateKey.generate(), claim_trusted_key=True),
        SignatureError,
        "the manifest's signature does not verify",
    ),
    "signature removed": (
        _forge(drop_signature=True),
        SignatureError,
        "the manifest is not signed; refusing it",
    ),
    "file replaced by a link to a copy": (
        _link_a_file,
        IntegrityError,
        f"symbolic link {PART0} in the version: refused, never followed",
    ),
    "table folder replaced by a link": (
        _link_the_table_folder,
        IntegrityError,
        f"symbolic link {ART} in the version: refused, never followed",
    ),
    "manifest replaced by a link": (
        _link_the_manifest,
        IntegrityError,
        "a symbolic link on the path of manifest.json: refused, never followed",
    ),
    "version folder replaced by a link": (
        _link_the_version,
        IntegrityError,
        "a symbolic link on the path of manifest.json: refused, never followed",
    ),
}


DAMAGE = {
    "flipped byte": (_flip_a_byte, IntegrityError, f"checksum mismatch for {PART0}"),
    "truncated file": (_truncate_file, IntegrityError, f"{PART1} is 40 bytes, the manifest says"),
    "missing file": (
        lambda f: (f / PART1).unlink(),
        IntegrityError,
        f"missing file {PART1}",
    ),
    "extra file": (
        lambda f: (f / ART / "part-00002.parquet").write_bytes(b"PAR1"),
        IntegrityError,
        f"unlisted file {ART}/part-00002.parquet",
    ),
    "stray hidden file": (
        lambda f: (f / ART / ".part-00000.parquet.crc").write_bytes(b"crc"),
        IntegrityError,
        "unlisted file",
    ),
    "truncated manifest": (_truncate_manifest, ManifestError, "truncated or not valid JSON"),
    "missing manifest": (
        lambda f: (f / serving.MANIFEST).unlink(),
        ManifestError,
        "manifest.json is missing",
    ),
    "manifest without files": (
        _edit_manifest(lambda m: m.pop("files")),
        ManifestError,
        "missing key 'files'",
    ),
    "row count of the wrong type": (
        _edit_manifest(lambda m: m["tables"][ART].update(rows="nine")),
        ManifestError,
        f"key 'tables.{ART}.rows' has the wrong type",
    ),
    "rows disagree with the tables": (
        _edit_manifest(lambda m: m.update(rows=10)),
        ManifestError,
        "'rows' is 10 but the tables hold 9",
    ),
    "checksum not hex": (
        _edit_manifest(lambda m: m["files"][0].update(sha256="abc")),
        ManifestError,
        r"key 'files\[0\].sha256' is not a sha256",
    ),
    "file outside the folder": (
        _edit_manifest(lambda m: m["files"][0].update(path="../../secrets/key")),
        ManifestError,
        "must be <table>/<file>",
    ),
    "another version's manifest": (
        _other_versions_manifest,
        ManifestError,
        f"it describes version '{V1}'",
    ),
}


@pytest.mark.parametrize("damage", [*DAMAGE, *ATTACKS])
def test_pull_refuses_a_damaged_version_and_leaves_nothing_behind(root, dest, damage):
    spoil, error, message = {**DAMAGE, **ATTACKS}[damage]
    spoil(root / ART / V2)

    with pytest.raises(error, match=message) as refused:
        serving.pull(root, ART, dest, public_key=PUBLIC_KEY)

    assert (refused.value.artifact, refused.value.version) == (ART, V2)
    assert str(refused.value).startswith(f"{ART} version {V2}: ")
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary copy beside it either
    with pytest.raises(error, match=message):
        serving.verify(root / ART / V2, artifact=ART, version=V2, public_key=PUBLIC_KEY)
    # The undamaged version still pulls.
    assert serving.pull(root, ART, dest, version=V1, public_key=PUBLIC_KEY).manifest["rows"] == 6


def test_pull_refuses_unknown_artifacts_versions_and_dangling_pointers(root, dest, tmp_path):
    with pytest.raises(UnknownVersionError, match=f"{ART} version 2099.*: unknown version"):
        serving.pull(
            root, ART, dest, version="20990101-20990101T000000.000Z", public_key=PUBLIC_KEY
        )
    with pytest.raises(UnknownVersionError, match="not a valid version name"):
        serving.pull(root, ART, dest, version="../churn_scores", public_key=PUBLIC_KEY)
    with pytest.raises(UnknownArtifactError, match="recommendations: nothing published"):
        serving.pull(root, "recommendations", dest, public_key=PUBLIC_KEY)

    (root / ART / serving.LATEST).write_text("20990101-20990101T000000.000Z\n")
    with pytest.raises(UnknownVersionError, match="unknown version"):
        serving.pull(root, ART, dest, public_key=PUBLIC_KEY)
    (root / ART / serving.LATEST).unlink()
    with pytest.raises(UnknownVersionError, match="no latest pointer"):
        serving.pull(root, ART, dest, public_key=PUBLIC_KEY)
    assert not dest.exists()


def cli(root: Path, tmp_path: Path, *args: str, trusted: str | None = PUBLIC_KEY) -> list[str]:
    trust = ["--set", f"publish.trusted_public_key={trusted}"] if trusted else []
    return [
        *args,
        "--from",
        str(root),
        "--set",
        f"paths.state_dir={tmp_path}/state",
        "--set",
        f"paths.published={root}",
        *trust,
        "-q",
    ]


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("MARQUEE_PSEUDONYMIZATION_KEY", TEST_KEY)


def test_pull_command_exit_codes_and_messages(root, dest, tmp_path, capsys, key_env):
    assert pull_artifact.main(cli(root, tmp_path, ART, "--list")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"  {V1}") and "6 rows" in out[0]
    assert out[1].startswith(f"* {V2}") and "9 rows" in out[1]

    assert pull_artifact.main(cli(root, tmp_path, ART, "--version", V1, "--to", str(dest))) == 0
    assert f"{ART} {V1}: 6 rows, 2 files copied and verified" in capsys.readouterr().out

    _flip_a_byte(root / ART / V2)
    other = tmp_path / "serving" / "other"
    assert pull_artifact.main(cli(root, tmp_path, ART, "--latest", "--to", str(other))) == 1
    assert f"error: {ART} version {V2}: checksum mismatch" in capsys.readouterr().err
    assert not other.exists()

    assert pull_artifact.main(cli(root, tmp_path, "recommendations", "--to", str(other))) == 1
    assert "recommendations: nothing published" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        pull_artifact.main(cli(root, tmp_path, ART))
    assert usage.value.code == 2


def test_pull_command_refuses_forgeries_links_and_a_missing_trust_anchor_in_one_line(
    root, tmp_path, capsys, key_env
):
    _forge()(root / ART / V2)
    _link_a_file(root / ART / V1)
    for version, problem in (
        (V2, "the manifest's signature does not verify: it was changed after signing"),
        (V1, f"symbolic link {PART0} in the version: refused, never followed"),
    ):
        to = tmp_path / "serving" / version
        assert (
            pull_artifact.main(cli(root, tmp_path, ART, "--version", version, "--to", str(to))) == 1
        )
        assert capsys.readouterr().err == f"error: {ART} version {version}: {problem}\n"
        assert not to.exists()

    # No key to trust (none configured, no local publisher's key): refused before reading.
    untrusted = cli(root, tmp_path, ART, "--to", str(tmp_path / "serving" / "x"), trusted=None)
    assert pull_artifact.main(untrusted) == 2
    err = capsys.readouterr().err
    assert err.startswith("configuration error: no public key to verify published manifests")
    assert err.count("\n") == 1


def test_the_client_imports_without_spark_or_mlflow():
    code = (
        "import sys, feature_store.serving\n"
        "bad = [m for m in ('pyspark', 'mlflow', 'delta') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)

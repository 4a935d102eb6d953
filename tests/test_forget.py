"""Forgetting a member is exact and permanent: parsed ids (never substrings), every table,
the quarantine in every spelling, landing files, published versions under a new name
that `pull` notices, a suppression list, and no id left in any file or log."""

import datetime as dt
import gzip
import json
import logging
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from conftest import TEST_KEY, make_config, write_landing
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store import serving, signing
from feature_store.forget import forget_account, forget_in_landing, ids_in_line
from feature_store.ingest import ingest_date
from feature_store.privacy import pseudonymize_value, suppression_token_value
from feature_store.publish import UNREGISTERED, publish_artifact

DAY = dt.date(2026, 4, 2)
MEMBER, OTHER, LONER = "acc000000001", "acc000000002", "acc000000003"  # LONER: no profiles


def pseudonym(raw: str) -> str:
    return pseudonymize_value(raw, TEST_KEY)


def escaped(text: str, first_only: bool = False) -> str:
    """``\\u0061cc...`` (first character) or every character JSON-escaped."""
    chars = text[:1] if first_only else text
    return "".join(f"\\u{ord(c):04x}" for c in chars) + (text[1:] if first_only else "")


# ---- ids as lines spell them (pure) ---------------------------------------------------------


def test_ids_are_parsed_json_values_never_substrings():
    line = '{"event_id": "e1", "account_id": "acc000000002", "profile_id": "acc000000002-p0"}'
    assert ids_in_line(line) == ["acc000000002", "acc000000002-p0"]
    assert "acc" not in ids_in_line(line)  # `forget --account acc` named every member
    assert ids_in_line('{"title_id": "acc000000001", "query": "acc000000001"}') == []


def test_ids_decode_escapes_repeated_keys_nesting_and_broken_lines():
    spelled = '{"account_id": "' + escaped(MEMBER, first_only=True) + '"}'
    assert ids_in_line(spelled) == [MEMBER]
    assert ids_in_line('{"\\u0061ccount_id": "' + escaped(MEMBER) + '"}') == [MEMBER]
    repeated = f'{{"account_id": "{MEMBER}", "account_id": "{OTHER}"}}'
    assert ids_in_line(repeated) == [MEMBER, OTHER]
    assert ids_in_line(f'{{"account_id": {{"id": " {MEMBER} "}}}}') == [MEMBER]
    truncated = '{"event_id": "e9", "profile_id": "' + escaped(MEMBER, True) + '-p1", "dev'
    assert ids_in_line(truncated.encode()) == [MEMBER, f"{MEMBER}-p1"]
    assert ids_in_line(f'{{"event_id": "e9", "account_id": "{MEMBER}') == [MEMBER]
    assert ids_in_line(b"\xff\xfe not json") == []


def test_landing_files_are_rewritten_without_the_member_and_keep_their_compression(tmp_path):
    landing = tmp_path / "lake" / "landing"
    day = landing / "viewing" / f"date={DAY}"
    day.mkdir(parents=True)
    mine = f'{{"account_id": "{escaped(MEMBER, True)}", "n": 1}}\n'.encode()
    theirs = b'{"account_id": "acc000000002", "n": 2}\r\n'
    broken = f'{{"profile_id": "{MEMBER}-p3", "n'.encode()
    (day / "a.txt").write_bytes(theirs + mine + broken)
    (day / "b.txt.gz").write_bytes(gzip.compress(mine + theirs))
    (day / "c.txt").write_bytes(theirs)  # untouched: not rewritten at all
    (day / "d.txt.zst").write_bytes(b"\x28\xb5\x2f\xfd")  # cannot be read here
    untouched = (day / "c.txt").stat().st_mtime_ns

    def is_member(line: bytes) -> bool:
        return MEMBER in ids_in_line(line)

    files, lines = forget_in_landing(landing, tmp_path / "lake" / "_forget_staging", is_member)

    assert (files, lines) == (2, 3)
    assert (day / "a.txt").read_bytes() == theirs
    assert gzip.decompress((day / "b.txt.gz").read_bytes()) == theirs
    assert (day / "c.txt").stat().st_mtime_ns == untouched
    assert sorted(p.name for p in day.iterdir()) == ["a.txt", "b.txt.gz", "c.txt", "d.txt.zst"]
    assert not (tmp_path / "lake" / "_forget_staging").exists()


# ---- a small lake -------------------------------------------------------------------------


def account_line(n: int, raw: str) -> dict:
    return {"event_id": f"a{n}", "event_ts": f"{DAY}T08:00:00Z", "account_id": raw,
            "country": "GB", "region": "gb", "plan": "basic", "signup_date": "2026-01-01",
            "household_size": 2, "email": f"{raw}@example.com", "full_name": "N N"}  # fmt: skip


def profile_line(n: int, raw: str) -> dict:
    return {"event_id": f"p{n}", "event_ts": f"{DAY}T08:00:00Z", "account_id": raw,
            "profile_id": f"{raw}-p0", "profile_name": "P", "is_kids": False,
            "language": "en", "created_date": "2026-01-01"}  # fmt: skip


def view_line(n: int, raw: str, seconds: int) -> dict:
    return {"event_id": f"v{n}", "event_ts": f"{DAY}T20:00:00Z", "account_id": raw,
            "profile_id": f"{raw}-p0", "session_id": f"s{n}", "title_id": "t1",
            "event_type": "stop", "watch_seconds": seconds, "position_seconds": seconds,
            "device": "tv", "region": "gb", "local_hour": 20}  # fmt: skip


def subscription_line(n: int, raw: str) -> dict:
    return {"event_id": f"s{n}", "event_ts": f"{DAY}T09:00:00Z", "account_id": raw,
            "event_type": "signup", "plan": "basic"}  # fmt: skip


def write_day(lake_root: str) -> None:
    write_landing(lake_root, "accounts", DAY, [account_line(i, r) for i, r in
                                               enumerate((MEMBER, OTHER, LONER))])  # fmt: skip
    # Profiles arrive compressed (the rewrite keeps them gzip).
    profiles = [json.dumps(profile_line(1, MEMBER)), json.dumps(profile_line(2, OTHER))]
    folder = Path(lake_root) / "landing" / "profiles" / f"date={DAY}"
    folder.mkdir(parents=True)
    (folder / "part-0.txt.gz").write_bytes(gzip.compress("\n".join(profiles).encode() + b"\n"))
    views = [view_line(1, MEMBER, 100), view_line(2, OTHER, 200), view_line(3, MEMBER, 300)]
    write_landing(lake_root, "viewing", DAY, views[:2])
    # A second file: the member's line in a quarantined (broken) escaped spelling, and
    # another member's broken line, which must stay.
    spelled = ('{"event_id": "v9", "account_id": "' + escaped(MEMBER, True) + '", "profile_id": "'
               + escaped(MEMBER) + '-p0", "watch_seconds": ')  # fmt: skip
    other = '{"event_id": "v8", "account_id": "acc000000002", "x'
    write_landing(lake_root, "viewing", DAY, [views[2], spelled, other], name="part-1.txt")
    write_landing(lake_root, "subscriptions", DAY, [subscription_line(i, r) for i, r in
                                                    enumerate((MEMBER, OTHER, LONER))])  # fmt: skip


def write_outputs(spark, config) -> None:
    """Batch recommendations, churn scores and two feature tables, as the jobs write them."""
    lake = lk.Lake(config.lake)
    m, o, n = pseudonym(MEMBER), pseudonym(OTHER), pseudonym(LONER)
    mp, op = pseudonym(f"{MEMBER}-p0"), pseudonym(f"{OTHER}-p0")
    tables = {
        lake.recs("top_titles"): ("profile_id string, title_id string, score double, rank int, "
                                  "model_version string", [(mp, "t1", 0.9, 1, UNREGISTERED),
                                                           (op, "t2", 0.8, 1, UNREGISTERED)]),
        lake.predictions("churn_scores"): ("account_id string, churn_probability double, "
                                           "model_version string",
                                           [(m, 0.4, UNREGISTERED), (o, 0.1, UNREGISTERED),
                                            (n, 0.2, UNREGISTERED)]),
        lake.features("profile_daily"): ("profile_id string, account_id string, views int",
                                         [(mp, m, 2), (op, o, 1)]),
        lake.features("account_daily"): ("account_id string, region string",
                                         [(m, "gb"), (o, "gb"), (n, "de")]),
    }  # fmt: skip
    for path, (schema, rows) in tables.items():
        frame = spark.createDataFrame(rows, schema).withColumn("as_of_date", F.lit(DAY))
        lk.replace_slice(frame, path, slice_values={"as_of_date": DAY},
                         partition_by=["as_of_date"])  # fmt: skip


def spellings(raw: str) -> set[bytes]:
    """The raw id, its pseudonym and its JSON-escaped spellings, as bytes to look for."""
    upper_hex = "".join(f"\\u{ord(c):04X}" for c in raw)
    texts = {raw, pseudonym(raw), escaped(raw, True), escaped(raw), upper_hex}
    return {t.encode() for t in texts} | {t.encode("utf-16-le") for t in texts}


def traces_in_file(path: Path, needles: set[bytes]) -> list[str]:
    """Needles found in the file's bytes, its decompressed bytes, or its decoded Parquet."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data += gzip.decompress(data)
    found = [n.decode("latin-1") for n in needles if n in data]
    if path.suffix == ".parquet" or data[:4] == b"PAR1":
        table = pq.read_table(path)
        text = json.dumps(table.to_pylist(), default=repr).encode()
        found += [n.decode("latin-1") for n in needles if n in text]
    return found


def forget_config(state: Path):
    return make_config(state, "privacy.vacuum_retention_hours=0")


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory) -> dict[str, Path]:
    """The landing day ingested and the jobs' outputs written once, then copied: a state
    folder for each test that forgets in it. The test that ingests again gets the
    original, whose bronze names its own landing files."""
    state = tmp_path_factory.mktemp("forget")
    config = forget_config(state)
    write_day(config.lake)
    assert ingest_date(spark, config, DAY).committed
    write_outputs(spark, config)
    copy = tmp_path_factory.mktemp("forget-copy")
    shutil.copytree(state, copy, dirs_exist_ok=True)
    return {"reingest": state, "once": copy}


def test_forget_then_reingest_leaves_no_trace_of_the_member_anywhere(
    spark, ingested, tmp_path, caplog
):
    config = forget_config(ingested["reingest"])
    lake = lk.Lake(config.lake)
    before = {s: lk.read_table(spark, lake.bronze(s)).filter(F.col("account_id") !=
                                                               pseudonym(MEMBER)).localCheckpoint()
              for s in ("accounts", "profiles", "viewing", "subscriptions")}  # fmt: skip
    published = Path(config.paths.published)
    old = {a: publish_artifact(spark, config, a) for a in ("recommendations", "churn_scores")}
    old["online_features"] = publish_artifact(
        spark, config, "online_features", tables=["profile_daily", "account_daily"]
    )
    pulled = tmp_path / "serving" / "recommendations"
    trusted = signing.trusted_public_key(config)
    serving.pull(published, "recommendations", pulled, public_key=trusted)
    caplog.set_level(logging.DEBUG)

    report = forget_account(spark, config, MEMBER)

    assert report.profiles == 1
    token = suppression_token_value(pseudonym(MEMBER))
    assert report.suppression_token == token
    suppressed = lk.read_table(spark, lake.forgotten_members)
    assert [(r.token, r.request_id) for r in suppressed.collect()] == [(token, report.request_id)]
    # Each published version was replaced by a redacted one under a new name.
    for artifact, before_forget in old.items():
        versions = serving.list_versions(published, artifact)
        assert versions == [f"{before_forget.version}.r1"], artifact
        assert serving.latest_version(published, artifact) == versions[0]
        manifest = serving.verify(published / artifact / versions[0], public_key=trusted)
        assert [r["replaces_version"] for r in manifest["redactions"]] == [before_forget.version]
    # The copy pulled before the forget is stale: pull replaces it, and says so.
    again = serving.pull(published, "recommendations", pulled, public_key=trusted)
    assert (again.version, again.copied) == (f"{old['recommendations'].version}.r1", True)
    assert "removed the copy of version" in caplog.text
    assert serving.read_table(pulled)["profile_id"].tolist() == [pseudonym(f"{OTHER}-p0")]

    # The same landing day again, then a late file with the member's lines: nothing returns.
    assert ingest_date(spark, config, DAY).committed
    write_landing(config.lake, "viewing", DAY, [view_line(7, MEMBER, 50)], name="late.txt")
    assert ingest_date(spark, config, DAY, ["viewing"]).committed
    for source, rows in before.items():
        assert_df_equality(lk.read_table(spark, lake.bronze(source)), rows,
                           ignore_row_order=True, ignore_nullable=True)  # fmt: skip
    quarantine = lk.read_table(spark, lake.quarantine)
    raws = [
        r.raw if isinstance(r.raw, str) else bytes(r.raw).decode() for r in quarantine.collect()
    ]
    assert raws == ['{"event_id": "v8", "account_id": "acc000000002", "x']
    # The late file still holds the member (it came after the request); a second forget,
    # safe to repeat, removes it.
    forget_account(spark, config, MEMBER)

    needles = spellings(MEMBER) | spellings(f"{MEMBER}-p0")
    state = Path(config.paths.state_dir)
    found = {
        str(p.relative_to(state)): hits
        for p in sorted(state.rglob("*"))
        if p.is_file() and (hits := traces_in_file(p, needles))
    }
    assert found == {}
    assert not [r.getMessage() for r in caplog.records if any(
        n.decode("latin-1") in r.getMessage() for n in needles)]  # fmt: skip
    audit = lk.read_table(spark, lake.forget_requests).orderBy("requested_at").collect()
    assert [(r.request_id == report.request_id, r.suppression_token) for r in audit] == [
        (True, token),
        (False, token),
    ]

    # Everyone else is untouched, exactly.
    churn = serving.read_table(serving.resolve(published, "churn_scores"))
    assert sorted(zip(churn["account_id"], churn["churn_probability"], strict=True)) == sorted(
        [(pseudonym(OTHER), 0.1), (pseudonym(LONER), 0.2)]
    )


def test_forget_of_an_account_without_profiles_completes_and_can_run_again(spark, ingested):
    config = forget_config(ingested["once"])
    lake = lk.Lake(config.lake)

    first = forget_account(spark, config, LONER)
    second = forget_account(spark, config, LONER)

    assert first.profiles == second.profiles == 0
    assert first.deleted[lake.bronze("accounts")] == 1
    assert first.deleted[lake.bronze("subscriptions")] == 1
    assert first.deleted[lake.predictions("churn_scores")] == 1
    assert first.deleted[lake.features("account_daily")] == 1
    assert second.deleted[lake.bronze("accounts")] == 0
    kept = lk.read_table(spark, lake.bronze("accounts")).select("account_id")
    assert sorted(r[0] for r in kept.collect()) == sorted([pseudonym(MEMBER), pseudonym(OTHER)])
    assert lk.read_table(spark, lake.forget_requests).count() == 2
    assert lk.read_table(spark, lake.forgotten_members).count() == 1

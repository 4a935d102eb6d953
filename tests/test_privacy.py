import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from chispa import assert_df_equality
from conftest import SHORT_LIVED_JVM, TEST_KEY, extra_conf, state_overrides
from pyspark.sql import functions as F

from feature_store.privacy import PSEUDONYM_HEX_CHARS, pseudonymize, pseudonymize_value


def test_spark_pseudonym_is_hmac_sha256_of_the_id(spark):
    ids = ["acc000000001", "acc000000001-p3", "ü-ñ-unicode", "x" * 200, None]
    df = spark.createDataFrame([(i,) for i in ids], "id string")
    key = "a-key-longer-than-the-block-size-" * 3  # exercises the hashed-key branch
    result = df.select("id", pseudonymize(F.col("id"), key).alias("p"))
    expected = spark.createDataFrame(
        [
            (
                i,
                None
                if i is None
                else hmac.new(key.encode(), i.encode(), hashlib.sha256).hexdigest()[:32],
            )
            for i in ids
        ],
        "id string, p string",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_pseudonyms_are_stable_and_depend_on_the_key(spark):
    df = spark.createDataFrame([("acc000000042",)], "id string")
    first = df.select(pseudonymize(F.col("id"), "key-one-0123456789").alias("p")).first()["p"]
    again = df.select(pseudonymize(F.col("id"), "key-one-0123456789").alias("p")).first()["p"]
    other = df.select(pseudonymize(F.col("id"), "key-two-0123456789").alias("p")).first()["p"]
    assert first == again == pseudonymize_value("acc000000042", "key-one-0123456789")
    assert first != other
    assert len(first) == PSEUDONYM_HEX_CHARS and "acc" not in first


def secret_spellings(key: str) -> dict[str, str]:
    """Every way the key or its HMAC pads could be written in a plan or a log: hex (both
    cases), base64, the bytes as text and as escaped text. Pads whole, and the part of
    each pad made from the key (key XOR 0x36 / 0x5c) on its own."""
    raw = key.encode()
    block = raw.ljust(64, b"\0")
    secrets = {"key": raw}
    for name, byte in (("inner pad", 0x36), ("outer pad", 0x5C)):
        pad = bytes(b ^ byte for b in block)
        secrets[name], secrets[f"{name} (key part)"] = pad, pad[: len(raw)]
    spellings = {}
    for name, value in secrets.items():
        text = value.decode("latin-1")
        spellings |= {
            f"{name} as hex": value.hex(),
            f"{name} as HEX": value.hex().upper(),
            f"{name} as base64": base64.b64encode(value).decode(),
            f"{name} as text": text,
            f"{name} as escaped bytes": repr(value)[2:-1],
            f"{name} as JSON text": json.dumps(text)[1:-1],
        }
    return spellings


def leaks(text: str, key: str) -> list[str]:
    return [name for name, spelling in secret_spellings(key).items() if spelling in text]


def test_no_plan_holds_the_key_or_its_pads(spark, capsys):
    df = spark.createDataFrame([("acc000000001",), (None,)], "account_id string")
    pseudonyms = df.select(pseudonymize(F.col("account_id"), TEST_KEY).alias("p"))
    joined = pseudonyms.join(pseudonyms.withColumnRenamed("p", "q"), F.col("p") == F.col("q"))

    for frame in (pseudonyms, joined):
        for mode in ("extended", "formatted", "codegen", "cost"):
            frame.explain(mode)
    plans = capsys.readouterr().out

    assert leaks(plans, TEST_KEY) == []
    assert "pseudonym(" in plans  # the plans were printed, and name only the function
    assert pseudonyms.collect() == [(pseudonymize_value("acc000000001", TEST_KEY),), (None,)]


# Run in its own JVM: event logging is set when a Spark context starts, and the tests'
# shared session must not pay for it.
EVENT_LOG_JOB = """
import sys
from pyspark.sql import functions as F
from feature_store.config import load_config
from feature_store.privacy import pseudonymize
from feature_store.spark import build_session

state, key = sys.argv[1], sys.argv[2]
config = load_config(None, [*sys.argv[3:]], environ={"MARQUEE_PSEUDONYMIZATION_KEY": key})
spark = build_session(config)
ids = spark.createDataFrame([("acc000000001",), ("acc000000002",)], "account_id string")
pseudonyms = ids.select(pseudonymize(F.col("account_id"), key).alias("account_id"))
pseudonyms.write.parquet(state + "/pseudonyms")
pseudonyms.groupBy("account_id").count().collect()
try:  # an error message quotes the plan
    pseudonyms.select(pseudonymize(F.col("account_id"), key), "no_such_column").collect()
except Exception as exc:
    open(state + "/error.txt", "w").write(str(exc))
spark.stop()
"""


def test_the_event_log_holds_neither_the_key_nor_its_pads(tmp_path):
    events = tmp_path / "events"
    events.mkdir()
    event_log = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.as_uri(),
        "spark.eventLog.compress": "false",
    }
    overrides = state_overrides(tmp_path, SHORT_LIVED_JVM, extra_conf(event_log))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    job = subprocess.run(
        [sys.executable, "-c", EVENT_LOG_JOB, str(tmp_path), TEST_KEY, *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]

    text = "".join(f.read_text(errors="replace") for f in events.rglob("*") if f.is_file())
    assert leaks(text, TEST_KEY) == []
    assert "SparkListenerSQLExecutionStart" in text and "pseudonym(" in text
    error = (tmp_path / "error.txt").read_text()
    assert "no_such_column" in error and leaks(error, TEST_KEY) == []
    written = pq.read_table(tmp_path / "pseudonyms").column("account_id").to_pylist()
    assert sorted(written) == sorted(
        pseudonymize_value(f"acc00000000{i}", TEST_KEY) for i in (1, 2)
    )

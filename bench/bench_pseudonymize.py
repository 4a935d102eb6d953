"""Benchmark of pseudonymization: the Arrow UDF beside the `sha2` expression it replaced.

The expression (HMAC written with built-in `sha2`, the key's pads as literals) ran in the
JVM but put the pads into every Spark plan; the Arrow UDF keeps the key in its Python
closure. Both pseudonymize the same ids (``acc`` + a 9-digit number, as the generator's
ids) into the `noop` sink, best of ``--repeat`` runs each, and must agree on every id.

python bench/bench_pseudonymize.py [--ids 1000000] [--repeat 3]
Writes bench/results/pseudonymize-<ids>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from run_bench import machine, save_result

from feature_store import runtime
from feature_store.privacy import pseudonymize

KEY = "bench-pseudonymization-key-0123456789"


def leaky_expression(column: Column, key: str) -> Column:
    """The replaced expression, kept only as the baseline: its plan holds the key's pads."""
    raw = key.encode()
    raw = (hashlib.sha256(raw).digest() if len(raw) > 64 else raw).ljust(64, b"\0")
    inner_pad, outer_pad = bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), column.cast("binary")), 256))
    return F.substring(F.sha2(F.concat(F.lit(outer_pad), inner), 256), 1, 32)


def best_time(frame: DataFrame, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    config = runtime.load(args)
    spark = runtime.session(config, args)
    ids = (
        spark.range(args.ids)
        .select(F.format_string("acc%09d", F.col("id")).alias("account_id"))
        .cache()
    )
    ids.count()
    old = ids.select(leaky_expression(F.col("account_id"), KEY).alias("p"))
    new = ids.select(pseudonymize(F.col("account_id"), KEY).alias("p"))
    differ = old.exceptAll(new).count() + new.exceptAll(old).count()
    if differ:
        raise SystemExit(f"the two pseudonymizations disagree on {differ} ids")
    result = {
        "machine": machine(),
        "ids": args.ids,
        "sha2_expression_s": round(best_time(old, args.repeat), 3),
        "arrow_udf_s": round(best_time(new, args.repeat), 3),
    }
    result["ratio"] = round(result["arrow_udf_s"] / result["sha2_expression_s"], 2)
    print(result)
    save_result(result, f"pseudonymize-{args.ids}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

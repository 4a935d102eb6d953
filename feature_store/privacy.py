"""Keyed pseudonymization of member identifiers.

HMAC-SHA256 (RFC 2104), the first 32 hex characters. In Spark it is an Arrow UDF whose
Python closure holds the key: a Spark plan (`explain`, the UI, event logs, a plan quoted
in an error) names only the function `pseudonym`, never the key or its HMAC pads, which
the earlier built-in `sha2` expression carried as literals. The same key always maps an
id to the same pseudonym (joins still work); without the key the mapping cannot be
recomputed or reversed.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
from pyspark.sql import Column
from pyspark.sql import functions as F

PSEUDONYM_HEX_CHARS = 32  # 128 bits: collision-free in practice for billions of ids
_PSEUDONYM_BYTES = PSEUDONYM_HEX_CHARS // 2


def pseudonymize(column: Column, key: str) -> Column:
    """Return the keyed pseudonym (hex) of a string column; nulls stay null."""
    return _pseudonym_udf(key.encode())(column.cast("binary"))


def _pseudonym_udf(key: bytes):
    def pseudonym(ids: pa.Array) -> pa.Array:  # named: plans show `pseudonym(cast(...))`
        # One OpenSSL HMAC call per id; the first 16 bytes are the first 32 hex digits.
        digests = [
            None if raw is None else hmac.digest(key, raw, "sha256")[:_PSEUDONYM_BYTES].hex()
            for raw in ids.to_pylist()
        ]
        return pa.array(digests, type=pa.string())

    return F.arrow_udf(pseudonym, "string")


def pseudonymize_value(value: str, key: str) -> str:
    """The same pseudonym computed in Python, for look-ups (forget requests, tests)."""
    digest = hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX_CHARS]


# A forgotten member is suppressed by a hash of their pseudonym: the suppression list
# must not itself hold the pseudonym it exists to erase, yet ingestion can still match it.
_SUPPRESSION_SALT = "marquee-forgotten:"


def suppression_token(column: Column) -> Column:
    """The suppression-list token of a pseudonym column (SHA-256 hex, no key involved)."""
    return F.sha2(F.concat(F.lit(_SUPPRESSION_SALT), column), 256)


def suppression_token_value(pseudonym: str) -> str:
    """The same token computed in Python, for the forget request that writes it."""
    return hashlib.sha256((_SUPPRESSION_SALT + pseudonym).encode()).hexdigest()

"""Keyed pseudonymization of member identifiers.

HMAC-SHA256 (RFC 2104) written with Spark's built-in `sha2`, so it runs in the JVM
at full speed with no Python UDF: HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)).
The same key always maps an id to the same pseudonym (joins still work); without
the key the mapping cannot be recomputed or reversed.
"""

from __future__ import annotations

import hashlib
import hmac

from pyspark.sql import Column
from pyspark.sql import functions as F

PSEUDONYM_HEX_CHARS = 32  # 128 bits: collision-free in practice for billions of ids
_BLOCK = 64  # SHA-256 block size in bytes


def _padded_keys(key: str) -> tuple[bytes, bytes]:
    raw = key.encode()
    if len(raw) > _BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def pseudonymize(column: Column, key: str) -> Column:
    """Return the keyed pseudonym (hex) of a string column; nulls stay null."""
    inner_pad, outer_pad = _padded_keys(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), column.cast("binary")), 256))
    outer = F.sha2(F.concat(F.lit(outer_pad), inner), 256)
    return F.substring(outer, 1, PSEUDONYM_HEX_CHARS)


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

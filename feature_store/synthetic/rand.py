"""Counter-based random numbers as Spark column expressions.

Every draw is a hash of (seed, a salt naming the draw, the row's keys), so the data
set depends only on the seed and the sizes: not on partitioning, row order, the
number of cores or the cluster. `rand(seed)` would change with any of those.
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F

_MANTISSA = (1 << 53) - 1


def uniform(seed: int, salt: str, *keys: Column | str) -> Column:
    """Uniform in (0, 1), never exactly 0 or 1 (safe under log)."""
    bits = F.xxhash64(F.lit(seed), F.lit(salt), *keys).bitwiseAND(F.lit(_MANTISSA))
    return (bits.cast("double") + 0.5) / float(1 << 53)


def normal(seed: int, salt: str, *keys: Column | str) -> Column:
    """Standard normal (Box-Muller on two independent uniforms)."""
    u1 = uniform(seed, salt + ":n1", *keys)
    u2 = uniform(seed, salt + ":n2", *keys)
    return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * u2)


def gumbel(seed: int, salt: str, *keys: Column | str) -> Column:
    """Standard Gumbel: argmax(utility + gumbel) samples from the softmax of utilities."""
    return -F.log(-F.log(uniform(seed, salt, *keys)))


def below(n: int | Column, seed: int, salt: str, *keys: Column | str) -> Column:
    """Uniform integer in [0, n)."""
    n_col = n if isinstance(n, Column) else F.lit(n)
    return F.least(F.floor(uniform(seed, salt, *keys) * n_col), n_col - 1).cast("int")


def categorical(weights: list[float], seed: int, salt: str, *keys: Column | str) -> Column:
    """Index drawn with the given (unnormalized) weights."""
    total = float(sum(weights))
    u = uniform(seed, salt, *keys)
    result = F.lit(len(weights) - 1)
    cumulative = 0.0
    thresholds = []
    for weight in weights[:-1]:
        cumulative += weight / total
        thresholds.append(cumulative)
    for index in reversed(range(len(thresholds))):
        result = F.when(u < thresholds[index], F.lit(index)).otherwise(result)
    return result.cast("int")


def hex_id(seed: int, salt: str, *keys: Column | str) -> Column:
    """A 128-bit hexadecimal id (two independent 64-bit hashes)."""
    high = F.xxhash64(F.lit(seed), F.lit(salt + ":hi"), *keys)
    low = F.xxhash64(F.lit(seed), F.lit(salt + ":lo"), *keys)
    return F.lower(F.concat(F.lpad(F.hex(high), 16, "0"), F.lpad(F.hex(low), 16, "0")))


def sigmoid(x: Column) -> Column:
    """The logistic function of `x`."""
    return 1.0 / (1.0 + F.exp(-x))

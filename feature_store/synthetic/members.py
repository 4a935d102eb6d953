"""Accounts and profiles with their hidden truth, in Spark (one row per member).

Each account has an engagement trajectory (exp(drift * day)) and a payment risk;
its daily cancel hazard rises as engagement falls, just after payment failures and
on the basic plan. Each profile has genre tastes, latent factors, a segment (the
group of its favourite genre), a preferred device and a peak viewing hour.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.sources import DEVICES, GENRES, PLANS, REGIONS
from feature_store.synthetic import rand as R
from feature_store.synthetic.world import (
    GENRE_SEGMENT,
    LATENT_DIM,
    REGION_CODES,
    REGION_WEIGHTS,
    WorldParams,
)

HOUSEHOLD_SIZE_WEIGHTS = (0.6, 0.25, 0.1, 0.03, 0.02)  # 1-5 profiles, ~1.6 on average
MAX_PROFILES = len(HOUSEHOLD_SIZE_WEIGHTS)
_FIRST = (
    "Ana",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Goran",
    "Hana",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Priya",
)
_LAST = (
    "Silva",
    "Novak",
    "Okafor",
    "Tanaka",
    "Muller",
    "Garcia",
    "Kim",
    "Dubois",
    "Rossi",
    "Singh",
    "Haddad",
    "Larsen",
    "Moreau",
    "Costa",
    "Ivanova",
    "Lee",
)


def _pick(values: tuple[str, ...], index: Column) -> Column:
    return F.element_at(F.array(*[F.lit(v) for v in values]), index + 1)


def accounts(
    spark: SparkSession, *, seed: int, n_accounts: int, days: int, world: WorldParams
) -> DataFrame:
    """One row per account: attributes, PII (for the landing files only) and truth."""
    partitions = max(2, n_accounts // 100_000)
    a = F.col("account_idx")
    df = spark.range(n_accounts, numPartitions=partitions).withColumnRenamed("id", "account_idx")
    region_idx = R.categorical(list(REGION_WEIGHTS), seed, "region", a)
    household = R.categorical(list(HOUSEHOLD_SIZE_WEIGHTS), seed, "household", a) + 1
    # Bigger households buy bigger plans.
    plan_idx = R.categorical([0.35, 0.45, 0.2], seed, "plan", a) + F.when(
        household >= 3, 1
    ).otherwise(0)
    new_member = R.uniform(seed, "new", a) < 0.03
    signup_day = F.when(new_member, R.below(days, seed, "signup_new", a)).otherwise(
        -1 - R.below(2000, seed, "signup_old", a)
    )
    # A quarter of accounts are drifting away; a few are getting more engaged.
    drift = F.when(
        R.uniform(seed, "declining", a) < 0.25, -0.04 + 0.015 * R.normal(seed, "drift", a)
    ).otherwise(0.005 * R.normal(seed, "drift", a))
    payment_risk = F.when(R.uniform(seed, "risky", a) < 0.1, 0.03).otherwise(0.002)
    df = df.select(
        a,
        F.format_string("acc%09d", a).alias("account_id"),
        region_idx.alias("region_idx"),
        household.alias("household_size"),
        F.least(plan_idx, F.lit(2)).alias("plan_idx"),
        signup_day.alias("signup_day"),
        drift.alias("engagement_drift"),
        payment_risk.alias("payment_risk"),
    )
    df = df.withColumn("region", _pick(REGION_CODES, F.col("region_idx")))
    df = df.withColumn("country", _pick(tuple(c for c, _ in REGIONS.values()), F.col("region_idx")))
    df = df.withColumn("plan", _pick(PLANS, F.col("plan_idx")))
    # Payment failures: the first after a geometric wait, often a retry failing again.
    wait = F.log(R.uniform(seed, "fail1", a)) / F.log(1.0 - F.col("payment_risk"))
    first_fail = F.floor(wait).cast("int")
    retry_fail = F.when(R.uniform(seed, "retry", a) < 0.5, first_fail + 3)
    df = df.withColumn("first_payment_failure_day", F.greatest(first_fail, F.col("signup_day")))
    df = df.withColumn("second_payment_failure_day", retry_fail)
    df = df.withColumn("cancel_day", _cancel_day(seed=seed, days=days, world=world))
    first = _pick(_FIRST, R.below(len(_FIRST), seed, "first_name", a))
    last = _pick(_LAST, R.below(len(_LAST), seed, "last_name", a))
    return df.select(
        "*",
        F.concat_ws(" ", first, last).alias("full_name"),
        F.format_string("member%d@example.com", a).alias("email"),
        F.format_string("+1-555-%07d", F.pmod(F.xxhash64(F.lit(seed), a), F.lit(10_000_000))).alias(
            "phone"
        ),
    )


def engagement(day: Column) -> Column:
    """Relative engagement on `day` (1.0 on day 0) for the account row in scope."""
    return F.exp(F.col("engagement_drift") * day)


def hazard(day: Column, world: WorldParams) -> Column:
    """Daily probability that the account cancels on `day` (the hidden truth)."""
    since_fail = day - F.col("first_payment_failure_day")
    since_retry = day - F.col("second_payment_failure_day")
    payment = F.when(since_fail >= 0, F.exp(-since_fail / 10.0)).otherwise(0.0) + F.when(
        since_retry >= 0, F.exp(-since_retry / 10.0)
    ).otherwise(0.0)
    log_decline = F.greatest(-F.col("engagement_drift") * day, F.lit(0.0))
    return R.sigmoid(
        F.lit(world.hazard_intercept)
        + world.hazard_engagement * log_decline
        + world.hazard_payment * payment
        + F.when(F.col("plan") == "basic", world.hazard_basic_plan).otherwise(0.0)
    )


def _cancel_day(*, seed: int, days: int, world: WorldParams) -> Column:
    """First day the hazard fires, or null. Uses a per-(account, day) draw, taken
    as the minimum over days with an array expression (no shuffle)."""
    fires = F.filter(
        F.sequence(F.greatest(F.col("signup_day"), F.lit(0)), F.lit(days - 1)),
        lambda d: R.uniform(seed, "cancel", F.col("account_idx"), d) < hazard(d, world),
    )
    return F.array_min(fires)


def profiles(accounts_df: DataFrame, *, seed: int) -> DataFrame:
    """One row per profile with tastes, factors, segment, device and hour habits."""
    df = accounts_df.select(
        "account_idx",
        "account_id",
        "region",
        "region_idx",
        "signup_day",
        "engagement_drift",
        "cancel_day",
        F.explode(F.sequence(F.lit(0), F.col("household_size") - 1)).alias("profile_no"),
    )
    p = F.col("profile_idx")
    df = df.withColumn("profile_idx", F.col("account_idx") * MAX_PROFILES + F.col("profile_no"))
    is_kids = (F.col("profile_no") > 0) & (R.uniform(seed, "kids", p) < 0.25)
    kids_genres = {GENRES.index(g) for g in ("kids", "animation", "family")}
    # Genre tastes: log-normal weights, normalized; kids profiles lean to kids genres.
    taste = F.array(
        *[
            F.exp(
                1.3 * R.normal(seed, f"taste{g}", p)
                + F.when(is_kids, 2.5 if g in kids_genres else -1.0).otherwise(0.0)
            )
            for g in range(len(GENRES))
        ]
    )
    factors = F.array(*[R.normal(seed, f"factor{k}", p) for k in range(LATENT_DIM)])
    peak = F.when(is_kids, 16.0).otherwise(
        F.when(R.uniform(seed, "owl", p) < 0.15, 23.0).otherwise(20.0)
    ) + 1.5 * R.normal(seed, "peak", p)
    df = df.select(
        "*",
        F.format_string("%s-p%d", F.col("account_id"), F.col("profile_no")).alias("profile_id"),
        is_kids.alias("is_kids"),
        taste.alias("_taste"),
        factors.alias("factors"),
        R.categorical([0.45, 0.3, 0.1, 0.15], seed, "device", p).alias("preferred_device_idx"),
        peak.alias("peak_hour"),
        F.exp(0.6 * R.normal(seed, "activity", p) - 0.18).alias("activity"),
    )
    # Normalize and rank written out per genre: Spark compiles that to straight-line code,
    # while higher-order functions (zip_with, aggregate) run interpreted, row by row.
    total = sum((F.col("_taste")[g] for g in range(1, len(GENRES))), F.col("_taste")[0])
    df = df.withColumn("_total", total)
    df = df.withColumn(
        "taste", F.array(*[F.col("_taste")[g] / F.col("_total") for g in range(len(GENRES))])
    )
    by_weight = [
        F.struct(F.col("taste")[g].alias("w"), F.lit(g).alias("g")) for g in range(len(GENRES))
    ]
    df = df.withColumn("_ranked", F.sort_array(F.array(*by_weight), asc=False))
    df = df.withColumn("top_genres", F.array(*[F.col("_ranked")[j]["g"] for j in range(3)]))
    df = df.drop("_taste", "_total", "_ranked")
    df = df.withColumn(
        "segment", F.element_at(F.array(*map(F.lit, GENRE_SEGMENT)), F.col("top_genres")[0] + 1)
    )
    df = df.withColumn("preferred_device", _pick(DEVICES, F.col("preferred_device_idx")))
    return df.withColumn("profile_name", _pick(_FIRST, R.below(len(_FIRST), seed, "pname", p)))

"""What a model could reach if it knew the generator's hidden truth: the ceilings the
churn and recommender evaluations report beside their models on generated data.

The platform never reads the ground truth itself. The jobs, the demo and the benchmarks
ask for a ceiling here (``None`` when the lake has no ground truth, as on real data) and
hand it to the training: :func:`churn_ceiling` for `feature_store.churn.steps`,
:func:`recs_ceiling` for `feature_store.recs.steps`, :func:`audience_ceiling` for the
forecast's new-title audience model.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.config import Config
from feature_store.forecast.audience import TRUTH
from feature_store.privacy import pseudonymize
from feature_store.synthetic import load_manifest, members
from feature_store.synthetic.recs_oracle import oracle_recommendations
from feature_store.synthetic.world import WorldParams

SNAPSHOT = "snapshot_date"


def truth_probability(
    spine: DataFrame,
    truth_accounts: DataFrame,
    *,
    start_date: dt.date,
    horizon_days: int,
    world: WorldParams,
) -> DataFrame:
    """(account_id, snapshot_date, truth_probability): the hidden hazard's chance that
    the account cancels in the label window, 1 - prod(1 - h(d)) over its days.

    `truth_accounts` are the generator's accounts with `account_id` already in the
    spine's (pseudonymized) form; day numbers count from the generator's start date.
    """
    day0 = F.datediff(F.col(SNAPSHOT), F.lit(start_date))
    days = F.sequence(day0 + 1, day0 + horizon_days)
    log_survival = F.aggregate(
        days, F.lit(0.0), lambda acc, d: acc + F.log1p(-members.hazard(d, world))
    )
    return (
        spine.select("account_id", SNAPSHOT)
        .join(truth_accounts, "account_id")
        .select("account_id", SNAPSHOT, (1.0 - F.exp(log_survival)).alias("truth_probability"))
    )


def _has_ground_truth(spark: SparkSession, config: Config, table: str) -> bool:
    return lk.table_exists(spark, f"{lk.Lake(config.lake).ground_truth}/{table}")


def churn_ceiling(
    spark: SparkSession, config: Config
) -> Callable[[DataFrame, int], DataFrame] | None:
    """``(rows, horizon_days) -> truth_probability`` for rows (account_id, snapshot_date)
    of the lake's generated accounts, or None when the lake has no ground truth."""
    if not _has_ground_truth(spark, config, "accounts"):
        return None
    manifest = load_manifest(spark, config.lake)
    accounts = lk.read_table(spark, f"{lk.Lake(config.lake).ground_truth}/accounts").withColumn(
        "account_id", pseudonymize(F.col("account_id"), config.privacy.pseudonymization_key)
    )

    def ceiling(rows: DataFrame, horizon_days: int) -> DataFrame:
        return truth_probability(
            rows,
            accounts,
            start_date=dt.date.fromisoformat(manifest["spec"]["start_date"]),
            horizon_days=horizon_days,
            world=WorldParams(**manifest["world"]),
        )

    return ceiling


def recs_ceiling(spark: SparkSession, config: Config) -> Callable[..., pd.DataFrame] | None:
    """``(users, items, interactions, *, first_day, last_day, k) -> (user_id, item_id,
    score, rank)``: each profile's top k unseen titles by the generator's own chance that
    it watches them (`recs_oracle`), or None when the lake has no ground truth."""
    if not _has_ground_truth(spark, config, "profiles"):
        return None
    return functools.partial(
        oracle_recommendations,
        spark,
        config.lake,
        pseudonymization_key=config.privacy.pseudonymization_key,
    )


def audience_ceiling(spark: SparkSession, config: Config) -> DataFrame | None:
    """title_id, region, truth_log_popularity (each title's base log popularity plus the
    log of its regional multiplier, from the hidden catalogue), or None when the lake has
    no ground truth."""
    truth = lk.Lake(config.lake).ground_truth
    paths = (f"{truth}/titles", f"{truth}/title_regions")
    if not all(lk.table_exists(spark, p) for p in paths):
        return None
    titles, regions = (lk.read_table(spark, p) for p in paths)
    ids = titles.select("title_idx", "title_id", "base_log_pop")
    return regions.join(ids, "title_idx").select(
        "title_id",
        "region",
        (F.col("base_log_pop") + F.log(F.col("popularity_multiplier"))).alias(TRUTH),
    )

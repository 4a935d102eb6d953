"""Landing records for entities (accounts, profiles, titles) and subscriptions.

Accounts and profiles that existed before the window arrive on its first day (the
initial export); later signups and plan changes arrive on their day.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feature_store.sources import PLANS
from feature_store.synthetic import rand as R

PLAN_PRICE_CENTS = {"basic": 799, "standard": 1549, "premium": 2299}


def _at(start: dt.date, day: Column, seconds: Column) -> Column:
    epoch0 = int(dt.datetime.combine(start, dt.time(), dt.UTC).timestamp())
    return F.timestamp_seconds(F.lit(epoch0) + day * 86400 + seconds)


def plan_changes(accounts: DataFrame, *, seed: int, days: int) -> DataFrame:
    """Accounts that change plan in the window, with the day and the new plan."""
    a = F.col("account_idx")
    first_day = F.greatest(F.col("signup_day"), F.lit(0)) + 1
    day = first_day + R.below(F.greatest(F.lit(days) - first_day, F.lit(1)), seed, "plan_day", a)
    new_plan = F.element_at(
        F.array(*map(F.lit, PLANS)),
        F.pmod(F.col("plan_idx") + 1 + R.below(2, seed, "plan_to", a), F.lit(3)) + 1,
    )
    changes = accounts.filter(R.uniform(seed, "plan_change", a) < 0.04).select(
        "*", day.alias("change_day"), new_plan.alias("new_plan")
    )
    return changes.filter(
        (F.col("change_day") < days)
        & (F.col("cancel_day").isNull() | (F.col("change_day") < F.col("cancel_day")))
    )


def account_records(
    accounts: DataFrame, changes: DataFrame, *, seed: int, start: dt.date
) -> DataFrame:
    """Account landing records: one at signup (or the window's first day), one per plan change."""
    a = F.col("account_idx")
    first = accounts.select(
        "*", F.greatest(F.col("signup_day"), F.lit(0)).alias("_day"), F.lit(0).alias("_version")
    )
    changed = changes.select(
        *[c for c in accounts.columns if c != "plan"],
        F.col("new_plan").alias("plan"),
        F.col("change_day").alias("_day"),
        F.lit(1).alias("_version"),
    )
    both = first.unionByName(changed)
    return both.select(
        R.hex_id(seed, "account_record", a, "_version").alias("event_id"),
        _at(start, F.col("_day"), R.below(86400, seed, "account_ts", a, "_version")).alias(
            "event_ts"
        ),
        "account_id",
        "country",
        "region",
        "plan",
        F.date_add(F.lit(start), F.col("signup_day")).alias("signup_date"),
        "household_size",
        "email",
        "full_name",
        "phone",
    )


def profile_records(profiles: DataFrame, *, seed: int, start: dt.date) -> DataFrame:
    """Profile landing records, one per profile, its language from its region."""
    p = F.col("profile_idx")
    day = F.greatest(F.col("signup_day"), F.lit(0))
    return profiles.select(
        R.hex_id(seed, "profile_record", p).alias("event_id"),
        _at(start, day, R.below(86400, seed, "profile_ts", p)).alias("event_ts"),
        "account_id",
        "profile_id",
        "profile_name",
        "is_kids",
        F.when(F.col("region").isin("br"), "pt")
        .when(F.col("region").isin("mx", "es"), "es")
        .when(F.col("region") == "de", "de")
        .when(F.col("region") == "fr", "fr")
        .when(F.col("region") == "jp", "ja")
        .when(F.col("region") == "kr", "ko")
        .otherwise("en")
        .alias("language"),
        F.date_add(F.lit(start), F.col("signup_day")).alias("created_date"),
    )


def title_records(titles: DataFrame, *, seed: int, start: dt.date) -> DataFrame:
    """Title landing records, one per title, all in the window's first hour."""
    t = F.col("title_idx")
    artwork = F.transform(
        F.arrays_zip(F.col("artwork_ids"), F.col("artwork_styles")),
        lambda z: F.struct(
            z["artwork_ids"].alias("artwork_id"),
            F.element_at(
                F.array(
                    *map(
                        F.lit, ("close_up", "ensemble", "action_shot", "minimal", "dark", "bright")
                    )
                ),
                z["artwork_styles"] + 1,
            ).alias("style"),
        ),
    )
    return titles.select(
        R.hex_id(seed, "title_record", t).alias("event_id"),
        _at(start, F.lit(0), R.below(3600, seed, "title_ts", t)).alias("event_ts"),
        "title_id",
        "name",
        "kind",
        "genres",
        "cast",
        "release_date",
        "duration_minutes",
        F.when(F.col("kind") == "series", F.col("episodes")).alias("episodes"),
        "available_regions",
        artwork.alias("artwork"),
    )


def subscription_records(
    accounts: DataFrame, changes: DataFrame, *, seed: int, start: dt.date, days: int
) -> DataFrame:
    """Subscription events: signups, payment failures, plan changes and cancels."""
    a = F.col("account_idx")
    price = F.element_at(
        F.create_map(
            *[x for plan, cents in PLAN_PRICE_CENTS.items() for x in (F.lit(plan), F.lit(cents))]
        ),
        F.col("plan"),
    )
    before_cancel = F.col("cancel_day").isNull() | (F.col("_day") < F.col("cancel_day"))

    def on_day(frame: DataFrame, day: str, event_type: str) -> DataFrame:
        return frame.select(
            "*",
            F.col(day).alias("_day"),
            F.lit(event_type).alias("_type"),
            F.lit(None).cast("string").alias("_previous"),
        )

    in_window = F.col("_day").between(0, days - 1) & before_cancel
    events = [
        on_day(accounts.filter(F.col("signup_day") >= 0), "signup_day", "signup"),
        on_day(accounts, "first_payment_failure_day", "payment_failure").filter(in_window),
        on_day(accounts, "second_payment_failure_day", "payment_failure").filter(in_window),
        on_day(accounts.filter(F.col("cancel_day").isNotNull()), "cancel_day", "cancel"),
        changes.select(
            *[c for c in accounts.columns if c != "plan"],
            F.col("new_plan").alias("plan"),
            F.col("change_day").alias("_day"),
            F.lit("plan_change").alias("_type"),
            F.col("plan").alias("_previous"),
        ),
    ]
    union = events[0]
    for frame in events[1:]:
        union = union.unionByName(frame)
    return union.select(
        R.hex_id(seed, "subscription", a, "_type", "_day").alias("event_id"),
        _at(
            start, F.col("_day"), R.below(86400, seed, "subscription_ts", a, "_type", "_day")
        ).alias("event_ts"),
        "account_id",
        F.col("_type").alias("event_type"),
        "plan",
        F.col("_previous").alias("previous_plan"),
        F.when(F.col("_type").isin("signup", "plan_change", "payment_failure"), price)
        .cast("long")
        .alias("amount_cents"),
    )

"""The ceilings from the generator's hidden truth: the recommender oracle's exposure (a
title can only be watched where and when it can be shown) and the churn hazard's chance
of a cancel in a label window."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality

from feature_store.sources import GENRES
from feature_store.synthetic.ceilings import truth_probability
from feature_store.synthetic.recs_oracle import POPULARITY_DRAWS, _Exposure
from feature_store.synthetic.world import REGION_CODES, WorldParams

START = dt.date(2026, 1, 1)
HOME, ABROAD = REGION_CODES[0], REGION_CODES[1]


def exposure(first_day: dt.date, last_day: dt.date) -> _Exposure:
    # t0: back catalogue, everywhere; t1: released on day 5; t2: not shown at HOME
    titles = pd.DataFrame(
        {
            "title_idx": [0, 1, 2],
            "release_day": [-100, 5, -100],
            "kind": ["movie", "series", "movie"],
            "genres": [["comedy"], ["comedy", "drama"], ["drama"]],
            "base_log_pop": [0.0, 0.0, 0.0],
        }
    )
    regions = pd.DataFrame(
        [(t, code, not (t == 2 and code == HOME), 1.0) for t in range(3) for code in REGION_CODES],
        columns=["title_idx", "region", "available", "popularity_multiplier"],
    )
    return _Exposure(titles, regions, start=START, first_day=first_day, last_day=last_day)


def genres(*names: str) -> list[int]:
    return [GENRES.index(n) for n in names]


def test_a_title_is_never_shown_before_release_or_where_it_is_unavailable():
    before_release = exposure(START + dt.timedelta(days=1), START + dt.timedelta(days=2))
    got = before_release.of(np.array([HOME, ABROAD]), [genres("comedy", "drama", "action")] * 2)
    assert got[0, 1] == 0.0 and got[1, 1] == 0.0  # t1 not out yet anywhere
    assert got[0, 2] == 0.0 and got[1, 2] > 0.0  # t2 not shown at home
    assert got[0, 0] > 0.0
    # two popularity draws per session and day over two days; at home t0 is the only
    # title out, so it fills both draws on both days
    popular_only = before_release.of(np.array([HOME]), [genres("action")])
    assert popular_only[0, 0] == pytest.approx(2 * POPULARITY_DRAWS)


def test_the_genre_draw_favours_titles_of_the_favourite_genres():
    after_release = exposure(START + dt.timedelta(days=20), START + dt.timedelta(days=20))
    comedy_fan = after_release.of(np.array([ABROAD]), [genres("comedy")])[0]
    drama_fan = after_release.of(np.array([ABROAD]), [genres("drama")])[0]
    # the popularity draws are the same for both; the genre draw moves exposure
    assert comedy_fan[0] > drama_fan[0] and drama_fan[2] > comedy_fan[2]


def d(day: int) -> dt.date:
    return dt.date(2026, 2, 1) + dt.timedelta(days=day)


def test_the_hidden_hazard_gives_the_chance_of_a_cancel_in_the_window(spark):
    world = WorldParams.draw(3)
    accounts = spark.createDataFrame(
        [
            # steady, never failed a payment, premium: the base hazard every day
            ("steady", 0.0, None, None, "premium"),
            # a payment failure on day 12, the snapshot's day 10 + 2
            ("failed", 0.0, 12, None, "premium"),
        ],
        "account_id string, engagement_drift double, first_payment_failure_day int, "
        "second_payment_failure_day int, plan string",
    )
    spine = spark.createDataFrame(
        [("steady", d(10)), ("failed", d(10))], "account_id string, snapshot_date date"
    )
    got = truth_probability(spine, accounts, start_date=d(0), horizon_days=5, world=world)
    base = 1 / (1 + math.exp(-world.hazard_intercept))

    def hazard(payment):
        return 1 / (1 + math.exp(-(world.hazard_intercept + world.hazard_payment * payment)))

    # days 11..15; the failure's effect exp(-(day - 12) / 10) from day 12 on
    failed_survival = (1 - base) * math.prod(1 - hazard(math.exp(-k / 10)) for k in range(4))
    expected = spark.createDataFrame(
        [("steady", d(10), 1 - (1 - base) ** 5), ("failed", d(10), 1 - failed_survival)],
        "account_id string, snapshot_date date, truth_probability double",
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)

"""The ceiling's exposure: a title can only be watched where and when it can be shown."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from feature_store.generator.world import REGION_CODES
from feature_store.recs.oracle import POPULARITY_DRAWS, _Exposure
from feature_store.sources import GENRES

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

"""Serving an artwork policy: saved and loaded as it was, requests checked, variants
drawn at the probabilities returned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_store.artwork import serving
from feature_store.artwork.contextual import StyleTable
from feature_store.artwork.policies import (
    CONTEXTS,
    MAX_VARIANTS,
    SEGMENT_COUNT,
    STYLE_SETS,
    STYLES,
    TitleTable,
)

TITLES = pd.Index(["tt1", "tt2"])
TRAINED_STYLES = np.array([[0, 3, 5, -1, -1, -1], [1, 2, 4, 0, -1, -1]])


def title_table() -> TitleTable:
    p = np.zeros((2, SEGMENT_COUNT, MAX_VARIANTS))
    p[0, :, :3] = [0.7, 0.2, 0.1]
    p[1, :, :4] = [0.1, 0.1, 0.1, 0.7]
    return TitleTable("thompson", p, TRAINED_STYLES)


def requests(**changes) -> pd.DataFrame:
    row = {
        "title_id": "tt1",
        "segment": "kids",
        "device": "tv",
        "local_hour": 20,
        # the trained order was close_up, minimal, bright
        "artwork_ids": ["tt1-b", "tt1-c", "tt1-a"],
        "artwork_styles": ["minimal", "bright", "close_up"],
    }
    return pd.DataFrame([row | changes])


def test_a_title_table_matches_a_request_s_variants_by_style(tmp_path):
    serving.save(title_table(), TITLES, tmp_path)
    policy, titles = serving.load(tmp_path)
    p = policy.probabilities(serving.request_candidates(requests(), titles))
    assert p[0] == pytest.approx([0.2, 0.1, 0.7, 0, 0, 0])


def test_a_new_variant_or_title_is_explored_evenly(tmp_path):
    serving.save(title_table(), TITLES, tmp_path)
    policy, titles = serving.load(tmp_path)
    new_variant = requests(
        artwork_ids=["a", "b", "c", "d"], artwork_styles=["minimal", "bright", "close_up", "dark"]
    )
    new_title = requests(title_id="tt9")
    for request in (new_variant, new_title):
        p = policy.probabilities(serving.request_candidates(request, titles))[0]
        k = len(request["artwork_ids"][0])
        assert p[:k] == pytest.approx([1 / k] * k)


def test_a_style_table_serves_by_context_and_set_of_styles(tmp_path):
    table = np.zeros((CONTEXTS, STYLE_SETS, STYLES))
    table[:, :, 5] = 1.0  # always bright, wherever it is offered
    serving.save(StyleTable("contextual", table), TITLES, tmp_path)
    policy, titles = serving.load(tmp_path)
    p = policy.probabilities(serving.request_candidates(requests(title_id="new"), titles))
    assert p[0] == pytest.approx([0, 1, 0, 0, 0, 0])


def test_variants_are_drawn_at_the_probability_returned():
    candidates = serving.request_candidates(pd.concat([requests()] * 50_000), TITLES)
    slot, probability = serving.choose(title_table(), candidates, np.random.default_rng(0))
    assert np.bincount(slot, minlength=3)[:3] / len(slot) == pytest.approx(
        [0.2, 0.1, 0.7], abs=0.01
    )
    assert probability == pytest.approx(np.array([0.2, 0.1, 0.7])[slot])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"artwork_styles": ["minimal", "bright"]}, "3 artwork ids with 2 styles"),
        ({"artwork_styles": ["minimal", "bright", "neon"]}, "not distinct known styles"),
        ({"artwork_styles": ["minimal", "minimal", "dark"]}, "not distinct known styles"),
        ({"artwork_ids": [], "artwork_styles": []}, "0 artwork ids"),
    ],
)
def test_a_request_that_cannot_be_served_is_refused_with_what_is_wrong(changes, message):
    with pytest.raises(ValueError, match=message):
        serving.request_candidates(requests(**changes), TITLES)


def test_a_request_without_a_context_column_is_refused():
    with pytest.raises(ValueError, match=r"lack columns \['local_hour'\]"):
        serving.request_candidates(requests().drop(columns="local_hour"), TITLES)

"""The generator's artwork logging policy and the play probabilities kept as truth,
checked against the chooser itself (synthetic.choice) on a handmade catalogue."""

from __future__ import annotations

import numpy as np
import pytest
from test_generator_choice import CATALOGUE, WORLD, _batch, _chooser, _session, _utility

from feature_store.sources import ARTWORK_STYLES, SEGMENTS
from feature_store.synthetic.artwork import ArtworkLogging, play_probabilities
from feature_store.synthetic.choice import popularity_key

# Title 0's styles are [2, 0, 1]; segment 0 prefers style 0 (its second variant)
PREFERENCE = tuple(
    tuple(1.0 if style == 0 else 0.0 for style in range(len(ARTWORK_STYLES))) for _ in SEGMENTS
)
STYLES = np.array([[2, 0, 1, -1, -1, -1], [1, 3, 0, 2, -1, -1]])


@pytest.mark.parametrize(
    "logging",
    [
        ArtworkLogging(),
        ArtworkLogging("epsilon_greedy", epsilon=0.3, preference=PREFERENCE),
        ArtworkLogging("softmax", temperature=0.5, preference=PREFERENCE),
    ],
)
def test_each_variant_is_drawn_at_the_probability_logged(logging):
    u = np.random.default_rng(0).random(200_000)
    styles = np.repeat(STYLES[:1], len(u), axis=0)
    slot, propensity = logging.choose(u, styles, np.zeros(len(u), dtype=np.int64))
    expected = logging.probabilities(STYLES[:1], np.array([0]))[0]
    assert expected.sum() == pytest.approx(1.0) and (expected[3:] == 0).all()
    drawn = np.bincount(slot, minlength=6) / len(u)
    assert drawn == pytest.approx(expected, abs=0.005)
    assert propensity == pytest.approx(expected[slot])


def test_epsilon_greedy_logging_favours_the_preferred_style():
    logging = ArtworkLogging("epsilon_greedy", epsilon=0.3, preference=PREFERENCE)
    p = logging.probabilities(STYLES, np.array([0, 0]))
    assert p[0] == pytest.approx([0.1, 0.8, 0.1, 0, 0, 0])
    assert p[1] == pytest.approx([0.075, 0.075, 0.775, 0.075, 0, 0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "greedy"}, "is not one of"),
        ({"kind": "softmax"}, "needs a preference of 6 segments x 6 styles"),
        ({"epsilon": 0.0}, "epsilon must be in"),
    ],
)
def test_a_logging_policy_that_cannot_log_a_propensity_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArtworkLogging(**kwargs)


def test_the_play_probability_kept_as_truth_is_the_rate_the_chooser_plays_at():
    """20,000 copies of one session, fresh Gumbel draws: title 0 (shown variant 0 of style
    2) is played at the rate the truth gives for that variant."""
    rng = np.random.default_rng(1)
    # slot 0 -> title 0, slot 2 -> title 1 (out by day 6), genre 1 pos 1 -> title 2 (not
    # in region 0): two valid candidates
    base = _session("s", slots=(0, 2), genre=1, pos=1, gumbels=(0, 0, 0), outside=0.0)
    base |= {"day": 6, "_slot_key0": popularity_key(0, 0, 0), "_slot_key1": popularity_key(0, 0, 2)}
    rows = []
    for _ in range(20_000):
        g = rng.gumbel(size=4)
        rows.append(base | {f"_gumbel{i}": g[i] for i in range(3)} | {"_gumbel_outside": g[3]})
    out = _chooser().choose(_batch(rows))
    played = (out.column("chosen").to_numpy() == 0).mean()

    titles = CATALOGUE.titles.to_dict("records")
    utility = np.array([[_utility(titles[0], base), _utility(titles[1], base), 0.0]])
    appeal = np.array(WORLD.artwork_appeal)[0]
    valid = np.array([[True, True, False]])
    shown = np.array([[appeal[2], appeal[1], 0.0]])  # u = 0: each title's first variant
    variants = np.full((1, 3, 6), -np.inf)
    variants[0, 0, :3] = appeal[[2, 0, 1]]
    truth = play_probabilities(utility, shown, variants, valid, WORLD.outside_utility)
    assert out.column("valid_1").to_pylist()[0] and not out.column("valid_2").to_pylist()[0]
    assert played == pytest.approx(truth[0, 0, 0], abs=3 * np.sqrt(truth[0, 0, 0] / 20_000))
    assert truth[0, 0].sum() > 0 and (truth[0, 0, 3:] == 0).all()
    assert np.argmax(truth[0, 0, :3]) == np.argmax(appeal[[2, 0, 1]])

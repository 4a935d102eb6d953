"""A session's candidates and choice (synthetic.choice), on a handmade catalogue and
batch: which candidates can be shown, what they are worth, and what is picked."""

import pandas as pd
import pyarrow as pa

from feature_store.sources import GENRES
from feature_store.synthetic.choice import (
    CANDIDATE_FIELDS,
    DRAWS,
    SCORING_INPUTS,
    Chooser,
    genre_key,
    popularity_key,
)
from feature_store.synthetic.world import LATENT_DIM, Catalogue, WorldParams

WORLD = WorldParams.draw(7)
G = len(GENRES)


def _title(idx, *, release_day, region_mask, genre, styles):
    vec = [0.0] * G
    vec[genre] = 1.0
    return {
        "title_idx": idx,
        "title_id": f"tt{idx}",
        "name": f"Title {idx}",
        "kind_idx": idx % 2,
        "genre_vec": vec,
        "factors": [0.1 * (idx + 1) * (k + 1) for k in range(LATENT_DIM)],
        "base_log_pop": 0.5 + idx,
        "quality": 0.01 * idx,
        "release_day": release_day,
        "region_mask": region_mask,
        "artwork_ids": [f"tt{idx}-a{j}" for j in range(len(styles))],
        "artwork_styles": styles,
        "duration_minutes": 30 + idx,
    }


# Title 0 is everywhere from the start; 1 comes out on day 5; 2 is not shown in region 0.
CATALOGUE = Catalogue(
    titles=pd.DataFrame(
        [
            _title(0, release_day=-100, region_mask=0b11, genre=0, styles=[2, 0, 1]),
            _title(1, release_day=5, region_mask=0b11, genre=1, styles=[1, 3, 0, 2]),
            _title(2, release_day=-100, region_mask=0b10, genre=1, styles=[0, 1, 2]),
        ]
    ),
    title_regions=pd.DataFrame(),
    popularity_slots=pd.DataFrame(
        {"region_idx": [0, 0, 0], "day": [0, 0, 0], "slot": [0, 1, 2], "title_idx": [0, 2, 1]}
    ),
    genre_slots=pd.DataFrame({"genre_idx": [0, 1, 1], "pos": [0, 0, 1], "title_idx": [0, 1, 2]}),
    genre_counts=[1, 2] + [0] * (G - 2),
)


def _batch(rows: list[dict]) -> pa.RecordBatch:
    names = ["session_id", *SCORING_INPUTS, *(name for name, _ in DRAWS)]
    return pa.RecordBatch.from_pylist(rows, schema=_input_schema(names))


def _input_schema(names) -> pa.Schema:
    types = {
        "session_id": pa.string(),
        "taste": pa.list_(pa.float64()),
        "factors": pa.list_(pa.float64()),
        **{name: pa.float64() for name, kind in DRAWS if kind == "double"},
    }
    return pa.schema([(n, types.get(n, pa.int64())) for n in names])


def _session(session_id, *, slots, genre, pos, gumbels, outside, day=0, art=(0.0, 0.0, 0.0)):
    taste = [0.0] * G
    taste[0], taste[1] = 0.6, 0.4
    return {
        "session_id": session_id,
        "day": day,
        "region_idx": 0,
        "device_idx": 0,
        "hour_group": 3,
        "segment": 0,
        "taste": taste,
        "factors": [0.2] * LATENT_DIM,
        "_slot_key0": popularity_key(day, 0, slots[0]),
        "_slot_key1": popularity_key(day, 0, slots[1]),
        "_genre_key": genre_key(genre, pos, max(CATALOGUE.genre_counts)),
        **{f"_u_art{i}": art[i] for i in range(3)},
        **{f"_gumbel{i}": gumbels[i] for i in range(3)},
        "_gumbel_outside": outside,
    }


def _chooser() -> Chooser:
    fields = [pa.field("session_id", pa.string())]
    for i in range(3):
        fields += [pa.field(f"{c}_{i}", t) for c, t in CANDIDATE_FIELDS]
    schema = pa.schema([*fields, pa.field("chosen", pa.int32())])
    return Chooser.of(CATALOGUE, WORLD, ("session_id",), schema)


def _utility(title: dict, session: dict) -> float:
    """The utility as the generator defines it, one term after the other."""
    w = WORLD
    taste = sum((a * b for a, b in zip(session["taste"], title["genre_vec"], strict=True)), 0.0)
    fit = sum((a * b for a, b in zip(session["factors"], title["factors"], strict=True)), 0.0)
    hour = w.hour_genre[session["hour_group"]]
    context = sum((a * b for a, b in zip(hour, title["genre_vec"], strict=True)), 0.0)
    return (
        w.taste_weight * taste
        + w.factor_weight * fit
        + w.popularity_weight * title["base_log_pop"]
        + w.device_kind[session["device_idx"]][title["kind_idx"]]
        + context
    )


def test_only_released_available_distinct_titles_are_valid_and_the_best_score_wins():
    titles = CATALOGUE.titles.to_dict("records")
    # slot 0 -> title 0, slot 0 again (a repeat), genre 1 pos 0 -> title 1 (not out on day 0)
    repeat = _session("s1", slots=(0, 0), genre=1, pos=0, gumbels=(0.0, 9.0, 9.0), outside=-50.0)
    # slot 1 -> title 2 (not in region 0), slot 2 -> title 1 (out by day 6), genre 1 pos 1 -> 2
    later = _session("s2", slots=(1, 2), genre=1, pos=1, gumbels=(9.0, 0.3, 9.0), outside=-50.0,
                     art=(0.0, 0.99, 0.5))  # fmt: skip
    later["_slot_key0"] = popularity_key(0, 0, 1)  # the slot table of day 0
    later["_slot_key1"] = popularity_key(0, 0, 2)
    later["day"] = 6
    out = _chooser().choose(_batch([repeat, later])).to_pylist()

    assert [[r[f"valid_{i}"] for i in range(3)] for r in out] == [
        [True, False, False],
        [False, True, False],
    ]
    assert [r["chosen"] for r in out] == [0, 1]
    assert [[r[f"title_id_{i}"] for i in range(3)] for r in out] == [
        ["tt0", "tt0", "tt1"],
        ["tt2", "tt1", "tt2"],
    ]
    # floor(0.99 * 4) = 3: title 1's fourth variant, of style 2
    assert (out[1]["artwork_id_1"], out[1]["artwork_style_1"]) == ("tt1-a3", 2)
    assert (out[1]["artwork_propensity_1"], out[0]["artwork_propensity_0"]) == (1 / 4, 1 / 3)
    assert out[0]["utility_0"] == _utility(titles[0], repeat)
    assert out[1]["utility_1"] == _utility(titles[1], later)
    assert (out[1]["release_day_1"], out[1]["duration_minutes_1"]) == (5, 31)


def test_the_outside_option_wins_when_it_scores_best_and_a_missing_title_is_null():
    # genre 1 has two titles: position 2 finds none (as a left join finds no row)
    none = _session("s3", slots=(0, 2), genre=1, pos=2, gumbels=(0.0, 0.0, 0.0), outside=50.0)
    (row,) = _chooser().choose(_batch([none])).to_pylist()

    assert row["chosen"] == -1
    assert row["valid_2"] is False
    assert {row[f"{c}_2"] for c, _ in CANDIDATE_FIELDS if c != "valid"} == {None}
    assert row["valid_0"] and not row["valid_1"]  # title 1 is not out on day 0

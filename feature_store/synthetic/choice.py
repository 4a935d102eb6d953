"""A session's three candidates and its choice, computed in NumPy on Arrow batches.

Spark draws every random number of a session (counter-based, see `rand`); this module
looks the candidates up in the catalogue and scores them, a batch of sessions at a time,
in the Python workers of `mapInArrow`. Joining three titles' wide rows (genre vectors,
factors, artwork lists) onto every session and scoring them in generated Java code was
the generator's slowest step. The arithmetic is the one Spark did, in the same order,
so the values are the same to the last bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.sources import GENRES, REGIONS
from feature_store.synthetic.artwork import MAX_VARIANTS, ArtworkLogging
from feature_store.synthetic.world import LATENT_DIM, POPULARITY_SLOTS, Catalogue, WorldParams

CANDIDATES = 3
# Per candidate, the columns a session keeps, with their Arrow types
CANDIDATE_FIELDS = (
    ("valid", pa.bool_()),
    ("title_id", pa.string()),
    ("name", pa.string()),
    ("artwork_id", pa.string()),
    ("artwork_style", pa.int32()),
    ("artwork_propensity", pa.float64()),
    ("release_day", pa.int32()),
    ("utility", pa.float64()),
    ("quality", pa.float64()),
    ("duration_minutes", pa.int32()),
)
# The draws Spark adds to each session for `Chooser` (and their Spark types)
DRAWS = (
    *[(f"_slot_key{i}", "bigint") for i in (0, 1)],
    ("_genre_key", "bigint"),
    *[(f"_u_art{i}", "double") for i in range(CANDIDATES)],
    *[(f"_gumbel{i}", "double") for i in range(CANDIDATES)],
    ("_gumbel_outside", "double"),
)
# Session columns the scoring reads besides the draws
SCORING_INPUTS = ("day", "region_idx", "device_idx", "hour_group", "segment", "taste", "factors")


def popularity_key(day, region, slot):
    """(region, day, slot) as one dense integer (Spark columns or NumPy arrays)."""
    return (day * len(REGIONS) + region) * POPULARITY_SLOTS + slot


def genre_key(genre, pos, most: int):
    """(genre, position among its titles) as one dense integer."""
    return genre * most + pos


@dataclasses.dataclass
class _Titles:
    """The catalogue's columns by title_idx; artwork as flat lists with offsets."""

    genre_vec: np.ndarray  # [title, genre]
    factors: np.ndarray  # [title, latent]
    numbers: dict[str, np.ndarray]  # kind_idx, release_day, region_mask, ...
    strings: dict[str, pa.Array]  # title_id, name
    artwork_start: np.ndarray
    artwork_count: np.ndarray
    artwork_ids: pa.Array
    artwork_styles: np.ndarray
    variant_styles: np.ndarray  # [title, MAX_VARIANTS], -1 past its variants

    @classmethod
    def of(cls, titles) -> _Titles:
        titles = titles.sort_values("title_idx")
        if not (titles["title_idx"].to_numpy() == np.arange(len(titles))).all():
            raise ValueError("the catalogue's title_idx must run 0..n-1")
        counts = titles["artwork_ids"].map(len).to_numpy()
        numbers = ("kind_idx", "release_day", "region_mask", "duration_minutes")
        variant_styles = np.full((len(titles), MAX_VARIANTS), -1, dtype=np.int64)
        for i, styles in enumerate(titles["artwork_styles"]):
            variant_styles[i, : len(styles)] = styles
        return cls(
            genre_vec=np.array(titles["genre_vec"].tolist(), dtype=np.float64),
            factors=np.array(titles["factors"].tolist(), dtype=np.float64),
            numbers={
                **{c: titles[c].to_numpy(np.int64) for c in numbers},
                **{c: titles[c].to_numpy(np.float64) for c in ("base_log_pop", "quality")},
            },
            strings={c: pa.array(titles[c].tolist(), pa.string()) for c in ("title_id", "name")},
            artwork_start=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
            artwork_count=counts.astype(np.int64),
            artwork_ids=pa.array([a for ids in titles["artwork_ids"] for a in ids], pa.string()),
            artwork_styles=np.array(
                [s for styles in titles["artwork_styles"] for s in styles], dtype=np.int64
            ),
            variant_styles=variant_styles,
        )


@dataclasses.dataclass
class Chooser:
    """mapInArrow body: sessions with their draws in, sessions with candidates out."""

    titles: _Titles
    popular: np.ndarray  # popularity_key -> title_idx
    by_genre: np.ndarray  # genre_key -> title_idx, -1 where no title
    world: dict[str, np.ndarray | float]
    keep: tuple[str, ...]  # input columns passed through
    schema: pa.Schema
    logging: ArtworkLogging

    @classmethod
    def of(
        cls,
        catalogue: Catalogue,
        world: WorldParams,
        keep: tuple[str, ...],
        schema: pa.Schema,
        logging: ArtworkLogging | None = None,
    ) -> Chooser:
        return cls(
            titles=_Titles.of(catalogue.titles),
            popular=_dense(catalogue.popularity_slots, _popularity_keys(catalogue)),
            by_genre=_dense(catalogue.genre_slots, _genre_keys(catalogue)),
            world={
                "taste_weight": world.taste_weight,
                "factor_weight": world.factor_weight,
                "popularity_weight": world.popularity_weight,
                "outside_utility": world.outside_utility,
                "device_kind": np.array(world.device_kind, dtype=np.float64),
                "hour_genre": np.array(world.hour_genre, dtype=np.float64),
                "artwork_appeal": np.array(world.artwork_appeal, dtype=np.float64),
            },
            keep=keep,
            schema=schema,
            logging=logging or ArtworkLogging(),
        )

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield self.choose(batch)

    def choose(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch's kept columns, each candidate's columns and `chosen`."""
        s = _Session.of(batch)
        picks = [
            _lookup(self.popular, _column(batch, "_slot_key0")),
            _lookup(self.popular, _column(batch, "_slot_key1")),
            _lookup(self.by_genre, _column(batch, "_genre_key")),
        ]
        columns, scores = [], []
        for i, pick in enumerate(picks):
            candidate = self._candidate(batch, s, i, pick, picks[:i])
            columns += candidate.arrays()
            scores.append(candidate.score)
        chosen = _chosen(scores, self.world["outside_utility"] + _column(batch, "_gumbel_outside"))
        arrays = [batch.column(name) for name in self.keep] + columns + [pa.array(chosen)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _candidate(self, batch, s: _Session, i: int, pick, earlier) -> _Candidate:
        t, w = self.titles, self.world
        found = pick >= 0
        idx = np.where(found, pick, 0)
        numbers = {c: v[idx] for c, v in t.numbers.items()}
        distinct = np.ones(len(idx), dtype=bool)
        for other in earlier:
            distinct &= pick != other
        valid = (
            found
            & (numbers["release_day"] <= s.day)
            & ((numbers["region_mask"] >> s.region) & 1 == 1)
            & distinct
        )
        slot, propensity = self.logging.choose(
            _column(batch, f"_u_art{i}"), t.variant_styles[idx], s.segment
        )
        art = t.artwork_start[idx] + slot
        style = t.artwork_styles[art]
        genres = t.genre_vec[idx]
        utility = (
            w["taste_weight"] * _dot(s.taste, genres)
            + w["factor_weight"] * _dot(s.factors, t.factors[idx])
            + w["popularity_weight"] * numbers["base_log_pop"]
            + w["device_kind"][s.device, numbers["kind_idx"]]
            + _dot(w["hour_genre"][s.hour_group], genres)
        )
        appeal = w["artwork_appeal"][s.segment, style]
        score = np.where(valid, utility + appeal + _column(batch, f"_gumbel{i}"), -np.inf)
        return _Candidate(t, found, idx, art, style, propensity, valid, utility, numbers, score)


@dataclasses.dataclass
class _Session:
    day: np.ndarray
    region: np.ndarray
    device: np.ndarray
    hour_group: np.ndarray
    segment: np.ndarray
    taste: np.ndarray  # [session, genre]
    factors: np.ndarray  # [session, latent]

    @classmethod
    def of(cls, batch: pa.RecordBatch) -> _Session:
        ints = {c: _column(batch, c).astype(np.int64) for c in SCORING_INPUTS[:5]}
        return cls(
            day=ints["day"],
            region=ints["region_idx"],
            device=ints["device_idx"],
            hour_group=ints["hour_group"],
            segment=ints["segment"],
            taste=_matrix(batch, "taste", len(GENRES)),
            factors=_matrix(batch, "factors", LATENT_DIM),
        )


@dataclasses.dataclass
class _Candidate:
    titles: _Titles
    found: np.ndarray
    idx: np.ndarray
    art: np.ndarray
    style: np.ndarray
    propensity: np.ndarray
    valid: np.ndarray
    utility: np.ndarray
    numbers: dict[str, np.ndarray]
    score: np.ndarray

    def arrays(self) -> list[pa.Array]:
        """In CANDIDATE_FIELDS order; null where no title was found."""
        missing = ~self.found
        title = pa.array(self.idx, mask=missing)
        art = pa.array(self.art, mask=missing)
        n = self.numbers

        def masked(values, dtype):
            return pa.array(values, type=dtype, mask=missing)

        return [
            pa.array(self.valid),
            pc.take(self.titles.strings["title_id"], title),
            pc.take(self.titles.strings["name"], title),
            pc.take(self.titles.artwork_ids, art),
            masked(self.style.astype(np.int32), pa.int32()),
            masked(self.propensity, pa.float64()),
            masked(n["release_day"].astype(np.int32), pa.int32()),
            masked(self.utility, pa.float64()),
            masked(n["quality"], pa.float64()),
            masked(n["duration_minutes"].astype(np.int32), pa.int32()),
        ]


def _column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


def _matrix(batch: pa.RecordBatch, name: str, width: int) -> np.ndarray:
    values = pc.list_flatten(batch.column(name)).to_numpy(zero_copy_only=False)
    return values.astype(np.float64).reshape(-1, width)


def _dot(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise dot product summed left to right, in the order the Spark version of the
    generator summed it: the same rows to the last bit."""
    total = left[:, 0] * right[:, 0]
    for j in range(1, left.shape[1]):
        total = total + left[:, j] * right[:, j]
    return total


def _chosen(scores: list[np.ndarray], outside: np.ndarray) -> np.ndarray:
    """The first candidate of the best score, or -1 when the outside option is best."""
    stacked = np.stack(scores, axis=1)
    best = np.maximum(stacked.max(axis=1), outside)
    first = np.argmax(stacked == best[:, None], axis=1)
    return np.where(outside == best, -1, first).astype(np.int32)


def _lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """table[key], -1 for a key outside the table (as a left join finds nothing)."""
    inside = (keys >= 0) & (keys < len(table))
    return np.where(inside, table[np.where(inside, keys, 0)], -1)


def _dense(slots, keys: np.ndarray) -> np.ndarray:
    table = np.full(int(keys.max()) + 1 if len(keys) else 0, -1, dtype=np.int64)
    table[keys] = slots["title_idx"].to_numpy(np.int64)
    return table


def _popularity_keys(catalogue: Catalogue) -> np.ndarray:
    slots = catalogue.popularity_slots
    return popularity_key(
        slots["day"].to_numpy(np.int64),
        slots["region_idx"].to_numpy(np.int64),
        slots["slot"].to_numpy(np.int64),
    )


def _genre_keys(catalogue: Catalogue) -> np.ndarray:
    slots = catalogue.genre_slots
    return genre_key(
        slots["genre_idx"].to_numpy(np.int64),
        slots["pos"].to_numpy(np.int64),
        max(catalogue.genre_counts),
    )

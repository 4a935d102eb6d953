"""The hidden ground truth that drives the synthetic service: effect sizes, and the
title catalogue with its popularity over regions and days.

The catalogue is small (thousands to tens of thousands of titles), so it is drawn
with NumPy on the driver and handed to Spark as broadcast tables; everything per
member or per event is generated in Spark (see members.py and activity.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from feature_store.sources import (
    ARTWORK_STYLES,
    DAYPARTS,
    DEVICES,
    GENRES,
    KINDS,
    REGIONS,
    SEGMENTS,
)

LATENT_DIM = 8
POPULARITY_SLOTS = 2048  # resolution of popularity sampling per region and day
REGION_CODES = tuple(REGIONS)
REGION_WEIGHTS = (0.16, 0.11, 0.05, 0.07, 0.1, 0.08, 0.07, 0.06, 0.05, 0.09, 0.06, 0.04, 0.06)
GENRE_SEGMENT = tuple(
    next(i for i, members in enumerate(SEGMENTS.values()) if genre in members) for genre in GENRES
)
# Local-hour groups used for context effects (sources.DAYPARTS).
HOUR_GROUPS = tuple(DAYPARTS)


@dataclasses.dataclass(frozen=True)
class WorldParams:
    """Effect sizes of the hidden behaviour model. Saved beside the data as JSON."""

    taste_weight: float
    factor_weight: float
    popularity_weight: float
    outside_utility: float
    device_kind: list[list[float]]  # [device][kind] utility shift
    hour_genre: list[list[float]]  # [hour group][genre] utility shift
    artwork_appeal: list[list[float]]  # [segment][artwork style] utility shift
    completion_intercept: float
    completion_slope: float
    hazard_intercept: float
    hazard_engagement: float  # per unit of log engagement decline
    hazard_payment: float  # just after a payment failure, decaying
    hazard_basic_plan: float
    weekend_boost: float

    @classmethod
    def draw(cls, seed: int) -> WorldParams:
        """The effect sizes of the world of `seed` (the same seed, the same world)."""
        rng = np.random.default_rng([seed, 1])
        device_kind = np.zeros((len(DEVICES), len(KINDS)))
        device_kind[DEVICES.index("tv"), KINDS.index("movie")] = 0.6
        device_kind[DEVICES.index("mobile"), KINDS.index("series")] = 0.5
        device_kind[DEVICES.index("mobile"), KINDS.index("movie")] = -0.6
        device_kind[DEVICES.index("tablet"), KINDS.index("series")] = 0.2
        hour_genre = rng.normal(0.0, 0.15, (len(HOUR_GROUPS), len(GENRES)))
        for genre, group, shift in (
            ("kids", "midday", 0.9),
            ("animation", "midday", 0.6),
            ("family", "evening", 0.3),
            ("horror", "night", 0.9),
            ("thriller", "night", 0.6),
            ("comedy", "midday", 0.5),
            ("documentary", "morning", 0.5),
            ("drama", "evening", 0.4),
            ("kids", "night", -1.0),
        ):
            hour_genre[HOUR_GROUPS.index(group), GENRES.index(genre)] += shift
        appeal = rng.normal(0.0, 0.35, (len(SEGMENTS), len(ARTWORK_STYLES)))
        # A few strong, recognisable preferences on top of the noise.
        appeal[list(SEGMENTS).index("thrill_seekers"), ARTWORK_STYLES.index("action_shot")] += 0.8
        appeal[list(SEGMENTS).index("drama_romance"), ARTWORK_STYLES.index("close_up")] += 0.8
        appeal[list(SEGMENTS).index("kids"), ARTWORK_STYLES.index("bright")] += 1.0
        appeal[list(SEGMENTS).index("dark_mystery"), ARTWORK_STYLES.index("dark")] += 0.8
        return cls(
            taste_weight=8.0,
            factor_weight=1.2,
            popularity_weight=0.25,
            outside_utility=0.8,
            device_kind=device_kind.round(4).tolist(),
            hour_genre=hour_genre.round(4).tolist(),
            artwork_appeal=appeal.round(4).tolist(),
            completion_intercept=-0.6,
            completion_slope=0.9,
            hazard_intercept=-6.2,
            hazard_engagement=2.0,
            hazard_payment=2.5,
            hazard_basic_plan=0.4,
            weekend_boost=1.25,
        )


@dataclasses.dataclass(frozen=True)
class Catalogue:
    titles: pd.DataFrame  # one row per title, truth columns included
    title_regions: pd.DataFrame  # title x region popularity multiplier
    popularity_slots: pd.DataFrame  # (region_idx, day, slot) -> title_idx
    genre_slots: pd.DataFrame  # (genre_idx, pos) -> title_idx
    genre_counts: list[int]  # titles per genre


_WORDS_A = (
    "Silent",
    "Broken",
    "Golden",
    "Hidden",
    "Last",
    "Midnight",
    "Crimson",
    "Lost",
    "Electric",
    "Frozen",
    "Wild",
    "Secret",
    "Northern",
    "Paper",
    "Iron",
    "Velvet",
)
_WORDS_B = (
    "River",
    "Empire",
    "Garden",
    "Signal",
    "Harbor",
    "Kingdom",
    "Detective",
    "Voyage",
    "Orchard",
    "Circuit",
    "Summer",
    "Witness",
    "Lantern",
    "Frontier",
    "Ballad",
    "Tide",
)


def draw_catalogue(seed: int, n_titles: int, start: dt.date, days: int) -> Catalogue:
    """The title catalogue of ``seed``: every title with its hidden truth, its
    availability and popularity per region, and the tables activity samples titles from."""
    draws = _draw_titles(np.random.default_rng([seed, 2]), n_titles, days)
    titles = _titles_frame(draws, start)
    title_regions = _title_regions_frame(draws)
    weights = daily_popularity(titles, draws.region_mult * draws.available, start, days)
    return Catalogue(
        titles=titles,
        title_regions=title_regions,
        popularity_slots=_slots(weights),
        genre_slots=_genre_slots(draws.genre_matrix),
        genre_counts=[int(c) for c in (draws.genre_matrix > 0).sum(axis=0)],
    )


@dataclasses.dataclass(frozen=True)
class _TitleDraws:
    """Everything drawn per title (arrays indexed by title, [title, x] for matrices)."""

    primary: np.ndarray  # primary genre index
    genre_matrix: np.ndarray  # [title, genre]: 1 for the primary genre, 0.5 for extras
    genre_vec: np.ndarray  # genre_matrix rows normalised to sum 1
    kind: np.ndarray  # "movie" or "series"
    duration: np.ndarray  # minutes (of an episode, for series)
    episodes: np.ndarray  # 0 for movies
    cast_ids: np.ndarray  # [title, 5], of which the first cast_size are cast
    cast_size: np.ndarray
    cast_power: np.ndarray
    base_log_pop: np.ndarray
    quality: np.ndarray
    factors: np.ndarray  # [title, LATENT_DIM]
    release_day: np.ndarray  # days after the window's start (negative: back catalogue)
    available: np.ndarray  # [title, region]
    region_mult: np.ndarray  # [title, region] popularity multiplier
    local: np.ndarray  # a local production, popular at home
    home: np.ndarray  # home region index (meaningful for local titles)
    n_art: np.ndarray  # artwork variants
    art_styles: list[list[int]]
    names: list[str]


def _draw_titles(rng: np.random.Generator, n_titles: int, days: int) -> _TitleDraws:
    # One generator, drawn from step after step: reordering the steps (or the draws in
    # them) changes every generated lake.
    primary, genre_matrix, genre_vec = _draw_genres(rng, n_titles)
    kind, duration, episodes = _draw_formats(rng, n_titles)
    cast_ids, cast_size, cast_power = _draw_cast(rng, n_titles)
    base_log_pop, quality, factors = _draw_appeal(rng, genre_vec, kind, cast_power)
    release_day = _draw_release_days(rng, n_titles, days)
    available, region_mult, local, home = _draw_regions(rng, n_titles)
    n_art = rng.integers(3, 7, n_titles)
    art_styles = [
        rng.permutation(len(ARTWORK_STYLES))[: n_art[i]].tolist() for i in range(n_titles)
    ]
    names = [
        f"{_WORDS_A[rng.integers(16)]} {_WORDS_B[rng.integers(16)]} {i}" for i in range(n_titles)
    ]
    return _TitleDraws(
        primary=primary,
        genre_matrix=genre_matrix,
        genre_vec=genre_vec,
        kind=kind,
        duration=duration,
        episodes=episodes,
        cast_ids=cast_ids,
        cast_size=cast_size,
        cast_power=cast_power,
        base_log_pop=base_log_pop,
        quality=quality,
        factors=factors,
        release_day=release_day,
        available=available,
        region_mult=region_mult,
        local=local,
        home=home,
        n_art=n_art,
        art_styles=art_styles,
        names=names,
    )


def _draw_genres(
    rng: np.random.Generator, n_titles: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A primary genre (guaranteeing every genre has titles) plus 0-2 more."""
    n_genres = len(GENRES)
    idx = np.arange(n_titles)
    primary = np.where(idx < n_genres, idx % n_genres, rng.integers(0, n_genres, n_titles))
    genre_matrix = np.zeros((n_titles, n_genres))
    genre_matrix[idx, primary] = 1.0
    extra = rng.integers(0, n_genres, (n_titles, 2))
    keep_extra = rng.random((n_titles, 2)) < np.array([0.6, 0.25])
    for column in range(2):
        genre_matrix[idx[keep_extra[:, column]], extra[keep_extra[:, column], column]] = 0.5
    genre_vec = genre_matrix / genre_matrix.sum(axis=1, keepdims=True)
    return primary, genre_matrix, genre_vec


def _draw_formats(
    rng: np.random.Generator, n_titles: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Movie or series, the running time, and a series' episodes."""
    kind = np.where(rng.random(n_titles) < 0.6, "movie", "series")
    duration = np.where(
        kind == "movie",
        np.clip(rng.normal(105, 20, n_titles), 70, 200),
        np.clip(rng.normal(45, 12, n_titles), 20, 70),
    ).astype(int)
    episodes = np.where(kind == "series", rng.integers(6, 60, n_titles), 0)
    return kind, duration, episodes


def _draw_cast(
    rng: np.random.Generator, n_titles: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast from a pool with Zipf-like star power; stars make titles popular."""
    pool = max(50, n_titles // 2)
    star_power = rng.pareto(2.0, pool)
    cast_size = rng.integers(3, 6, n_titles)
    cast_ids = rng.integers(0, pool, (n_titles, 5))
    cast_power = np.array(
        [star_power[cast_ids[i, : cast_size[i]]].mean() for i in range(n_titles)]
    )  # per title, tiny
    return cast_ids, cast_size, cast_power


def _draw_appeal(
    rng: np.random.Generator, genre_vec: np.ndarray, kind: np.ndarray, cast_power: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Base log popularity (genre, stars, series, noise), quality and latent factors."""
    n_titles = len(kind)
    genre_appeal = rng.normal(0.0, 0.4, len(GENRES))
    base_log_pop = (
        genre_vec @ genre_appeal
        + 0.6 * np.log1p(cast_power)
        + np.where(kind == "series", 0.2, 0.0)
        + rng.normal(0.0, 1.0, n_titles)
    )
    quality = rng.normal(0.0, 0.5, n_titles)
    factors = rng.normal(0.0, 1.0 / np.sqrt(LATENT_DIM), (n_titles, LATENT_DIM))
    return base_log_pop, quality, factors


def _draw_release_days(rng: np.random.Generator, n_titles: int, days: int) -> np.ndarray:
    """Most titles are back catalogue; some premiere during the window, a few just
    after it (known to the catalogue before release)."""
    return np.where(
        rng.random(n_titles) < 0.9,
        -rng.integers(30, 3650, n_titles),
        rng.integers(0, days + 14, n_titles),
    )


def _draw_regions(
    rng: np.random.Generator, n_titles: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Regional availability (every title somewhere) and taste: local productions are
    far more popular at home."""
    idx = np.arange(n_titles)
    n_regions = len(REGION_CODES)
    available = rng.random((n_titles, n_regions)) < 0.88
    available[idx, rng.integers(0, n_regions, n_titles)] = True
    region_mult = np.exp(rng.normal(0.0, 0.4, (n_titles, n_regions)))
    local = rng.random(n_titles) < 0.2
    home = rng.integers(0, n_regions, n_titles)
    region_mult[idx[local], home[local]] *= 4.0
    return available, region_mult, local, home


def _titles_frame(draws: _TitleDraws, start: dt.date) -> pd.DataFrame:
    """One row per title, truth columns included."""
    idx = np.arange(len(draws.kind))
    n_regions = len(REGION_CODES)
    region_mask = (draws.available * (1 << np.arange(n_regions))).sum(axis=1)
    title_ids = [f"tt{i:07d}" for i in idx]
    return pd.DataFrame(
        {
            "title_idx": idx.astype("int32"),
            "title_id": title_ids,
            "name": draws.names,
            "kind": draws.kind,
            "kind_idx": np.where(draws.kind == "movie", 0, 1).astype("int32"),
            "genres": [[GENRES[g] for g in np.flatnonzero(row)] for row in draws.genre_matrix],
            "primary_genre_idx": draws.primary.astype("int32"),
            "genre_vec": list(draws.genre_vec),
            "factors": list(draws.factors),
            "cast": [[f"p{c:06d}" for c in draws.cast_ids[i, : draws.cast_size[i]]] for i in idx],
            "cast_power": draws.cast_power,
            "release_day": draws.release_day.astype("int32"),
            "release_date": [start + dt.timedelta(days=int(r)) for r in draws.release_day],
            "duration_minutes": draws.duration.astype("int32"),
            "episodes": draws.episodes.astype("int32"),
            "region_mask": region_mask.astype("int64"),
            "available_regions": [
                [REGION_CODES[r] for r in np.flatnonzero(a)] for a in draws.available
            ],
            "home_region": np.where(draws.local, np.array(REGION_CODES)[draws.home], None),
            "artwork_ids": [[f"{title_ids[i]}-a{k}" for k in range(draws.n_art[i])] for i in idx],
            "artwork_styles": draws.art_styles,
            "base_log_pop": draws.base_log_pop,
            "quality": draws.quality,
        }
    )


def _title_regions_frame(draws: _TitleDraws) -> pd.DataFrame:
    """Title x region: availability and popularity multiplier."""
    n_titles, n_regions = draws.available.shape
    return pd.DataFrame(
        {
            "title_idx": np.repeat(np.arange(n_titles), n_regions).astype("int32"),
            "region": np.tile(np.array(REGION_CODES), n_titles),
            "available": draws.available.ravel(),
            "popularity_multiplier": draws.region_mult.ravel(),
        }
    )


def daily_popularity(
    titles: pd.DataFrame, region_weight: np.ndarray, start: dt.date, days: int
) -> np.ndarray:
    """Expected share of attention: [region, day, title]. Weekly seasonality (movies
    and kids titles gain at weekends), a release-day spike decaying over a week, and
    nothing before release."""
    day = np.arange(days)[:, None]
    release = titles["release_day"].to_numpy()[None, :]
    age = day - release
    spike = np.where(age >= 0, 1.0 + 5.0 * np.exp(-np.maximum(age, 0) / 7.0), 0.0)
    weekday = np.array([(start + dt.timedelta(days=int(d))).weekday() for d in range(days)])
    weekend = (weekday >= 4)[:, None]  # Friday to Sunday
    movie = (titles["kind"] == "movie").to_numpy()[None, :]
    kids = titles["genres"].map(lambda g: "kids" in g or "animation" in g).to_numpy()[None, :]
    season = 1.0 + weekend * (0.3 * movie + 0.4 * kids)
    base = np.exp(titles["base_log_pop"].to_numpy())[None, :]
    per_day = base * spike * season  # [day, title]
    return region_weight.T[:, None, :] * per_day[None, :, :]  # [region, day, title]


def _slots(weights: np.ndarray) -> pd.DataFrame:
    """Popularity sampling table: slot s of (region, day) holds the title whose
    cumulative share covers (s + 0.5) / SLOTS, so a uniform slot is a popularity draw."""
    n_regions, days, _ = weights.shape
    cumulative = np.cumsum(weights, axis=2)
    cumulative /= cumulative[:, :, -1:]
    points = (np.arange(POPULARITY_SLOTS) + 0.5) / POPULARITY_SLOTS
    title = np.stack(
        [np.searchsorted(cumulative[r, d], points) for r in range(n_regions) for d in range(days)]
    )
    return pd.DataFrame(
        {
            "region_idx": np.repeat(np.arange(n_regions), days * POPULARITY_SLOTS).astype("int32"),
            "day": np.tile(np.repeat(np.arange(days), POPULARITY_SLOTS), n_regions).astype("int32"),
            "slot": np.tile(np.arange(POPULARITY_SLOTS), n_regions * days).astype("int32"),
            "title_idx": title.ravel().astype("int32"),
        }
    )


def _genre_slots(genre_matrix: np.ndarray) -> pd.DataFrame:
    rows = [
        (g, pos, int(t))
        for g in range(genre_matrix.shape[1])
        for pos, t in enumerate(np.flatnonzero(genre_matrix[:, g]))
    ]
    return pd.DataFrame(rows, columns=["genre_idx", "pos", "title_idx"]).astype("int32")

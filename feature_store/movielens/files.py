"""Loaders for the MovieLens data sets in their published layouts.

``ml-100k``, ``ml-1m``, ``ml-latest-small`` and the other ``ml-latest*`` / ``ml-25m`` style
folders. Every loader returns pandas frames with the ratings in file order, which the stratified
split depends on: ``ratings`` (``user_id``, ``item_id``, ``rating``, ``timestamp``),
``items`` (``item_id``, ``title``, ``genres``) and, for the ``ml-latest`` layout only,
``tags``. A missing file or a malformed line raises :class:`MovieLensFormatError` naming
the file, the line number and the offending text. The file formats and column types:
docs/models.md.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

FORMATS = ("ml-100k", "ml-1m", "ml-latest-small")

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]

# ml-100k's genre flags, in column order, for a folder without u.genre.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
NO_GENRES = {"(no genres listed)", "unknown", ""}


class MovieLensFormatError(ValueError):
    """A MovieLens folder is missing a file or holds a line that does not parse."""


@dataclass(frozen=True)
class MovieLensData:
    """One MovieLens data set: ratings in file order, item metadata, optional tags.
    ``items`` is None only for a ratings file read without its folder's metadata."""

    ratings: pd.DataFrame
    items: pd.DataFrame | None
    tags: pd.DataFrame | None = None


@dataclass(frozen=True)
class _Layout:
    ratings_file: str
    sep: str
    header: list[str] | None
    encoding: str
    items_file: str


_LAYOUTS = {
    "ml-100k": _Layout("u.data", "\t", None, "latin-1", "u.item"),
    "ml-1m": _Layout("ratings.dat", "::", None, "latin-1", "movies.dat"),
    "ml-latest-small": _Layout(
        "ratings.csv", ",", ["userId", "movieId", "rating", "timestamp"], "utf-8", "movies.csv"
    ),
}


def load_movielens(path: str | Path, fmt: str) -> MovieLensData:
    """Load the MovieLens folder at ``path`` in format ``fmt`` (one of :data:`FORMATS`).

    ``path`` is the folder holding the files, or its parent when the files sit in a
    sub-folder named like the format (``DIR/ml-100k/u.data``).
    """
    layout = _layout(fmt)
    folder = _folder(path, fmt, layout.ratings_file)
    return MovieLensData(
        ratings=read_ratings(folder / layout.ratings_file, fmt),
        items=read_items(folder, fmt),
        tags=read_tags(folder),
    )


def load_ratings_file(file: str | Path, fmt: str) -> MovieLensData:
    """A ratings file laid out as format ``fmt``'s (``u.data``, ``u1.base``, ``ratings.dat``,
    ``ratings.csv`` or any file of that layout), with the title metadata and tags of its
    folder when they are there (``items`` is None otherwise)."""
    layout = _layout(fmt)
    file = Path(file)
    folder = file.parent
    items = read_items(folder, fmt) if (folder / layout.items_file).is_file() else None
    return MovieLensData(ratings=read_ratings(file, fmt), items=items, tags=read_tags(folder))


def read_ratings(file: Path, fmt: str) -> pd.DataFrame:
    """user_id, item_id, rating and timestamp from a ratings file in format `fmt`'s layout."""
    layout = _layout(fmt)
    rows = _read_delimited(file, layout.sep, 4, header=layout.header, encoding=layout.encoding)
    return _ratings(rows, file)


def read_items(folder: Path, fmt: str) -> pd.DataFrame:
    """item_id, title and genres from the format's metadata file in ``folder``."""
    if fmt == "ml-100k":
        file = folder / "u.item"
        genre_names = _ml100k_genres(folder)
        rows = _read_delimited(file, "|", 5 + len(genre_names), encoding="latin-1")
        flags = rows.iloc[:, 5:].to_numpy()
        genres = []
        for line, row in enumerate(flags):
            if not set(row) <= {"0", "1"}:
                raise _bad_line(file, rows.index[line], "genre flags must be 0 or 1")
            genres.append([g for g, f in zip(genre_names, row, strict=True) if f == "1"])
        return _items(_integer(rows, 0, file, "movie id"), rows[1], genres)
    if fmt == "ml-1m":
        file = folder / "movies.dat"
        rows = _read_delimited(file, "::", 3, encoding="latin-1")
        genres = [_split_genres(g) for g in rows[2]]
        return _items(_integer(rows, 0, file, "MovieID"), rows[1], genres)
    file = folder / "movies.csv"
    rows = _read_delimited(file, ",", 3, header=["movieId", "title", "genres"])
    genres = [_split_genres(g) for g in rows[2]]
    return _items(_integer(rows, 0, file, "movieId"), rows[1], genres)


def read_tags(folder: Path) -> pd.DataFrame | None:
    """user_id, item_id, tag from ``tags.csv`` (the ml-latest layout) if the folder has it."""
    file = folder / "tags.csv"
    if not file.is_file():
        return None
    t = _read_delimited(file, ",", 4, header=["userId", "movieId", "tag", "timestamp"])
    return pd.DataFrame(
        {
            "user_id": _integer(t, 0, file, "userId"),
            "item_id": _integer(t, 1, file, "movieId"),
            "tag": t[2].astype(str).to_numpy(),
        }
    )


def _layout(fmt: str) -> _Layout:
    if fmt not in _LAYOUTS:
        raise MovieLensFormatError(
            f"unknown MovieLens format {fmt!r} (known: {', '.join(FORMATS)})"
        )
    return _LAYOUTS[fmt]


# -- parsing helpers ------------------------------------------------------------------------


def _folder(path: str | Path, fmt: str, marker: str) -> Path:
    base = Path(path)
    if not base.is_dir():
        raise MovieLensFormatError(f"{base}: MovieLens folder not found")
    for candidate in (base, base / fmt):
        if (candidate / marker).is_file():
            return candidate
    raise MovieLensFormatError(
        f"{base}: {marker} not found (format {fmt} expects {marker} in this folder or in {fmt}/)"
    )


def _read_delimited(
    file: Path,
    sep: str,
    n_fields: int,
    *,
    header: list[str] | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """All fields as strings, one row per line; the index is the 1-based line number."""
    if not file.is_file():
        raise MovieLensFormatError(f"{file}: file not found")
    try:
        text = file.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise MovieLensFormatError(f"{file}: not {encoding} text ({exc})") from None
    lines = text.splitlines()
    first = 0
    if header is not None:
        if not lines or [h.strip() for h in lines[0].split(sep)] != header:
            found = lines[0] if lines else "an empty file"
            raise MovieLensFormatError(
                f"{file}: line 1 should be the header {sep.join(header)!r}, found {found!r}"
            )
        first = 1
    numbered = [(i + 1, line) for i, line in enumerate(lines) if i >= first and line.strip()]
    if sep == ",":
        fields = list(csv.reader([line for _, line in numbered]))
        if len(fields) != len(numbered):
            raise MovieLensFormatError(f"{file}: a quoted field spans lines; not a MovieLens file")
    else:
        fields = [line.split(sep) for _, line in numbered]
    for (number, line), row in zip(numbered, fields, strict=True):
        if len(row) != n_fields:
            raise MovieLensFormatError(
                f"{file}: line {number}: expected {n_fields} fields separated by {sep!r}, "
                f"found {len(row)}: {line!r}"
            )
    return pd.DataFrame(fields, index=[n for n, _ in numbered], columns=range(n_fields))


def _bad_line(file: Path, number: int, why: str) -> MovieLensFormatError:
    return MovieLensFormatError(f"{file}: line {number}: {why}")


def _numeric(rows: pd.DataFrame, col: int, file: Path, name: str, *, integer: bool) -> pd.Series:
    values = pd.to_numeric(rows[col].str.strip(), errors="coerce")
    bad = values.isna()
    if integer:
        bad |= values.notna() & (values % 1 != 0)
    if bad.any():
        number = int(bad.idxmax())
        raise _bad_line(file, number, f"{name} is not a number: {rows.at[number, col]!r}")
    return values.astype("int64" if integer else "float64")


def _integer(rows: pd.DataFrame, col: int, file: Path, name: str) -> pd.Series:
    return _numeric(rows, col, file, name, integer=True).reset_index(drop=True)


def _ratings(rows: pd.DataFrame, file: Path) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": _integer(rows, 0, file, "user id"),
            "item_id": _integer(rows, 1, file, "item id"),
            "rating": _numeric(rows, 2, file, "rating", integer=False).reset_index(drop=True),
            "timestamp": _integer(rows, 3, file, "timestamp"),
        }
    )


def _ml100k_genres(folder: Path) -> list[str]:
    file = folder / "u.genre"
    if not file.is_file():
        return list(ML100K_GENRES)
    rows = _read_delimited(file, "|", 2, encoding="latin-1")
    order = _integer(rows, 1, file, "genre index")
    return [name for _, name in sorted(zip(order, rows[0], strict=True))]


def _split_genres(text: str) -> list[str]:
    return [g for g in text.strip().split("|") if g not in NO_GENRES]


def _items(item_ids: pd.Series, titles: pd.Series, genres: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": item_ids.to_numpy(),
            "title": titles.astype(str).to_numpy(),
            "genres": [[g for g in gs if g not in NO_GENRES] for gs in genres],
        }
    )

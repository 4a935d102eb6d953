"""MovieLens loaders on tiny files written in each published layout (no real data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from feature_store.movielens.files import MovieLensFormatError, load_movielens

EXPECTED_RATINGS = pd.DataFrame(
    {
        "user_id": pd.Series([2, 1, 1], dtype="int64"),
        "item_id": pd.Series([10, 10, 20], dtype="int64"),
        "rating": pd.Series([4.0, 3.5, 5.0], dtype="float64"),
        "timestamp": pd.Series([881250949, 881250000, 881251000], dtype="int64"),
    }
)


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding=encoding)
    return folder


def ml100k(folder: Path) -> Path:
    write(folder, "u.data", "2\t10\t4\t881250949\n1\t10\t3.5\t881250000\n1\t20\t5\t881251000\n")
    flags_10 = "|".join(
        ["0", "0", "0", "1", "1", "1"] + ["0"] * 13
    )  # Animation, Children's, Comedy
    flags_20 = "|".join(["1"] + ["0"] * 18)  # unknown -> no genres
    write(
        folder,
        "u.item",
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{flags_10}\n"
        f"20|Café Society (1995)|01-Jan-1995||http://y|{flags_20}\n",
        encoding="latin-1",
    )
    return folder


def test_ml100k(tmp_path):
    data = load_movielens(ml100k(tmp_path / "ml-100k"), "ml-100k")
    pdt.assert_frame_equal(data.ratings, EXPECTED_RATINGS)
    assert data.items.to_dict("list") == {
        "item_id": [10, 20],
        "title": ["Toy Story (1995)", "Café Society (1995)"],
        "genres": [["Animation", "Children's", "Comedy"], []],
    }
    assert data.tags is None
    # the parent folder works too
    assert len(load_movielens(tmp_path, "ml-100k").ratings) == 3


def test_ml1m(tmp_path):
    folder = write(
        tmp_path,
        "ratings.dat",
        "2::10::4::881250949\n1::10::3.5::881250000\n1::20::5::881251000\n",
    )
    write(
        folder,
        "movies.dat",
        "10::Toy Story (1995)::Animation|Children's|Comedy\n20::Café (1995)::Drama\n",
        encoding="latin-1",
    )
    data = load_movielens(folder, "ml-1m")
    pdt.assert_frame_equal(data.ratings, EXPECTED_RATINGS)
    assert data.items["genres"].tolist() == [["Animation", "Children's", "Comedy"], ["Drama"]]
    assert data.items["title"].tolist()[1] == "Café (1995)"


def ml_latest(folder: Path) -> Path:
    write(
        folder,
        "ratings.csv",
        "userId,movieId,rating,timestamp\n2,10,4.0,881250949\n1,10,3.5,881250000\n"
        "1,20,5.0,881251000\n",
    )
    write(
        folder,
        "movies.csv",
        'movieId,title,genres\n10,"American President, The (1995)",Comedy|Drama|Romance\n'
        "20,Unknown (2000),(no genres listed)\n",
    )
    write(folder, "tags.csv", "userId,movieId,tag,timestamp\n2,10,politics,1445714994\n")
    return folder


def test_ml_latest_small(tmp_path):
    data = load_movielens(ml_latest(tmp_path), "ml-latest-small")
    pdt.assert_frame_equal(data.ratings, EXPECTED_RATINGS)
    assert data.items.to_dict("list") == {
        "item_id": [10, 20],
        "title": ["American President, The (1995)", "Unknown (2000)"],
        "genres": [["Comedy", "Drama", "Romance"], []],
    }
    pdt.assert_frame_equal(
        data.tags, pd.DataFrame({"user_id": [2], "item_id": [10], "tag": ["politics"]})
    )


def test_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(MovieLensFormatError, match="unknown MovieLens format"):
        load_movielens(tmp_path, "ml-20m")
    with pytest.raises(MovieLensFormatError, match="folder not found"):
        load_movielens(tmp_path / "nowhere", "ml-1m")
    with pytest.raises(MovieLensFormatError, match=r"ratings\.csv not found"):
        load_movielens(tmp_path, "ml-latest-small")

    folder = ml_latest(tmp_path / "bad-value")
    write(folder, "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,5\n1,x,4.0,6\n")
    with pytest.raises(MovieLensFormatError, match=r"ratings\.csv: line 3: item id .*'x'"):
        load_movielens(folder, "ml-latest-small")

    folder = ml_latest(tmp_path / "bad-fields")
    write(folder, "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0\n")
    with pytest.raises(MovieLensFormatError, match=r"line 2: expected 4 fields .* found 3"):
        load_movielens(folder, "ml-latest-small")

    folder = ml_latest(tmp_path / "bad-header")
    write(folder, "ratings.csv", "user,movie,rating,timestamp\n1,10,4.0,5\n")
    with pytest.raises(MovieLensFormatError, match="line 1 should be the header"):
        load_movielens(folder, "ml-latest-small")

    folder = ml100k(tmp_path / "no-items")
    (folder / "u.item").unlink()
    with pytest.raises(MovieLensFormatError, match=r"u\.item: file not found"):
        load_movielens(folder, "ml-100k")

    folder = write(tmp_path / "one-m", "ratings.dat", "1::10::4::5\n1::10::4.5.1::6\n")
    with pytest.raises(MovieLensFormatError, match=r"ratings\.dat: line 2: rating"):
        load_movielens(folder, "ml-1m")

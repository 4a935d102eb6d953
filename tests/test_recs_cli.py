"""`marquee recs benchmark-movielens` and `marquee recs recommend` on tiny MovieLens files."""

from __future__ import annotations

import json

import pandas as pd
from test_jobs import common
from test_recs_benchmark import synthetic_movielens

from jobs.cli import main as cli_main


def test_recommend_writes_top_k_unseen_items_per_user(spark, tmp_path, capsys):
    folder = synthetic_movielens(tmp_path / "ml-latest-small")
    out = tmp_path / "out" / "recs.csv"
    code = cli_main(
        [
            "recs",
            "recommend",
            *common(tmp_path),
            "--ratings",
            str(folder / "ratings.csv"),
            "--format",
            "ml-latest-small",
            "--k",
            "5",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    recs = pd.read_csv(out)
    assert list(recs.columns) == ["user_id", "item_id", "rank"]
    ratings = pd.read_csv(folder / "ratings.csv")
    assert sorted(recs["user_id"].unique()) == sorted(ratings["userId"].unique())
    assert recs.groupby("user_id")["rank"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 60
    seen = set(zip(ratings["userId"], ratings["movieId"], strict=True))
    assert not seen & set(zip(recs["user_id"], recs["item_id"], strict=True))
    # the taste groups are learnt: most of a user's top 5 come from their own group
    own_group = (recs["user_id"] % 2 == 0) == (recs["item_id"] < 100)
    assert own_group.mean() > 0.8
    assert "300 recommendations for 60 of 60 users" in capsys.readouterr().out


def test_recommend_without_metadata_and_with_a_bad_file(spark, tmp_path, capsys):
    folder = synthetic_movielens(tmp_path / "data")
    (folder / "movies.csv").unlink()
    ratings = folder / "ratings.csv"
    ml100k = tmp_path / "u1.base"  # the same rows in ml-100k's tab-separated layout
    body = pd.read_csv(ratings)
    body.to_csv(ml100k, sep="\t", header=False, index=False)
    out = tmp_path / "recs.csv"
    args = [*common(tmp_path), "--format", "ml-100k", "--k", "3", "--out", str(out)]
    assert cli_main(["recs", "recommend", "--ratings", str(ml100k), *args]) == 0
    assert "without the content model" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 180

    assert cli_main(["recs", "recommend", "--ratings", str(ratings), *args]) == 2
    err = capsys.readouterr().err
    assert f"{ratings}: line 1: expected 4 fields separated by '\\t'" in err


def test_benchmark_movielens_prints_the_table_and_writes_json(spark, tmp_path, capsys):
    synthetic_movielens(tmp_path / "ml-latest-small")
    out = tmp_path / "bench.json"
    code = cli_main(
        [
            "recs",
            "benchmark-movielens",
            *common(tmp_path),
            "--path",
            str(tmp_path),
            "--format",
            "ml-latest-small",
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result["models"]) == {"popularity", "content", "als", "ease", "ensemble"}
    ensemble = result["models"]["ensemble"]["metrics"]["ndcg@10"]
    (row,) = [line for line in printed.splitlines() if line.startswith("ensemble ")]
    assert f"{ensemble:.4f}" in row
    assert printed.splitlines()[-1] == f"result written to {out}"
    assert result["protocol"]["split"]["seed"] == 42

"""The MovieLens benchmark end to end on a tiny synthetic ml-latest-small folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from feature_store.movielens.benchmark import benchmark_movielens, format_table
from feature_store.movielens.files import load_movielens
from feature_store.recs.model import train_ensemble


def synthetic_movielens(folder: Path, seed: int = 5) -> Path:
    """60 users in two taste groups of 20 titles each; each rates 12 titles of their group
    and 2 of the other."""
    rng = np.random.default_rng(seed)
    groups = [list(range(1, 21)), list(range(101, 121))]
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, 61):
        own, other = groups[user % 2], groups[1 - user % 2]
        items = [*rng.choice(own, 12, replace=False), *rng.choice(other, 2, replace=False)]
        for item in items:
            lines.append(f"{user},{item},{rng.integers(1, 6)}.0,{rng.integers(10**9)}")
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    movies = ["movieId,title,genres"]
    movies += [f"{i},Comedy {i} (1995),Comedy" for i in groups[0]]
    movies += [f"{i},Horror {i} (2005),Horror|Thriller" for i in groups[1]]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    return folder


def test_benchmark_reports_every_model_and_prints(spark, tmp_path):
    folder = synthetic_movielens(tmp_path / "ml-latest-small")
    result = benchmark_movielens(
        spark,
        folder,
        "ml-latest-small",
        ease_grid=({"lambda_": 5.0}, {"lambda_": 20.0}),
        als_params={"rank": 4, "iterations": 3, "reg": 0.1},
        blend_step=0.5,
        normalisations=("zscore",),
    )
    assert list(result["models"]) == ["popularity", "content", "als", "ease", "ensemble"]
    for entry in result["models"].values():
        assert set(entry["metrics"]) == {"precision@10", "recall@10", "ndcg@10", "map@10", "map"}
        assert all(0.0 <= v <= 1.0 for v in entry["metrics"].values())
        assert entry["fit_seconds"] >= 0 and entry["recommend_seconds"] >= 0
    ndcg = {name: e["metrics"]["ndcg@10"] for name, e in result["models"].items()}
    assert ndcg["ease"] > ndcg["popularity"]  # the groups are there to be found
    counts = result["counts"]
    assert counts["ratings"] == 60 * 14
    assert counts["train_rows"] + counts["test_rows"] == counts["ratings"]
    assert [t["lambda"] for t in result["validation"]["ease"]] == [5.0, 20.0]
    assert sum(result["validation"]["blend"]["weights"].values()) == pytest.approx(1.0)

    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].startswith("MovieLens ml-latest-small: 60 users, 40 items, 840 ratings")
    assert lines[1].split() == [
        "model",
        "precision@10",
        "recall@10",
        "ndcg@10",
        "map@10",
        "fit",
        "s",
        "recommend",
        "s",
    ]
    assert [line.split()[0] for line in lines[3:8]] == list(result["models"])
    assert f"{ndcg['ease']:.4f}" in lines[6]


def test_choices_are_made_on_the_mean_over_validation_folds(spark, tmp_path):
    data = load_movielens(synthetic_movielens(tmp_path / "ml-latest-small"), "ml-latest-small")
    options = {
        "ease_grid": ({"lambda_": 5.0}, {"lambda_": 20.0}),
        "als_params": {"rank": 4, "iterations": 3, "reg": 0.1},
        "blend_step": 0.5,
        "normalisations": ("zscore", "rank"),
    }
    one = train_ensemble(spark, data.ratings, data.items, **options).validation
    two = train_ensemble(spark, data.ratings, data.items, validation_folds=2, **options)
    two = two.validation
    assert (one["folds"], two["folds"]) == (1, 2)
    # fold 0 is the seed-42 split of a single fold: same EASE trials, and with the same
    # EASE chosen, the same blend trials
    by_trial = {
        (t["normalisation"], str(t["weights"])): t["ndcg"] for t in one["blend"]["top_trials"]
    }
    for trial in two["blend"]["top_trials"]:
        assert len(trial["fold_ndcg"]) == 2
        assert trial["ndcg"] == pytest.approx(np.mean(trial["fold_ndcg"]))
        key = (trial["normalisation"], str(trial["weights"]))
        if key in by_trial and _chosen_lambda(one) == _chosen_lambda(two):
            assert trial["fold_ndcg"][0] == pytest.approx(by_trial[key])
    # the choice is the best mean, not the best of the first fold
    best = two["blend"]["top_trials"][0]
    assert (two["blend"]["weights"], two["blend"]["normalisation"]) == (
        best["weights"],
        best["normalisation"],
    )
    assert best["ndcg"] == max(t["ndcg"] for t in two["blend"]["top_trials"])
    assert two["ease"][0]["ndcg"] != pytest.approx(one["ease"][0]["ndcg"])


def test_a_later_window_chooses_the_settings_of_models_fitted_on_every_row(spark, tmp_path):
    data = load_movielens(synthetic_movielens(tmp_path / "ml-latest-small"), "ml-latest-small")
    earlier = data.ratings[data.ratings["timestamp"] < data.ratings["timestamp"].quantile(0.8)]
    later = data.ratings.drop(earlier.index)
    seen = earlier.set_index(["user_id", "item_id"]).index
    holdout = later[~later.set_index(["user_id", "item_id"]).index.isin(seen)]
    options = {
        "ease_grid": ({"lambda_": 5.0}, {"lambda_": 20.0}),
        "als_params": {"rank": 4, "iterations": 3, "reg": 0.1},
        "blend_step": 0.5,
    }
    trained = train_ensemble(spark, earlier, data.items, holdout=holdout, **options)
    validation = trained.validation
    assert validation["on"] == "the later window"
    assert validation["rows"] == len(holdout)
    # no split and no refit: every component was fitted on all the earlier rows, once
    n_users = earlier["user_id"].nunique()
    assert {m.data.n_users for m in trained.components.values()} == {n_users}
    assert set(trained.fit_seconds) == set(trained.components)
    # the EASE kept is the grid's best on the later window, fitted on every earlier row
    assert trained.components["ease"].lambda_ == _chosen_lambda(validation)
    # the component nDCG is each kept model's on the later window
    ease_trial = max(validation["ease"], key=lambda trial: trial["ndcg"])
    assert validation["component_ndcg"]["ease"] == pytest.approx(ease_trial["ndcg"])


def _chosen_lambda(validation: dict) -> float:
    return max(validation["ease"], key=lambda trial: trial["ndcg"])["lambda"]


def test_validation_folds_must_be_positive(spark):
    with pytest.raises(ValueError, match="validation_folds must be at least 1, not 0"):
        train_ensemble(spark, None, None, validation_folds=0)

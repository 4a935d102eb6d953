"""Benchmark: the artwork policies' off-policy estimates against the hidden truth.

1. Coverage: ``--seeds`` worlds generated with different seeds (uniform logging); in each,
   every policy trained and judged off-policy on the held-out days exactly as the job does
   (`artwork.steps.train_and_evaluate`), beside its true play rate on those impressions.
   Per estimator: the mean error (bias), its spread, and the share of 95% intervals that
   hold the true value.
2. Forward simulation: one larger world; every policy trained on the logged days, then
   serving the next ``--simulate-days`` day by day, learning from what it showed
   (`synthetic.artwork_sim`): cumulative regret against the oracle and true play rates.

Writes bench/results/artwork-<seeds>seeds-<UTC time>.json after each seed and at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_platform import with_state
from run_bench import machine, save_result

from feature_store import runtime
from feature_store.artwork import data
from feature_store.artwork.policies import MAX_VARIANTS
from feature_store.artwork.steps import ArtworkDataError, ArtworkSettings, train_and_evaluate
from feature_store.features.build import build_feature_range
from feature_store.features.retrieval import FeatureStoreReader
from feature_store.synthetic import GenerationSpec, generate_bronze
from feature_store.synthetic.artwork_sim import Day, simulate
from feature_store.synthetic.artwork_truth import artwork_ceiling, impression_truth

START = dt.date(2026, 3, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--accounts", type=int, default=1_500, help="per coverage world")
    parser.add_argument("--titles", type=int, default=150)
    parser.add_argument("--simulate-accounts", type=int, default=20_000)
    parser.add_argument("--simulate-titles", type=int, default=1_000)
    parser.add_argument("--simulate-days", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/marquee-bench-artwork"))
    args = parser.parse_args(argv)
    config = runtime.load(args)
    spark = runtime.session(config, args)
    result = {"benchmark": "artwork", "machine": machine(), "args": _jsonable(vars(args))}
    name = f"artwork-{args.seeds}seeds"
    coverage(spark, config, args, result, name)
    if args.simulate_days:
        result["simulation"] = forward_simulation(spark, config, args)
    print(f"results: {save_result(result, name)}")
    return 0


def _jsonable(values: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


# --- coverage ------------------------------------------------------------------------


COVERAGE_SETTINGS = ArtworkSettings(train_days=7, holdout_days=2, draws=64)


def coverage(spark, config, args, result: dict, name: str) -> None:
    """One world per seed; ``result["coverage"]`` rewritten (and saved) after each."""
    rows: list[dict] = []
    for seed in range(1, args.seeds + 1):
        started = time.perf_counter()
        world = with_state(config, args.work / "coverage")
        spec = _spec(seed, args.accounts, args.titles, COVERAGE_SETTINGS, extra_days=0)
        _world(spark, world, spec)
        reader = FeatureStoreReader(spark, world.lake, error=ArtworkDataError)
        run = train_and_evaluate(reader, spec.end_date, COVERAGE_SETTINGS)
        truth = artwork_ceiling(spark, world)(
            run.policies, run.titles, run.evaluation_rows, *run.holdout_window
        )
        for policy, estimates in run.estimates.items():
            for estimator, e in estimates.items():
                rows.append(
                    {"seed": seed, "policy": policy, "estimator": estimator,
                     "value": e.value, "low": e.low, "high": e.high, "truth": truth[policy],
                     "impressions": run.holdout_impressions}
                )  # fmt: skip
        summary = summarise(pd.DataFrame(rows))
        summary["seconds_last_seed"] = round(time.perf_counter() - started, 1)
        result["coverage"] = {"summary": summary, "rows": rows}
        save_result(result, name)
        print(f"[artwork] seed {seed}: {summary['seconds_last_seed']} s", flush=True)


def summarise(rows: pd.DataFrame) -> dict:
    """Per estimator (over every policy and seed) and per estimator x policy: the mean
    error, its standard deviation, and the share of intervals covering the truth."""
    rows = rows.assign(error=rows["value"] - rows["truth"])
    rows = rows.assign(covered=(rows["low"] <= rows["truth"]) & (rows["truth"] <= rows["high"]))

    def stats(group: pd.DataFrame) -> dict:
        return {
            "bias": round(float(group["error"].mean()), 6),
            "error_sd": round(float(group["error"].std(ddof=1)), 6) if len(group) > 1 else None,
            "coverage": round(float(group["covered"].mean()), 4),
            "n": len(group),
        }

    return {
        "seeds": int(rows["seed"].nunique()),
        "by_estimator": {e: stats(g) for e, g in rows.groupby("estimator")},
        "by_policy": {f"{p}.{e}": stats(g) for (p, e), g in rows.groupby(["policy", "estimator"])},
    }


def _spec(seed: int, accounts: int, titles: int, s: ArtworkSettings, extra_days: int):
    """A world whose history covers the policies' window after a day of warm-up and
    profile features' lookback, then ``extra_days`` to simulate."""
    days = 1 + s.train_days + s.holdout_days + extra_days
    return GenerationSpec(
        seed=seed, accounts=accounts, titles=titles, days=days, start_date=START,
        dirty_share=0.0, late_share=0.0, sessions_per_day=1.0,
    )  # fmt: skip


def _world(spark, config, spec: GenerationSpec) -> None:
    """Bronze straight from the generator and profile_daily weekly (the segments)."""
    generate_bronze(
        spark, config.lake, spec, pseudonymization_key=config.privacy.pseudonymization_key
    )
    dates = spec.dates[::7]
    report = build_feature_range(spark, config, dates, ("profile_daily",))
    if not report.ok:
        raise SystemExit(report.format_table())


# --- forward simulation -----------------------------------------------------------------


SIMULATION_SETTINGS = ArtworkSettings(train_days=14, holdout_days=1, draws=128)


def forward_simulation(spark, config, args) -> dict:
    """Trained on the logged days up to the simulation's first day, then each policy serves
    ``args.simulate_days`` days (learning from its own log)."""
    started = time.perf_counter()
    world = with_state(config, args.work / "simulation")
    s = SIMULATION_SETTINGS
    spec = _spec(0, args.simulate_accounts, args.simulate_titles, s, args.simulate_days)
    _world(spark, world, spec)
    reader = FeatureStoreReader(spark, world.lake, error=ArtworkDataError)
    first = START + dt.timedelta(days=1)
    last = first + dt.timedelta(days=s.train_days - 1)
    logged = data.usable(data.logged_impressions(reader, first, last)).cache()
    titles = pd.Index(sorted(r[0] for r in logged.select("title_id").distinct().collect()))
    counts, cells = data.counts(logged, titles), data.context_counts(logged)
    days = [
        _served_day(spark, world, reader, titles, last + dt.timedelta(days=k + 1))
        for k in range(args.simulate_days)
    ]
    trajectory = simulate(counts, cells, days, s, seed=1)
    regret = {p: trajectory.regret(p).round(2).tolist() for p in trajectory.expected}
    rates = {p: round(trajectory.play_rate(p), 5) for p in trajectory.expected}
    return {
        "accounts": args.simulate_accounts,
        "titles": args.simulate_titles,
        "logged_days": [first.isoformat(), last.isoformat()],
        "served_days": args.simulate_days,
        "impressions_per_day": trajectory.impressions,
        "cumulative_regret": regret,
        "true_play_rate": rates,
        "oracle_play_rate": round(trajectory.oracle_rate, 5),
        "contextual_regret_vs_epsilon_greedy": round(
            regret["contextual"][-1] / regret["epsilon_greedy"][-1], 4
        ),
        "contextual_share_of_oracle": round(rates["contextual"] / trajectory.oracle_rate, 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _served_day(spark, world, reader, titles: pd.Index, day: dt.date) -> Day:
    """The day's impressions (their contexts as the platform knows them) with the true
    play probability of each variant."""
    rows = data.collect(data.logged_impressions(reader, day, day))
    margin = dt.timedelta(days=1)
    truth = (
        impression_truth(spark, world.lake, day - margin, day + margin)
        .selectExpr("xxhash64(session_id) AS cluster", "title_id", "play_probability")
        .toPandas()
    )
    rows = rows.merge(truth, on=["cluster", "title_id"], how="inner", validate="1:1")
    p = np.zeros((len(rows), MAX_VARIANTS))
    for i, values in enumerate(rows["play_probability"]):
        p[i, : len(values)] = values
    key = pd.util.hash_array(rows["title_id"].to_numpy(dtype=object)).astype(np.int64)
    return Day(data.candidates(rows, titles), key, p)


if __name__ == "__main__":
    sys.exit(main())

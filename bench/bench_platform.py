"""Benchmark: the whole platform at one scale, from an empty lake, in one process.

The stages a deployment runs, with its jobs' library calls (no Airflow: a fixed cost):
generate, the history's feature backfills, per landing day the daily path (ingest, build,
verify, online features), the recommender, churn and the forecast (train, evaluate against
the hidden truth, register, batch outputs), promotion through the gates, publishing.
``--peers`` times single-node peers beside four stages on the same data (peers.py), under
``peers``, outside the stages' seconds.

Writes bench/results/platform-<accounts>x<days>d-<UTC time>.json after each stage: seconds,
rows and rows per second per stage, peak memory of the driver JVM and of Python, each
model's metrics beside its ceiling. The issue's scale: `--accounts 2000000 --titles 20000
--set spark.driver_memory=16g --peers`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peers
from run_bench import machine, save_result

from feature_store import runtime
from feature_store.config import Config
from feature_store.features.build import build_feature_range, build_features
from feature_store.features.online import ARTIFACT as ONLINE
from feature_store.features.verification import verify_recorded
from feature_store.ingest import ingest_date
from feature_store.publish import publish_all, publish_artifact
from feature_store.synthetic import GenerationSpec, demo


@dataclasses.dataclass
class Stage:
    """One timed stage: what it processed (``rows``) and anything else worth keeping."""

    rows: int = 0
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


class Bench:
    """The result being written: stages in order, peak memory, model metrics, and the
    peers timed beside them when ``peer_memory`` is given (DuckDB's memory limit)."""

    def __init__(self, spark, result: dict, name: str, *, peer_memory: str | None, work: Path):
        self.spark, self.result, self.name = spark, result, name
        self.peer_memory, self.work = peer_memory, work
        result["stages"] = {}

    def seconds(self, stage: str) -> float:
        return self.result["stages"][stage]["seconds"]

    def peer(self, name: str, measure: Callable[[], dict]) -> None:
        """Run ``measure`` (a peer beside a stage: see peers.py) when peers are on."""
        if self.peer_memory is None:
            return
        print(f"[platform] peer {name} ...", flush=True)
        figures = measure()
        self.result.setdefault("peers", {})[name] = figures
        ratios = {k: v for k, v in figures.items() if k.startswith("spark_over")}
        print(f"[platform] peer {name}: {ratios}", flush=True)
        self.save()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        stage = Stage()
        started = time.perf_counter()
        print(f"[platform] {name} ...", flush=True)
        yield stage
        seconds = time.perf_counter() - started
        self.result["stages"][name] = {
            "order": len(self.result["stages"]) + 1,  # the file's keys are sorted
            "seconds": round(seconds, 1),
            "rows": stage.rows,
            "rows_per_second": round(stage.rows / seconds, 1) if stage.rows else None,
            **stage.detail,
        }
        self.result["peak_memory_mib"] = peak_memory_mib(self.spark)
        print(f"[platform] {name}: {seconds:,.1f} s, {stage.rows:,} rows", flush=True)
        self.save()

    def save(self) -> Path:
        return save_result(self.result, self.name)


def peak_memory_mib(spark) -> dict[str, float | None]:
    """Peak resident memory of this Python process and of the Spark driver's JVM (its
    high-water mark from /proc; None when the JVM is not a child of this process)."""
    python = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gateway = getattr(spark.sparkContext._gateway, "proc", None)  # noqa: SLF001
    driver = None
    if gateway is not None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{gateway.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    driver = int(line.split()[1]) / 1024
    return {"python": round(python, 1), "driver_jvm": round(driver, 1) if driver else None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = runtime.load(args)
    state = Path(args.state or Path(config.paths.state_dir) / "bench-platform")
    config = with_state(config, state, empty=not args.models_only)
    spark = runtime.session(config, args)
    spec = GenerationSpec(
        seed=config.generator.seed,
        accounts=args.accounts,
        titles=args.titles,
        days=args.days,
        start_date=config.generator.start_date,
        dirty_share=config.generator.dirty_share,
        late_share=config.generator.late_share,
        sessions_per_day=args.sessions_per_day,
        history_days=args.days - args.landing_days,
    )
    result = {
        "benchmark": "platform",
        "machine": machine(),
        "spark": spark.version,
        "driver_memory": config.spark.driver_memory,
        "spec": {**dataclasses.asdict(spec), "start_date": str(spec.start_date)},
        "recs_validation": args.recs_validation,
        **({"models_only": f"on the lake in {state}, not from an empty one"}
           if args.models_only else {}),
    }  # fmt: skip
    kind = "platform-models" if args.models_only else "platform"
    bench = Bench(
        spark, result, f"{kind}-{spec.accounts}x{spec.days}d",
        peer_memory=args.peer_memory if args.peers else None,
        work=Path(config.paths.lake).parent / "peers",
    )  # fmt: skip
    started = time.perf_counter()
    ok = (run_models if args.models_only else run_platform)(bench, spark, config, spec)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"results: {bench.save()}")
    return 0 if ok else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--titles", type=int, default=2_000)
    parser.add_argument(
        "--days", type=int, default=70, help="days generated (the models need about 70)"
    )
    parser.add_argument("--landing-days", type=int, default=2, help="days through ingestion")
    parser.add_argument("--sessions-per-day", type=float, default=0.5)
    parser.add_argument(
        "--state", help="folder of the lake, MLflow and published files (emptied first)"
    )
    parser.add_argument("--peers", action="store_true", help="time single-node peers beside")
    parser.add_argument(
        "--recs-validation",
        choices=("later_days", "random_split"),
        default="later_days",
        help="how the recommender chooses its settings (train_recommender's validation)",
    )
    parser.add_argument("--peer-memory", default="8GB", help="DuckDB's memory limit")
    parser.add_argument(
        "--models-only",
        action="store_true",
        help="only the models, promotion and publishing, on the lake a stopped run of the "
        "same spec left in --state (a development aid: not a run from an empty lake)",
    )
    return parser.parse_args(argv)


def with_state(config: Config, state: Path, *, empty: bool = True) -> Config:
    """``config`` with the lake, MLflow and the published folder in ``state``, emptied
    first (every run starts from nothing, as on a new machine) unless not ``empty``."""
    if empty:
        shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True, exist_ok=True)
    paths = dataclasses.replace(
        config.paths,
        lake=str(state / "lake"),
        mlflow=str(state / "mlflow"),
        published=str(state / "published"),
    )
    return dataclasses.replace(config, paths=paths)


def run_platform(bench: Bench, spark, config: Config, spec: GenerationSpec) -> bool:
    """Every stage in the order a deployment runs them; False when one fails."""
    with bench.stage("generate") as stage:
        demo.generate_service(spark, config, spec)
        stage.rows = _generated_rows(spark, config)
    if not _history(bench, spark, config, spec):
        return False
    for day in spec.landing_dates:
        if not _daily(bench, spark, config, day):
            return False
    bench.peer(
        "point_in_time",
        lambda: peers.point_in_time(spark, config, bench.work / "pit", bench.peer_memory),
    )
    return run_models(bench, spark, config, spec)


def run_models(bench: Bench, spark, config: Config, spec: GenerationSpec) -> bool:
    """The models' stages, promotion and publishing, on a lake built by the stages before."""
    versions = _models(bench, spark, config, spec)
    _promote_and_publish(bench, spark, config, versions)
    return True


def _generated_rows(spark, config: Config) -> int:
    from feature_store import lake as lk
    from feature_store.sources import SOURCES

    lake = lk.Lake(config.lake)
    return sum(
        lk.read_table(spark, lake.bronze(s)).count()
        for s in SOURCES
        if lk.table_exists(spark, lake.bronze(s))
    )


def _history(bench: Bench, spark, config: Config, spec: GenerationSpec) -> bool:
    for tables, dates in demo.history_plan(spec):
        with bench.stage(f"history.{'+'.join(tables)}") as stage:
            report = build_feature_range(spark, config, dates, tables)
            stage.rows = sum(b.rows for b in report.builds)
            stage.detail["dates"] = len(dates)
        if not report.ok:
            print(report.format_table(), file=sys.stderr)
            return False
    return True


def _daily(bench: Bench, spark, config: Config, day: dt.date) -> bool:
    with bench.stage(f"daily.{day}.ingest") as stage:
        ingested = ingest_date(spark, config, day)
        stage.rows = sum(s.lines for s in ingested.sources)  # landing lines read
        stage.detail["bronze_rows"] = sum(s.bronze for s in ingested.sources)
    bench.peer(f"ingest.{day}", lambda: peers.ingest(
        spark, config, day, bench.seconds(f"daily.{day}.ingest"), bench.work / "ingest",
        bench.peer_memory,
    ))  # fmt: skip
    with bench.stage(f"daily.{day}.build") as stage:
        built = build_features(spark, config, day)
        stage.rows = sum(b.rows for b in built.builds)
    bench.peer(
        f"daily_build.{day}",
        lambda: peers.daily_build(spark, config, day, built, bench.peer_memory),
    )
    with bench.stage(f"daily.{day}.verify"):
        verdicts = list(verify_recorded(spark, config, [day], None))
    with bench.stage(f"daily.{day}.online") as stage:
        published = publish_artifact(spark, config, ONLINE, as_of=day)
        stage.rows = published.manifest["rows"]
    return ingested.committed and built.ok and all(v.ok for v in verdicts)


def _models(bench: Bench, spark, config: Config, spec: GenerationSpec) -> dict[str, str]:
    """Train, evaluate, register and write each model's batch outputs; the registered
    versions by model."""
    versions = {}
    for model, measure in (("recommender", _recommender), ("churn", _churn),
                           ("popularity_forecast", _forecast),
                           ("artwork_policy", _artwork)):  # fmt: skip
        version = measure(bench, spark, config, spec)
        if version:
            versions[model] = version
    return versions


def _recommender(bench: Bench, spark, config: Config, spec: GenerationSpec) -> str | None:
    from feature_store.recs.model import ALS_DEFAULTS
    from feature_store.recs.steps import (
        PLATFORM_ALS,
        score_profiles,
        similar_titles,
        train_recommender,
    )
    from feature_store.recs.tracking import EXPERIMENT, log_recommender_run
    from feature_store.synthetic.ceilings import recs_ceiling
    from feature_store.tracking import configure_mlflow

    as_of = spec.end_date - dt.timedelta(days=demo.RECS_LABEL_DAYS)
    with bench.stage("recommender.train_evaluate") as stage:
        run = train_recommender(
            spark, config, as_of, label_days=demo.RECS_LABEL_DAYS,
            ranker_days=demo.RECS_RANKER_DAYS, ceiling=recs_ceiling(spark, config),
            validation=bench.result["recs_validation"],
        )  # fmt: skip
        stage.rows = len(run.data.interactions)
        stage.detail["seconds_by_step"] = _tenths(run.seconds)
        stage.detail["final_fit_seconds"] = _tenths(run.trained.fit_seconds)
    bench.peer("als", lambda: peers.als(
        spark, run.data.interactions, {**ALS_DEFAULTS, **PLATFORM_ALS},
        run.trained.fit_seconds["als"],
    ))  # fmt: skip
    with bench.stage("recommender.register"):
        configure_mlflow(config, EXPERIMENT)
        version = log_recommender_run(run, k=10)
    with bench.stage("recommender.top50") as stage:
        stage.rows = score_profiles(spark, config, run)
    with bench.stage("recommender.similar_titles") as stage:
        stage.rows = similar_titles(spark, config, run)
    bench.result.setdefault("metrics", {})["recommender"] = run.evaluation
    return version


def _tenths(seconds: dict[str, float]) -> dict[str, float]:
    """Seconds by name, to a tenth, as the JSON reports every stage."""
    return {name: round(value, 1) for name, value in seconds.items()}


def _churn(bench: Bench, spark, config: Config, spec: GenerationSpec) -> str | None:
    from feature_store.churn.steps import score_accounts, train_churn
    from feature_store.churn.tracking import EXPERIMENT, log_churn_run
    from feature_store.synthetic.ceilings import churn_ceiling
    from feature_store.tracking import configure_mlflow

    with bench.stage("churn.train_evaluate") as stage:
        run = train_churn(
            spark, config, spec.end_date, every_days=demo.CHURN_EVERY_DAYS,
            max_train_snapshots=demo.churn_train_snapshots(spec.accounts),
            ceiling=churn_ceiling(spark, config),
        )  # fmt: skip
        stage.rows = run.rows["train_rows"] + run.rows["test_rows"]
        stage.detail["seconds_by_step"] = _tenths(run.seconds)
    with bench.stage("churn.register"):
        configure_mlflow(config, EXPERIMENT)
        version = log_churn_run(run)
    with bench.stage("churn.score") as stage:
        stage.rows = score_accounts(spark, config, run, model_version=version)
    bench.result.setdefault("metrics", {})["churn"] = run.evaluation
    return version


def _forecast(bench: Bench, spark, config: Config, spec: GenerationSpec) -> str | None:
    from feature_store.forecast.tracking import audience_metrics, run_metrics
    from feature_store.forecast.train import train_forecast
    from feature_store.synthetic.ceilings import audience_ceiling

    with bench.stage("forecast.all") as stage:
        run = train_forecast(
            spark, config, spec.end_date, audience_truth=audience_ceiling(spark, config)
        )
        stage.rows = run.forecast_rows + run.plan_rows + run.audience_rows
        stage.detail["seconds_by_step"] = _tenths(run.seconds)
        stage.detail["series"] = run.series_count
    metrics = run_metrics(run)
    if run.audience is not None:
        metrics.update(audience_metrics(run.audience))
    overall = {k: round(v, 4) for k, v in metrics.items() if "_h" not in k and k.count(".") <= 2}
    bench.result.setdefault("metrics", {})["popularity_forecast"] = overall
    return run.model_version


def _artwork(bench: Bench, spark, config: Config, spec: GenerationSpec) -> str | None:
    from feature_store.artwork.steps import ArtworkDataError, train_and_evaluate, write_policy_table
    from feature_store.artwork.tracking import EXPERIMENT, log_artwork_run
    from feature_store.features.retrieval import FeatureStoreReader
    from feature_store.synthetic.artwork_truth import artwork_ceiling
    from feature_store.tracking import configure_mlflow

    with bench.stage("artwork.train_evaluate") as stage:
        reader = FeatureStoreReader(spark, config.lake, error=ArtworkDataError)
        run = train_and_evaluate(reader, spec.end_date)
        stage.rows = run.train_impressions + run.holdout_impressions
    with bench.stage("artwork.truth") as stage:
        run.truth = artwork_ceiling(spark, config)(
            run.policies, run.titles, run.evaluation_rows, *run.holdout_window
        )
        stage.rows = run.holdout_impressions
    with bench.stage("artwork.register"):
        configure_mlflow(config, EXPERIMENT)
        version = log_artwork_run(run)
    with bench.stage("artwork.policy_table") as stage:
        stage.rows = write_policy_table(spark, config, run, version)
    bench.result.setdefault("metrics", {})["artwork_policy"] = {
        "served": run.chosen,
        "estimates": {
            p: {e: x.as_dict() for e, x in est.items()} for p, est in run.estimates.items()
        },
        "truth": run.truth,
    }
    return version


def _promote_and_publish(bench: Bench, spark, config: Config, versions: dict[str, str]) -> None:
    from feature_store.lake import Lake
    from feature_store.registry import store
    from feature_store.registry.audit import AuditLog
    from feature_store.registry.policy import load_policy
    from feature_store.registry.promotion import promote

    policy = load_policy(config.paths.registry_policy)
    client = store.client_for(config)
    audit = AuditLog(spark, Lake(config.lake).registry_audit)
    with bench.stage("promote") as stage:
        decisions = {
            model: promote(
                client, policy.for_model(model), version, audit=audit, actor="bench_platform"
            )  # fmt: skip
            for model, version in versions.items()
        }
        stage.detail["promoted"] = {m: d.passed for m, d in decisions.items()}
    with bench.stage("publish") as stage:
        outcomes = publish_all(spark, config, None)
        stage.rows = sum(o.published.manifest["rows"] for o in outcomes if not o.error)
        stage.detail["artifacts"] = {o.artifact: not o.error for o in outcomes}


if __name__ == "__main__":
    sys.exit(main())

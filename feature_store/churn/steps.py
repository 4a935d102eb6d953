"""Train, evaluate and batch-score the churn model on the platform's data.

`train_churn` for an as-of date T uses only what is known at the end of T: snapshots split
out of time and out of account, gradient-boosted trees and the logistic-regression
baseline, their metrics (and a ceiling's, when the caller has one), with `tracking` the
MLflow run and the `churn` registration, then scores for every account subscribed at T in
`<lake>/predictions/churn_scores` for as_of_date = T (a re-run replaces that date). The
steps: docs/models.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.churn import evaluate as M
from feature_store.churn.data import (
    HORIZON_DAYS,
    LABEL,
    SNAPSHOT,
    ChurnDataError,
    feature_dates,
    labels_observed_through,
    load_snapshots,
    viewing_starts,
)
from feature_store.churn.model import (
    PROBABILITY,
    ChurnClassifier,
    ClassWeights,
    fit_gbt,
    fit_logistic,
    prepare,
)
from feature_store.churn.scoring import ChurnScorer
from feature_store.config import Config
from feature_store.features.definitions import AS_OF, WRITTEN_AT
from feature_store.features.tables import ACCOUNT_DAILY, PROFILE_DAILY
from feature_store.timing import Stopwatch

log = logging.getLogger(__name__)

SCORES_TABLE = "churn_scores"
SNAPSHOT_EVERY_DAYS = 7
MAX_TRAIN_SNAPSHOTS = 4
# A snapshot's windowed features are only like later ones once their whole window lies
# inside the data: a model trained where "the 21 days before last week" were still empty
# learns trends that mean something else a month later.
FULL_WINDOW_DAYS = max(ACCOUNT_DAILY.lookback_days, PROFILE_DAILY.lookback_days)
HOLDOUT_BUCKETS = 5  # one in five accounts is held out for evaluation
# (rows of account_id and snapshot_date, horizon days) -> the same rows with
# ``truth_probability``, the best ranking of cancels any model could reach
Ceiling = Callable[[DataFrame, int], DataFrame]


@dataclasses.dataclass
class ChurnRun:
    as_of: dt.date
    horizon_days: int
    train_snapshots: tuple[dt.date, ...]
    test_snapshot: dt.date
    rows: dict[str, int]  # train/test rows and cancels
    evaluation: dict[str, dict[str, float]]  # gbt, logistic, hidden_hazard -> metrics
    reliability: dict[str, list[dict]]
    lift: dict[str, list[float]]
    importances: dict[str, float]
    scorer: ChurnScorer
    logistic: ChurnClassifier
    lineage: dict
    seconds: dict[str, float]
    scored_accounts: int = 0
    band_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    model_version: str | None = None
    # the held-out snapshot rows as loaded (features and label, before ``prepare``): logged
    # with the model so the promotion gate can score a champion on the very same rows
    evaluation_rows: pd.DataFrame | None = None

    def format_table(self) -> str:
        """The run as text: the data, each model's metrics, top importances, scoring."""
        columns = ["roc_auc", "pr_auc", "log_loss", "brier", "calibration_error", "lift_top_decile"]
        short = ["ROC-AUC", "PR-AUC", "logloss", "Brier", "ECE", "lift@10%"]
        header = f"{'model':<28}" + "".join(f"{s:>10}" for s in short)
        lines = [
            f"churn as of {self.as_of}: cancels within {self.horizon_days} days; trained on "
            f"{self.rows['train_rows']:,} account snapshots "
            f"({', '.join(s.isoformat() for s in self.train_snapshots)}; "
            f"{self.rows['train_cancels']:,} cancels), evaluated on "
            f"{self.rows['test_rows']:,} held-out accounts at {self.test_snapshot} "
            f"({self.rows['test_cancels']:,} cancels)",
            header,
            "-" * len(header),
        ]
        names = {
            "gbt": "gradient-boosted trees",
            "logistic": "logistic regression",
            "hidden_hazard": "ceiling: hidden hazard",
        }
        for name, values in self.evaluation.items():
            lines.append(
                f"{names.get(name, name):<28}"
                + "".join(f"{values.get(c, float('nan')):>10.4f}" for c in columns)
            )
        top = ", ".join(f"{n} {v:.2f}" for n, v in list(self.importances.items())[:5])
        lines.append(f"most important: {top}")
        if self.scored_accounts:
            bands = ", ".join(
                f"{b} {self.band_counts.get(b, 0):,}" for b in ("high", "medium", "low")
            )
            lines.append(
                f"scored {self.scored_accounts:,} accounts as of {self.as_of} ({bands}); "
                f"model version {self.model_version or 'not registered'}"
            )
        return "\n".join(lines)


def choose_snapshots(
    dates: list[dt.date],
    *,
    as_of: dt.date,
    horizon_days: int,
    history_start: dt.date,
    labels_through: dt.date,
    every_days: int = SNAPSHOT_EVERY_DAYS,
    max_train: int = MAX_TRAIN_SNAPSHOTS,
    full_window_days: int = FULL_WINDOW_DAYS,
) -> tuple[tuple[dt.date, ...], dt.date]:
    """(training snapshots oldest first, evaluation snapshot) among built feature dates
    ``dates``, for data that starts on ``history_start``."""
    if not dates:
        raise ChurnDataError("no account_daily/profile_daily partitions built")
    latest = min(as_of, labels_through) - dt.timedelta(days=horizon_days)
    earliest = history_start + dt.timedelta(days=full_window_days - 1)
    usable = [d for d in dates if earliest <= d <= latest]
    if not usable:
        raise ChurnDataError(
            f"no snapshot date with {full_window_days} days of data behind it and its "
            f"{horizon_days}-day label window observed by {min(as_of, labels_through)}: "
            f"the data starts on {history_start} and features are built from {dates[0]} to "
            f"{dates[-1]}; the data needs to reach "
            f"{earliest + dt.timedelta(days=horizon_days + every_days)} at least"
        )
    test = usable[-1]
    train = []
    wanted = test - dt.timedelta(days=every_days)
    for d in reversed(usable[:-1]):
        if len(train) == max_train:
            break
        if d <= wanted:
            train.append(d)
            wanted = d - dt.timedelta(days=every_days)
    if not train:
        raise ChurnDataError(
            f"the evaluation snapshot is {test}; training needs an earlier snapshot at least "
            f"{every_days} days before it with {full_window_days} days of data behind it "
            f"(data from {history_start}, features built from {dates[0]})"
        )
    return tuple(sorted(train)), test


# Rows per partition the fits are given at least (see _fitting_partitions).
FIT_ROWS_PER_PARTITION = 100_000


def _fitting_partitions(train: DataFrame, *, rows: int) -> DataFrame:
    """``train`` (cached) in no more partitions than its rows need. Every tree level and
    every logistic-regression iteration is a Spark job with a task per partition: a few
    thousand rows over the shuffle's 8 partitions paid 8 tasks each time, for hundreds of
    jobs. Coalescing the cached rows moves no data; large sets keep their partitions."""
    wanted = max(1, -(-rows // FIT_ROWS_PER_PARTITION))
    return train.coalesce(wanted) if wanted < train.rdd.getNumPartitions() else train


def _held_out():
    return F.pmod(F.xxhash64("account_id"), F.lit(HOLDOUT_BUCKETS)) == 0


def train_churn(
    spark: SparkSession,
    config: Config,
    as_of: dt.date,
    *,
    horizon_days: int = HORIZON_DAYS,
    every_days: int = SNAPSHOT_EVERY_DAYS,
    max_train_snapshots: int = MAX_TRAIN_SNAPSHOTS,
    gbt_params: dict | None = None,
    ceiling: Ceiling | None = None,
) -> ChurnRun:
    """Train and evaluate on snapshots known at ``as_of`` (steps 1-3 of the module doc),
    with ``ceiling``'s metrics beside the models' when given."""
    watch = Stopwatch()
    with watch.stage("load"):
        train_dates, test_date = _snapshot_dates(
            spark, config.lake, as_of, horizon_days, every_days, max_train_snapshots
        )
        data = load_snapshots(
            spark, config.lake, (*train_dates, test_date), horizon_days=horizon_days
        )
        rows = prepare(data.frame).persist(StorageLevel.MEMORY_AND_DISK)
        train = rows.filter((F.col(SNAPSHOT) < F.lit(test_date)) & ~_held_out()).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        test = rows.filter((F.col(SNAPSHOT) == F.lit(test_date)) & _held_out())
        train_stats = train.agg(F.count(F.lit(1)).alias("n"), F.sum(LABEL).alias("p")).first()
        weights = ClassWeights.balanced(int(train_stats["p"] or 0), int(train_stats["n"]))
    with watch.stage("fit_gbt"):
        fitting = _fitting_partitions(train, rows=int(train_stats["n"]))
        gbt = fit_gbt(fitting, weights, gbt_params)
    with watch.stage("fit_logistic"):
        logistic = fit_logistic(fitting, weights)
    with watch.stage("evaluate"):
        evaluated = _evaluate(test, gbt, logistic, horizon_days, ceiling)
    with watch.stage("fit_scorer"):
        scorer = ChurnScorer.fit(gbt, train)
    labels = evaluated.pop("labels")
    run = ChurnRun(
        as_of=as_of,
        horizon_days=horizon_days,
        train_snapshots=train_dates,
        test_snapshot=test_date,
        rows={
            "train_rows": int(train_stats["n"]),
            "train_cancels": int(train_stats["p"] or 0),
            "test_rows": int(len(labels)),
            "test_cancels": int(labels.sum()),
        },
        evaluation=evaluated["metrics"],
        reliability=evaluated["reliability"],
        lift=evaluated["lift"],
        importances=gbt.feature_importances(),
        scorer=scorer,
        logistic=logistic,
        lineage={**data.lineage(), "class_weights": dataclasses.asdict(weights)},
        seconds=watch.seconds,
        evaluation_rows=data.frame.filter(
            (F.col(SNAPSHOT) == F.lit(test_date)) & _held_out()
        ).toPandas(),
    )
    train.unpersist()
    rows.unpersist()
    return run


def _snapshot_dates(spark, lake_root, as_of, horizon_days, every_days, max_train):
    """(training snapshot dates, the evaluation snapshot date) among the built dates."""
    train_dates, test_date = choose_snapshots(
        feature_dates(spark, lake_root),
        as_of=as_of,
        horizon_days=horizon_days,
        history_start=viewing_starts(spark, lake_root),
        labels_through=labels_observed_through(spark, lake_root),
        every_days=every_days,
        max_train=max_train,
    )
    log.info("churn: training snapshots %s, evaluation snapshot %s", train_dates, test_date)
    return train_dates, test_date


def _evaluate(
    test: DataFrame,
    gbt: ChurnClassifier,
    logistic: ChurnClassifier,
    horizon_days: int,
    ceiling: Ceiling | None,
) -> dict:
    keys = ["account_id", SNAPSHOT]
    frame = (
        gbt.probabilities(test)
        .select(*keys, LABEL, F.col(PROBABILITY).alias("gbt"))
        .join(
            logistic.probabilities(test).select(*keys, F.col(PROBABILITY).alias("logistic")),
            keys,
        )
    )
    if ceiling is not None:
        truth = ceiling(test.select(*keys), horizon_days)
        frame = frame.join(
            truth.withColumnRenamed("truth_probability", "hidden_hazard"), keys, "left"
        )
    table = frame.toPandas()
    if table.empty:
        raise ChurnDataError("the evaluation snapshot has no held-out accounts")
    labels = table[LABEL].to_numpy()
    models = ["gbt", "logistic"]
    if "hidden_hazard" in table:
        matched = table["hidden_hazard"].notna().mean()
        if matched < 0.99:
            # The truth's ids are pseudonymized with the configured key: a different key
            # than the one the lake was ingested with matches nobody.
            log.warning("churn: only %.0f%% of accounts found in the ground truth", 100 * matched)
        else:
            models.append("hidden_hazard")
    result: dict = {"metrics": {}, "reliability": {}, "lift": {}, "labels": labels}
    for name in models:
        scores = table[name].to_numpy(dtype=np.float64)
        result["metrics"][name] = M.binary_metrics(labels, scores)
        result["reliability"][name] = M.reliability(labels, scores)
        result["lift"][name] = M.lift_by_decile(labels, scores)
    return result


def score_accounts(
    spark: SparkSession,
    config: Config,
    run: ChurnRun,
    *,
    model_version: str | None = None,
) -> int:
    """Score every account subscribed at ``run.as_of`` and replace that date's rows of
    `<lake>/predictions/churn_scores`; returns the number of accounts."""
    if run.as_of not in feature_dates(spark, config.lake):
        raise ChurnDataError(
            f"no account_daily/profile_daily partition for {run.as_of}: build its features first"
        )
    current = load_snapshots(spark, config.lake, [run.as_of], horizon_days=None)
    written_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    scores = run.scorer.score(current.frame).select(
        "account_id",
        PROBABILITY,
        "risk_band",
        "reasons",
        F.lit(model_version).cast("string").alias("model_version"),
        F.lit(run.as_of).alias(AS_OF),
        F.lit(written_at).cast("timestamp").alias(WRITTEN_AT),
    )
    path = lk.Lake(config.lake).predictions(SCORES_TABLE)
    lk.replace_slice(scores, path, slice_values={AS_OF: run.as_of}, partition_by=[AS_OF])
    written = lk.read_table(spark, path).filter(F.col(AS_OF) == F.lit(run.as_of))
    bands = {
        r["risk_band"]: int(r["count"]) for r in written.groupBy("risk_band").count().collect()
    }
    run.scored_accounts = sum(bands.values())
    run.band_counts = bands
    run.model_version = model_version
    return run.scored_accounts

"""The popularity forecast in MLflow: one run per as-of date, the model registered as
``popularity_forecast``.

A run logs the settings, the Delta versions read, the backtest metrics of the model and both
baselines, the CDN hit rates, plots and the fitted Spark PipelineModel, which turns forecast
rows into views when loaded back. The new-title audience model logs into the same run
(``audience.*``; its model as the unregistered ``new_title_audience`` artifact). The
registered version is tagged with its data window; promotion is the registry's business.
What is logged: docs/models.md.
"""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
from pyspark.ml import PipelineModel

from feature_store.evaluation import EVALUATION_DATA_TAG, evaluation_data_id
from feature_store.forecast import audience as aud
from feature_store.forecast import cdn
from feature_store.forecast.data import DATE, REGION, TITLE, VIEWS
from feature_store.forecast.evaluate import ALL, TOP
from feature_store.forecast.features import (
    CATEGORICAL_FEATURES,
    HORIZON,
    NUMERIC_FEATURES,
    TARGET_DATE,
    TARGET_VIEWS,
)
from feature_store.forecast.model import MODEL, MODELS, SEASONAL_NAIVE, TRAILING_MEAN
from feature_store.forecast.steps import MODEL_NAME, ForecastRun
from feature_store.tracking import model_requirements, tag_model_version

log = logging.getLogger(__name__)

EXPERIMENT = "popularity_forecast"
ARTIFACT = "popularity_forecast"
AUDIENCE_NOTE_TAG = "audience.not_evaluated"  # why, when the window held too few launches
# fixed plot margins: tight_layout measured every text box of a figure again (~0.7 s a
# figure here), for plots whose layout never changes
_MARGINS = {"left": 0.08, "right": 0.98, "bottom": 0.12, "top": 0.9, "wspace": 0.25}


def data_window(run: ForecastRun) -> dict[str, str]:
    """The run's data window as tags, with the id of what its backtest was computed on."""
    return {
        "data.first_date": run.first_date.isoformat(),
        "data.as_of": run.as_of.isoformat(),
        "data.backtest_origins": ",".join(o.isoformat() for o in run.backtest.origins),
        "data.horizon_days": str(run.settings.horizon),
        # what the backtest metrics were computed on: the promotion gate compares only like
        # with like
        EVALUATION_DATA_TAG: evaluation_data_id(
            {
                "first_date": run.first_date,
                "backtest_origins": run.backtest.origins,
                "horizon_days": run.settings.horizon,
                "top_n": run.settings.top_n,
                "table_versions": run.table_versions,
            }
        ),
    }


def run_metrics(run: ForecastRun) -> dict[str, float]:
    """``<segment>.<model>.wape`` / ``.mase`` over all horizons, ``..._h<h>`` per horizon,
    the improvement over the baselines and the CDN hit rates."""
    out: dict[str, float] = {}
    for row in run.backtest.metrics.itertuples(index=False):
        suffix = "" if row.horizon == 0 else f"_h{row.horizon}"
        for name in ("wape", "mase"):
            value = getattr(row, name)
            if pd.notna(value):
                out[f"{row.segment}.{row.model}.{name}{suffix}"] = float(value)
    for segment in (ALL, TOP):
        for baseline in (SEASONAL_NAIVE, TRAILING_MEAN):
            value = run.backtest.improvement(segment=segment, baseline=baseline)
            if pd.notna(value):
                out[f"{segment}.wape_improvement_vs_{baseline}"] = value
    for strategy in (cdn.PLAN, cdn.YESTERDAY, cdn.ORACLE):
        value = run.hit_rate(strategy)
        if pd.notna(value):
            out[f"cdn.hit_rate.{strategy}"] = value
    plan = run.plan_summary
    if len(plan) and plan["expected_total"].sum():
        out["cdn.expected_hit_rate"] = float(
            plan["expected_served"].sum() / plan["expected_total"].sum()
        )
    out["final.training_rows"] = float(run.training_rows)
    # what the figures above were computed on: origins, and rows and views over them
    evaluated = run.backtest.metrics
    evaluated = evaluated[
        (evaluated["segment"] == ALL) & (evaluated["model"] == MODEL) & (evaluated[HORIZON] == 0)
    ]
    out["backtest.origins"] = float(len(run.backtest.origins))
    if len(evaluated):
        out["backtest.rows"] = float(evaluated["rows"].iloc[0])
        out["backtest.actual_views"] = float(evaluated["actual_views"].iloc[0])
    return out


def audience_metrics(result: aud.AudienceResult) -> dict[str, float]:
    """``audience.<model>.wape`` / ``.spearman`` (mean over regions), per region
    ``audience.<model>.<metric>.<region>``, the improvement and the split's sizes."""
    out: dict[str, float] = {}
    for row in result.metrics.itertuples(index=False):
        suffix = "" if row.region == aud.ALL else f".{row.region}"
        for name in ("wape", "spearman"):
            value = getattr(row, name)
            if pd.notna(value):
                out[f"audience.{row.model}.{name}{suffix}"] = float(value)
    out["audience.wape_improvement_vs_genre_average"] = result.improvement()
    for name in ("train_titles", "eval_titles", "train_rows", "eval_rows"):
        out[f"audience.{name}"] = float(getattr(result, name))
    out["audience.upcoming_rows"] = float(len(result.upcoming))
    out["audience.min_instances_per_node"] = float(result.leaf_rows)
    return out


def log_forecast_run(
    run: ForecastRun, model: PipelineModel, *, register: bool = True
) -> str | None:
    """Log ``run`` and ``model`` to the active experiment; returns the registered version
    (None with ``register=False``)."""
    window = data_window(run)
    with mlflow.start_run(run_name=f"popularity-forecast-{run.as_of.isoformat()}") as active:
        mlflow.set_tags(window)
        mlflow.log_params(
            {
                **run.settings.params(),
                **{f"lineage.{t}.version": v for t, v in run.table_versions.items()},
                "features": ",".join([*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]),
                "audience.features": ",".join([*aud.NUMERIC, *aud.CATEGORICAL]),
                "series": run.series_count,
                **(run.backtest_plan.params() if run.backtest_plan else {}),
            }
        )
        mlflow.log_metrics(run_metrics(run))
        # the stages so far (tracking and writing come after this)
        mlflow.log_metrics({f"seconds.{k}": v for k, v in run.seconds.items()})
        mlflow.log_dict(
            {
                "table_versions": run.table_versions,
                "window": window,
                "feature_importances": run.importances,
            },
            "lineage.json",
        )
        mlflow.log_table(run.backtest.metrics, "backtest/metrics.json")
        mlflow.log_table(run.backtest.by_region, "backtest/metrics_by_region.json")
        mlflow.log_table(run.cdn_backtest, "backtest/cdn_hit_rates.json")
        mlflow.log_table(run.plan_summary, "plan/summary.json")
        _log_plots(run)
        if run.audience is not None:
            log_audience(run.audience)
        else:
            mlflow.set_tag(AUDIENCE_NOTE_TAG, run.audience_note[:5000])
        # mlflow.spark.log_model in MLflow 3.17 still names the model by `artifact_path`
        # (it has no `name` parameter, unlike the pyfunc and sklearn flavours)
        info = mlflow.spark.log_model(
            model,
            artifact_path=ARTIFACT,
            registered_model_name=MODEL_NAME if register else None,
            pip_requirements=model_requirements(),
        )
        version = None
        if register:
            registered = getattr(info, "registered_model_version", None)
            version = str(registered) if registered else _registered_version(active.info.run_id)
            tag_model_version(MODEL_NAME, version, {**window, "run_id": active.info.run_id})
        log.info("forecast run %s logged; model version %s", active.info.run_id, version)
    return version


def log_audience(result: aud.AudienceResult) -> None:
    """The audience model's evaluation, plot and final model, into the active run."""
    mlflow.set_tag("data.audience_eval_releases", f"{result.eval_start},{result.eval_end}")
    mlflow.log_metrics(audience_metrics(result))
    mlflow.log_table(result.metrics, "audience/metrics.json")
    mlflow.log_table(result.evaluation, "audience/evaluation.json")
    mlflow.log_dict({"feature_importances": result.importances}, "audience/importances.json")
    _log_audience_plot(result)
    mlflow.spark.log_model(
        result.model, artifact_path=aud.PLATFORM_ARTIFACT, pip_requirements=model_requirements()
    )


def audience_report(client: mlflow.MlflowClient, *, version: str | None = None) -> str:
    """The audience evaluation logged with a ``popularity_forecast`` version (the latest by
    default), in two lines, for reports that read the registry rather than the run."""
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    chosen = [v for v in versions if version is None or v.version == str(version)]
    if not chosen:
        return f"new-title audience: no {MODEL_NAME} version {version or ''}".rstrip()
    latest = max(chosen, key=lambda v: int(v.version))
    data = client.get_run(latest.run_id).data
    m = data.metrics
    where = f"{MODEL_NAME} v{latest.version}"
    if "audience.gbt.wape" not in m:
        why = data.tags.get(AUDIENCE_NOTE_TAG, "not logged")
        return f"new-title audience ({where}): not evaluated: {why}"
    ceiling = m.get(f"audience.{aud.CEILING}.wape")
    lines = [
        f"new-title audience ({where}; first {aud.LAUNCH_DAYS} days per region, "
        f"{int(m['audience.eval_titles'])} launches evaluated, "
        f"{int(m['audience.train_titles'])} trained on): WAPE gbt {m['audience.gbt.wape']:.3f}, "
        f"genre average {m[f'audience.{aud.BASELINE}.wape']:.3f} "
        f"({m['audience.wape_improvement_vs_genre_average']:.1%} lower)"
        + (f", truth ceiling {ceiling:.3f}" if ceiling is not None else ""),
        f"  Spearman within regions (mean): gbt {m.get('audience.gbt.spearman', float('nan')):.2f}"
        f", genre average {m.get(f'audience.{aud.BASELINE}.spearman', float('nan')):.2f}",
    ]
    return "\n".join(lines)


def _log_audience_plot(result: aud.AudienceResult) -> None:
    """Predicted against actual first-28-day views (log scales) of every evaluated title
    and region, and the Spearman correlation per region, for each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame, models = result.evaluation, result.models
    fig, (scatter, ranks) = plt.subplots(1, 2, figsize=(12, 4.8))
    top = max(float(frame[aud.VIEWS_28D].max()), *(float(frame[m].max()) for m in models), 1.0)
    for name in models:
        scatter.scatter(frame[aud.VIEWS_28D] + 1, frame[name] + 1, s=12, alpha=0.6, label=name)
    scatter.plot([1, top + 1], [1, top + 1], color="black", lw=0.8, ls=":")
    scatter.set_xscale("log")
    scatter.set_yscale("log")
    scatter.set_xlabel("actual views in the first 28 days + 1")
    scatter.set_ylabel("predicted + 1")
    scatter.set_title(f"titles released {result.eval_start} to {result.eval_end}")
    scatter.legend(fontsize=8)
    m = result.metrics[result.metrics[REGION] != aud.ALL]
    regions = sorted(set(m[REGION]))
    width = 0.8 / len(models)
    for i, name in enumerate(models):
        values = m[m["model"] == name].set_index(REGION)["spearman"].reindex(regions)
        ranks.bar([x + i * width for x in range(len(regions))], values, width, label=name)
    ranks.set_xticks([x + 0.4 - width / 2 for x in range(len(regions))], regions, fontsize=8)
    ranks.set_ylabel("Spearman rank correlation")
    ranks.set_title("rank of launches within each region")
    ranks.axhline(0, color="black", lw=0.8)
    fig.subplots_adjust(**_MARGINS)
    mlflow.log_figure(fig, "audience/predicted_vs_actual.png")
    plt.close(fig)


def _registered_version(run_id: str) -> str:
    """The version this run registered, looked up by run: on a local artifact store
    mlflow.spark.log_model may return model info without the version it registered."""
    client = mlflow.MlflowClient()
    versions = [
        v for v in client.search_model_versions(f"name = '{MODEL_NAME}'") if v.run_id == run_id
    ]
    if not versions:
        raise RuntimeError(f"run {run_id} registered no version of {MODEL_NAME}")
    return str(max(int(v.version) for v in versions))


def _log_plots(run: ForecastRun) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history, sample = run.plot_history, run.plot_forecasts
    pairs = sample[[REGION, TITLE]].drop_duplicates().itertuples(index=False)
    pairs = list(pairs)
    if pairs:
        fig, axes = plt.subplots(len(pairs), 1, figsize=(9, 2.6 * len(pairs)), squeeze=False)
        for ax, (region, title) in zip(axes[:, 0], pairs, strict=True):
            past = history[(history[REGION] == region) & (history[TITLE] == title)]
            past = past.sort_values(DATE)
            ahead = sample[(sample[REGION] == region) & (sample[TITLE] == title)]
            ahead = ahead.sort_values(HORIZON)
            ax.plot(past[DATE], past[VIEWS], color="black", label="observed")
            ax.plot(ahead[TARGET_DATE], ahead[TARGET_VIEWS], color="black", ls=":", marker=".",
                    label="actual")  # fmt: skip
            for model in MODELS:
                ax.plot(ahead[TARGET_DATE], ahead[model], marker="o", ms=3, label=model)
            ax.set_title(f"{title} in {region}", fontsize=9)
            ax.set_ylabel("views per day")
        axes[0, 0].legend(fontsize=7, ncol=5)
        fig.suptitle(f"forecast against actuals, origin {run.backtest.origins[-1]}")
        fig.subplots_adjust(**{**_MARGINS, "top": 1 - 0.5 / (2.6 * len(pairs)), "hspace": 0.5})
        mlflow.log_figure(fig, "plots/forecast_vs_actuals_top_titles.png")
        plt.close(fig)

    metrics = run.backtest.metrics
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, segment in zip(axes, (ALL, TOP), strict=True):
        for model in MODELS:
            rows = metrics[
                (metrics["segment"] == segment)
                & (metrics["model"] == model)
                & (metrics[HORIZON] > 0)
            ].sort_values(HORIZON)
            ax.plot(rows[HORIZON], rows["wape"], marker="o", label=model,
                    lw=2.5 if model == MODEL else 1.2)  # fmt: skip
        label = "all series" if segment == ALL else f"top {run.settings.top_n} per region"
        ax.set_title(f"WAPE by horizon, {label}")
        ax.set_xlabel("horizon (days)")
    axes[0].set_ylabel("WAPE")
    axes[0].legend()
    fig.subplots_adjust(**_MARGINS)
    mlflow.log_figure(fig, "plots/wape_by_horizon.png")
    plt.close(fig)

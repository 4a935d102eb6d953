"""The artwork policy in MLflow: one run per training, the served policy registered as
``artwork_policy``.

A run logs the settings and windows, every policy's off-policy estimates (replay, IPS,
SNIPS, doubly robust: value, standard error, interval), the served policy's gain over
the logging policy with its interval, a plot of the estimates with their intervals, the
held-out impressions (so the promotion gate can judge the champion on them), and the
served policy as a pyfunc: requests in (`serving.REQUEST_COLUMNS`), the variant drawn and
its probability out.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from feature_store.artwork import serving
from feature_store.artwork.ope import ESTIMATORS
from feature_store.artwork.steps import ArtworkRun
from feature_store.evaluation import EVALUATION_DATA_TAG, evaluation_data_id, log_evaluation_rows
from feature_store.tracking import model_requirements, package_code_path, tag_registered_version

log = logging.getLogger(__name__)

MODEL_NAME = "artwork_policy"
EXPERIMENT = "artwork"
POLICY_ARTIFACT = "policy"


class ArtworkPolicyModel(mlflow.pyfunc.PythonModel):
    """pyfunc: one row per impression to decide (`serving.REQUEST_COLUMNS`); out: the
    title, the artwork drawn and its probability (log it as the propensity). ``params``:
    ``seed`` for a reproducible draw."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.policy, self.titles = serving.load(Path(context.artifacts[POLICY_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        candidates = serving.request_candidates(model_input, self.titles)
        rng = np.random.default_rng((params or {}).get("seed"))
        slot, probability = serving.choose(self.policy, candidates, rng)
        ids = model_input["artwork_ids"].to_list()
        return pd.DataFrame(
            {
                "title_id": model_input["title_id"].to_numpy(),
                "artwork_id": [list(row)[k] for row, k in zip(ids, slot, strict=True)],
                "probability": probability,
            }
        )


def log_artwork_run(run: ArtworkRun, *, register: bool = True) -> str | None:
    """Log ``run`` to the active experiment; returns the registered version (or None)."""
    window = evaluation_tags(run)
    with mlflow.start_run(run_name=f"artwork-{run.as_of.isoformat()}") as active:
        mlflow.set_tags({**window, "policy.served": run.chosen})
        mlflow.log_params(params(run))
        mlflow.log_metrics(metrics(run))
        _log_plot(run)
        log_evaluation_rows(run.evaluation_rows)
        info = _log_model(run, register)
        tags = {**window, "run_id": active.info.run_id, "policy.served": run.chosen}
        version = tag_registered_version(info, MODEL_NAME, tags) if register else None
        log.info(
            "artwork run %s logged (%s); model version %s", active.info.run_id, run.chosen, version
        )
    return version


def evaluation_tags(run: ArtworkRun) -> dict[str, str]:
    first, last = run.holdout_window
    return {
        "data.as_of": run.as_of.isoformat(),
        "data.train_window": f"{run.train_window[0]}..{run.train_window[1]}",
        "data.holdout_window": f"{first}..{last}",
        EVALUATION_DATA_TAG: evaluation_data_id(
            {
                "holdout": [first, last],
                "impressions": run.holdout_impressions,
                "lineage": run.lineage,
            }
        ),
    }


def params(run: ArtworkRun) -> dict:
    return {
        **{f"settings.{k}": v for k, v in run.settings_dict.items()},
        "train_impressions": run.train_impressions,
        "holdout_impressions": run.holdout_impressions,
        **{f"lineage.{k}": v for k, v in run.lineage.items()},
    }


def metrics(run: ArtworkRun) -> dict[str, float]:
    """Every policy's estimates (``<policy>.<estimator>``, ``_low``, ``_high``,
    ``_stderr``), the same for the served one as ``served.*``, the logged rate and, on
    generated data, the true play rates (``truth.<policy>``, ``truth.oracle``)."""
    out = {"logged.play_rate": run.logged_play_rate}
    for policy, estimates in run.estimates.items():
        for estimator, e in estimates.items():
            for prefix in {policy, "served"} if policy == run.chosen else {policy}:
                out[f"{prefix}.{estimator}"] = e.value
                out[f"{prefix}.{estimator}_low"] = e.low
                out[f"{prefix}.{estimator}_high"] = e.high
                out[f"{prefix}.{estimator}_stderr"] = e.stderr
    for policy, value in (run.truth or {}).items():  # generated data: the true play rates
        out[f"truth.{policy}"] = value
    if run.truth:
        out["truth.served"] = run.truth[run.chosen]
    gain = run.gain_over_logging
    out |= {
        "served.dr_gain": gain.value,
        "served.dr_gain_low": gain.low,
        "served.dr_gain_high": gain.high,
    }
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def _log_plot(run: ArtworkRun) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(run.estimates)
    width = 0.8 / len(ESTIMATORS)
    for i, estimator in enumerate(ESTIMATORS):
        values = [run.estimates[n][estimator] for n in names]
        x = np.arange(len(names)) + (i - (len(ESTIMATORS) - 1) / 2) * width
        low = [e.value - e.low for e in values]
        high = [e.high - e.value for e in values]
        ax.errorbar(
            x, [e.value for e in values], yerr=[low, high], fmt="o", capsize=3, label=estimator
        )
    ax.axhline(run.logged_play_rate, color="grey", linestyle="--", label="logged play rate")
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("play rate per impression")
    ax.set_title(
        f"artwork policies on {run.holdout_window[0]}..{run.holdout_window[1]} (95% intervals)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/policy_estimates.png")
    plt.close(fig)


def _log_model(run: ArtworkRun, register: bool):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / POLICY_ARTIFACT
        serving.save(run.policies[run.chosen], run.titles, folder)
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=ArtworkPolicyModel(),
            artifacts={POLICY_ARTIFACT: str(folder)},
            registered_model_name=MODEL_NAME if register else None,
            code_paths=[package_code_path()],
            pip_requirements=model_requirements(),
        )

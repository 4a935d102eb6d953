"""Gated promotion, rollback and listing against a real MLflow registry (SQLite under a
temporary folder) and a real Delta audit table. The models are tiny pyfuncs (a column of
the input is the score) so that registering one costs a fraction of a second."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from conftest import make_config
from pyspark.sql import functions as F

from feature_store.churn.evaluate import binary_metrics
from feature_store.config import ConfigError
from feature_store.evaluation import EVALUATION_DATA_TAG, evaluation_data_id, log_evaluation_rows
from feature_store.lake import Lake
from feature_store.registry import store
from feature_store.registry.audit import SCHEMA, AuditLog, audit_table
from feature_store.registry.listing import format_listing, list_models
from feature_store.registry.policy import PolicyError, load_policy, parse_policy
from feature_store.registry.promotion import champion_history, promote, rollback
from feature_store.tracking import configure_mlflow, tag_model_version
from jobs.cli import main as cli_main

REPO = Path(__file__).resolve().parent.parent
ACTOR = "tester"
EVAL_A = evaluation_data_id({"test_snapshot": dt.date(2026, 2, 13), "versions": {"t": 3}})
EVAL_B = evaluation_data_id({"test_snapshot": dt.date(2026, 2, 20), "versions": {"t": 4}})

POLICY = """\
version: 1
models:
  toy:
    required_tags: [run_id, data.as_of, evaluation.data]
    thresholds:
      auc: {min: 0.6}
      log_loss: {max: 0.7}
    compare: {metric: auc, direction: higher, min_improvement: 0.01}
    key_metrics: [auc, log_loss]
  toy_churn:
    required_tags: [run_id, evaluation.data]
    thresholds:
      gbt.roc_auc: {min: 0.5}
    compare: {metric: gbt.roc_auc, direction: higher, min_improvement: 0.01, evaluator: churn}
"""


class ColumnScore(mlflow.pyfunc.PythonModel):
    """Scores each row by one of its columns: enough to tell two versions apart."""

    def __init__(self, column: str = "signal"):
        self.column = column

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        return pd.DataFrame(
            {"account_id": model_input["account_id"], "churn_probability": model_input[self.column]}
        )


@dataclasses.dataclass
class Registry:
    config: object
    policy_file: Path
    client: mlflow.MlflowClient
    audit: AuditLog
    counter: int = 0

    def policy(self, entry: str, model: str):
        """The test policy's ``entry`` for a model registered under ``model``."""
        return dataclasses.replace(load_policy(self.policy_file).for_model(entry), model=model)

    def new_name(self, stem: str) -> str:
        # one store for the module (creating a SQLite store costs seconds): a name per test
        self.counter += 1
        return f"{stem}_{self.counter}"


@pytest.fixture(scope="module")
def registry(spark, tmp_path_factory) -> Registry:
    root = tmp_path_factory.mktemp("promotion")
    policy_file = root / "registry.yaml"
    policy_file.write_text(POLICY)
    config = make_config(root, f"paths.registry_policy={policy_file}")
    configure_mlflow(config, "promotion-tests")
    client = store.client_for(config)
    return Registry(config, policy_file, client, AuditLog(spark, Lake(config.lake).registry_audit))


def register(
    model: str,
    metrics: dict[str, float],
    *,
    evaluation: str | None = EVAL_A,
    as_of: str | None = "2026-03-15",
    column: str = "signal",
    rows: pd.DataFrame | None = None,
) -> str:
    """A version of ``model`` whose run logged ``metrics``, tagged like the training runs."""
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
        if rows is not None:
            log_evaluation_rows(rows)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ColumnScore(column),
            registered_model_name=model,
            pip_requirements=["mlflow"],
        )
    version = str(info.registered_model_version)
    tags = {"run_id": run.info.run_id, "data.as_of": as_of, EVALUATION_DATA_TAG: evaluation}
    tag_model_version(model, version, {k: v for k, v in tags.items() if v is not None})
    return version


def aliases(registry: Registry, model: str) -> dict[str, str]:
    return store.aliases(registry.client, model)


def audit_rows(registry: Registry, model: str):
    """The model's audit rows, oldest first, without the event time, to compare by value
    (in order: a map column cannot be sorted for an order-free comparison)."""
    table = audit_table(registry.audit.spark, registry.audit.path)
    return table.filter(F.col("model") == model).orderBy("event_time").drop("event_time")


def expected_rows(spark, rows: list[tuple]):
    schema = SCHEMA.fields[1:]  # without event_time
    return spark.createDataFrame(rows, SCHEMA.__class__(schema))


# --- the policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\nmodels: {}\n", r"key 'version' must be 1, got 2"),
        ("version: 1\nmodels: {}\n", r"key 'models' must name at least one model"),
        ("version: 1\nmodel: {}\n", r"key 'model' is unknown \(known: models, version\)"),
        (
            "version: 1\nmodels:\n  m:\n    thresholds: {auc: {min: 0.5}}\n",
            r"key 'models.m.compare' is required",
        ),
        (
            "version: 1\nmodels:\n  m:\n    thresholds: {auc: {minn: 0.5}}\n"
            "    compare: {metric: auc, direction: higher, min_improvement: 0}\n",
            r"key 'models.m.thresholds.auc.minn' is unknown \(known: max, min\)",
        ),
        (
            "version: 1\nmodels:\n  m:\n    thresholds: {auc: {min: 0.9, max: 0.5}}\n"
            "    compare: {metric: auc, direction: higher, min_improvement: 0}\n",
            r"key 'models.m.thresholds.auc' has min 0.9 above max 0.5",
        ),
        (
            "version: 1\nmodels:\n  m:\n    thresholds: {auc: {min: high}}\n"
            "    compare: {metric: auc, direction: higher, min_improvement: 0}\n",
            r"key 'models.m.thresholds.auc.min' must be a number, got 'high'",
        ),
        (
            "version: 1\nmodels:\n  m:\n    compare: {metric: auc, direction: up, "
            "min_improvement: 0}\n",
            r"key 'models.m.compare.direction' must be higher or lower, got 'up'",
        ),
        (
            "version: 1\nmodels:\n  m:\n    compare: {metric: auc, direction: lower, "
            "min_improvement: -0.1}\n",
            r"key 'models.m.compare.min_improvement' must not be negative, got -0.1",
        ),
        (
            "version: 1\nmodels:\n  m:\n    compare: {metric: auc, direction: lower, "
            "min_improvement: 0, evaluator: recs}\n",
            r"key 'models.m.compare.evaluator' names no evaluator: 'recs' "
            r"\(known: artwork, churn\)",
        ),
        (
            "version: 1\nmodels:\n  m:\n    required_tags: run_id\n"
            "    compare: {metric: auc, direction: lower, min_improvement: 0}\n",
            r"key 'models.m.required_tags' must be a list of names, got 'run_id'",
        ),
    ],
)
def test_policy_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=rf"{path}: {message}"):
        load_policy(path)


def test_policy_has_no_entry_for_an_unknown_model_and_is_a_config_error():
    policy = parse_policy(
        {"version": 1, "models": {"churn": {"compare": _compare()}}}, source="p.yaml"
    )
    with pytest.raises(ConfigError, match=r"p.yaml: no promotion policy for model 'churm' "):
        policy.for_model("churm")


def _compare():
    return {"metric": "auc", "direction": "higher", "min_improvement": 0.0}


def test_repository_policy_gates_the_four_models_on_metrics_their_runs_log():
    policy = load_policy(REPO / "mlflow" / "registry.yaml")
    assert set(policy.models) == {"churn", "recommender", "popularity_forecast", "artwork_policy"}
    churn = policy.for_model("churn")
    # the churn run logs gbt.<binary_metrics>; the evaluator re-scores the same names
    labels = np.tile([0.0, 1.0], 10)
    names = set(binary_metrics(labels, np.linspace(0.1, 0.9, 20)))
    assert {t.metric for t in churn.thresholds} | {churn.compare.metric} <= {
        f"gbt.{n}" for n in names
    }
    assert (churn.compare.metric, churn.compare.direction, churn.compare.evaluator) == (
        "gbt.roc_auc",
        "higher",
        "churn",
    )
    # the churn run's evaluation rows carry the dataset's label column, which re-scoring reads
    from feature_store import evaluation
    from feature_store.churn import data

    assert evaluation.LABEL == data.LABEL
    forecast = policy.for_model("popularity_forecast").compare
    assert (forecast.metric, forecast.direction, forecast.evaluator) == (
        "all.gbt.wape",
        "lower",
        None,
    )
    # the artwork gate holds a challenger's lower bound against the champion's estimate
    artwork = policy.for_model("artwork_policy").compare
    assert (artwork.metric, artwork.baseline_metric, artwork.evaluator) == (
        "served.dr_low",
        "served.dr",
        "artwork",
    )
    for model in policy.models.values():
        assert {"run_id", "data.as_of", EVALUATION_DATA_TAG} <= set(model.required_tags)


def test_default_configuration_points_at_the_repository_policy(registry):
    from feature_store.config import load_config

    config = load_config(None, environ={"MARQUEE_PSEUDONYMIZATION_KEY": "k" * 32})
    assert Path(config.paths.registry_policy) == REPO / "mlflow" / "registry.yaml"
    assert registry.config.paths.registry_policy == str(registry.policy_file)


# --- promotion ----------------------------------------------------------------------------


def test_first_version_passes_thresholds_and_becomes_champion(spark, registry):
    model = registry.new_name("toy")
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5})
    decision = promote(
        registry.client, registry.policy("toy", model), v1, audit=registry.audit, actor=ACTOR
    )
    assert decision.passed
    assert [(c.name, c.passed, c.reason) for c in decision.checks] == [
        ("required tags", True, "all 3 present"),
        ("auc >= 0.6", True, "0.7000"),
        ("log_loss <= 0.7", True, "0.5000"),
        ("improvement over champion (auc, higher is better)", True, "no champion yet"),
    ]
    assert aliases(registry, model) == {"champion": v1, "challenger": v1}
    reason = "all 4 checks passed; no champion yet"
    assert_df_equality(
        audit_rows(registry, model),
        expected_rows(
            spark,
            [
                (model, "challenger", None, v1, "set", "candidate for champion", {}, ACTOR),
                (
                    model,
                    "champion",
                    None,
                    v1,
                    "promoted",
                    reason,
                    {"auc": 0.70, "log_loss": 0.5},
                    ACTOR,
                ),  # fmt: skip
            ],
        ),
        ignore_nullable=True,
    )


def test_worse_challenger_is_refused_and_the_champion_stays(registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5})
    promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    v2 = register(model, {"auc": 0.705, "log_loss": 0.5})  # better, but by less than 0.01
    decision = promote(registry.client, policy, v2, audit=registry.audit, actor=ACTOR)
    assert not decision.passed
    assert [c.name for c in decision.failures] == [
        "improvement over champion (auc, higher is better)"
    ]
    assert decision.failures[0].reason == (
        f"0.7050 against champion v1's 0.7000 on the same evaluation data ({EVAL_A[7:15]}): "
        "+0.0050, needs at least +0.01"
    )
    assert decision.metrics == {"auc": 0.705, "log_loss": 0.5, "champion.auc": 0.70}
    assert aliases(registry, model) == {"champion": v1, "challenger": v2}
    events = registry.audit.events(model)
    assert [(e.alias, e.from_version, e.to_version, e.outcome) for e in events] == [
        ("challenger", None, "1", "set"),
        ("champion", None, "1", "promoted"),
        ("challenger", "1", "2", "set"),
        ("champion", "1", "2", "refused"),
    ]
    assert (
        events[-1].reason == f"refused: {decision.failures[0].name}: {decision.failures[0].reason}"
    )
    assert events[-1].metrics == decision.metrics
    assert all(a.event_time <= b.event_time for a, b in zip(events, events[1:], strict=False))


def test_better_challenger_is_promoted(registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5})
    promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    v2 = register(model, {"auc": 0.75, "log_loss": 0.45})
    decision = promote(registry.client, policy, v2, audit=registry.audit, actor=ACTOR)
    assert decision.passed and decision.champion == v1
    assert decision.checks[-1].reason.endswith("+0.0500, needs at least +0.01")
    assert aliases(registry, model) == {"champion": v2, "challenger": v2}
    assert champion_history(registry.audit.events(model)) == [v1, v2]


def test_missing_tag_or_missed_threshold_refuses_even_the_first_version(registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    v1 = register(model, {"auc": 0.55, "log_loss": 0.5}, as_of=None)
    decision = promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    assert [(c.name, c.reason) for c in decision.failures] == [
        ("required tags", "missing data.as_of"),
        ("auc >= 0.6", "0.5500"),
    ]
    assert aliases(registry, model) == {"challenger": v1}
    v2 = register(model, {"auc": 0.8})  # log_loss not logged
    decision = promote(registry.client, policy, v2, audit=registry.audit, actor=ACTOR)
    assert [(c.name, c.reason) for c in decision.failures] == [
        (
            "log_loss <= 0.7",
            f"not logged by run {store.model_version(registry.client, model, v2).run_id}",
        )
    ]
    assert "champion" not in aliases(registry, model)


def test_the_registry_finds_the_evaluators_the_domains_declare_and_names_missing_ones():
    from feature_store.artwork import rescoring as artwork
    from feature_store.churn.rescoring import rescore
    from feature_store.evaluation import EvaluatorError
    from feature_store.registry.evaluators import evaluator_names, load_evaluator

    assert evaluator_names() == {"artwork", "churn"}
    assert load_evaluator("churn") is rescore
    assert load_evaluator("artwork") is artwork.rescore
    known = r"\(known: artwork, churn\)"
    with pytest.raises(EvaluatorError, match=rf"no evaluator 'recs' is installed {known}"):
        load_evaluator("recs")


def test_different_evaluation_data_without_an_evaluator_refuses_and_says_so(registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5}, evaluation=EVAL_A)
    promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    v2 = register(model, {"auc": 0.90, "log_loss": 0.3}, evaluation=EVAL_B)
    decision = promote(registry.client, policy, v2, audit=registry.audit, actor=ACTOR)
    assert not decision.passed
    assert decision.failures[0].reason == (
        f"champion v1 was evaluated on other data ({EVAL_A[7:15]}) than v2 ({EVAL_B[7:15]}) "
        f"and no evaluator exists for model '{model}' to re-score the champion on the "
        "candidate's data: the logged metrics are not comparable"
    )
    assert aliases(registry, model)["champion"] == v1


def _churn_rows() -> pd.DataFrame:
    # "signal" separates the classes perfectly (AUC 1); "noisy" gets 20 of 25 pairs right
    return pd.DataFrame(
        {
            "account_id": [f"acc{i}" for i in range(10)],
            "signal": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            "noisy": [0.5, 0.1, 0.6, 0.2, 0.35, 0.3, 0.7, 0.4, 0.8, 0.9],
            "label": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
        }
    )


def test_churn_champion_is_rescored_on_the_candidates_evaluation_rows(registry):
    model = registry.new_name("toy_churn")
    policy = registry.policy("toy_churn", model)
    # the champion's logged AUC (0.9, on its own data) looks better than the candidate's
    v1 = register(model, {"gbt.roc_auc": 0.9}, evaluation=EVAL_A, column="noisy")
    promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    v2 = register(
        model, {"gbt.roc_auc": 0.8}, evaluation=EVAL_B, column="signal", rows=_churn_rows()
    )
    decision = promote(registry.client, policy, v2, audit=registry.audit, actor=ACTOR)
    # ... but on the candidate's rows the champion scores 0.8 and the candidate 1.0
    assert decision.passed, decision.format()
    assert decision.metrics == {
        "gbt.roc_auc": 0.8,
        "rescored.gbt.roc_auc": 1.0,
        "rescored.champion.gbt.roc_auc": 0.8,
    }
    assert decision.checks[-1].reason == (
        "1.0000 against champion v1's 0.8000 both re-scored on 10 evaluation rows of v2's run, "
        f"as champion v1 was evaluated on other data ({EVAL_A[7:15]}) than v2 "
        f"({EVAL_B[7:15]}): +0.2000, needs at least +0.01"
    )
    assert aliases(registry, model) == {"champion": v2, "challenger": v2}

    # a candidate on other data that logged no rows cannot be compared: refused
    v3 = register(model, {"gbt.roc_auc": 0.99}, evaluation=EVAL_A, column="signal")
    decision = promote(registry.client, policy, v3, audit=registry.audit, actor=ACTOR)
    assert not decision.passed
    assert "re-scoring the champion failed: run " in decision.failures[0].reason
    assert decision.failures[0].reason.endswith(
        f"of {model} v3 logged no evaluation rows (evaluation/rows.parquet)"
    )
    assert aliases(registry, model)["champion"] == v2


def test_promoting_the_champion_or_an_unknown_version_is_refused_before_any_move(registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5})
    promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    with pytest.raises(store.RegistryError, match=rf"{model} v1 is already the champion"):
        promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    with pytest.raises(
        store.RegistryError, match=rf"model '{model}' has no version 7 \(versions: 1\)"
    ):
        promote(registry.client, policy, "7", audit=registry.audit, actor=ACTOR)
    assert len(registry.audit.events(model)) == 2


# --- rollback -----------------------------------------------------------------------------


def test_rollback_restores_the_previous_champion_and_is_audited(spark, registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    versions = [register(model, {"auc": auc, "log_loss": 0.5}) for auc in (0.70, 0.75, 0.80)]
    for version in versions:
        assert promote(registry.client, policy, version, audit=registry.audit, actor=ACTOR).passed
    assert aliases(registry, model)["champion"] == "3"

    done = rollback(registry.client, model, audit=registry.audit, actor="oncall", note="bad p99")
    assert (done.from_version, done.to_version) == ("3", "2")
    assert aliases(registry, model) == {"champion": "2", "challenger": "3"}
    last = audit_rows(registry, model).filter(F.col("outcome") == "rolled_back")
    reason = "rollback to v2, the champion before v3: bad p99"
    assert_df_equality(
        last,
        expected_rows(spark, [(model, "champion", "3", "2", "rolled_back", reason, {}, "oncall")]),
        ignore_nullable=True,
    )
    # a second rollback goes one further back, not back to v3
    assert rollback(registry.client, model, audit=registry.audit, actor=ACTOR).to_version == "1"
    with pytest.raises(store.RegistryError, match=r"v1 is the first champion in the audit trail"):
        rollback(registry.client, model, audit=registry.audit, actor=ACTOR)
    assert aliases(registry, model)["champion"] == "1"


def test_rollback_refuses_without_a_trail_that_matches_the_registry(registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5})
    with pytest.raises(store.RegistryError, match=rf"{model} has no champion to roll back from"):
        rollback(registry.client, model, audit=registry.audit, actor=ACTOR)
    promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    v2 = register(model, {"auc": 0.60, "log_loss": 0.5})
    registry.client.set_registered_model_alias(model, "champion", v2)  # behind the gate's back
    with pytest.raises(
        store.RegistryError, match=r"champion is v2 but the audit trail records v1: the alias was"
    ):
        rollback(registry.client, model, audit=registry.audit, actor=ACTOR)
    assert aliases(registry, model)["champion"] == v2


# --- listing and the command line ----------------------------------------------------------


def test_listing_shows_versions_aliases_window_and_key_metrics(registry):
    model = registry.new_name("toy")
    policy = registry.policy("toy", model)
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5})
    promote(registry.client, policy, v1, audit=registry.audit, actor=ACTOR)
    register(model, {"auc": 0.71}, evaluation=EVAL_B, as_of="2026-03-22")
    full = load_policy(registry.policy_file)
    full = dataclasses.replace(full, models={**full.models, model: policy})
    [listing] = list_models(registry.client, full, model)
    assert [(r.version, r.aliases, r.metrics) for r in listing.versions] == [
        ("2", (), {"auc": 0.71}),
        ("1", ("challenger", "champion"), {"auc": 0.70, "log_loss": 0.5}),
    ]
    lines = format_listing([listing]).splitlines()
    assert lines[0] == f"{model}: 2 versions"
    assert lines[1].split() == ["version", "aliases", "as", "of", "eval", "data", "run",
                                "created", "(UTC)", "auc", "log_loss"]  # fmt: skip
    row2, row1 = lines[2].split(), lines[3].split()
    assert row2[:4] == ["2", "-", "2026-03-22", EVAL_B[7:15]] and row2[-2:] == ["0.7100", "-"]
    assert row1[:4] == ["1", "challenger,champion", "2026-03-15", EVAL_A[7:15]]
    assert row1[-2:] == ["0.7000", "0.5000"]


def _cli_args(registry: Registry, policy_file: Path | None = None) -> list[str]:
    paths = registry.config.paths
    return [
        "-q",
        "--set", f"paths.state_dir={paths.state_dir}",
        "--set", f"paths.lake={paths.lake}",
        "--set", f"paths.mlflow={paths.mlflow}",
        "--set", f"paths.registry_policy={policy_file or registry.policy_file}",
        "--set", "spark.show_progress=false",
    ]  # fmt: skip


def test_cli_promotes_refuses_lists_and_rolls_back_with_exit_codes(registry, tmp_path, capsys):
    # the CLI reads the policy by model name: a file with an entry for this test's model
    model = registry.new_name("toy")
    policy_file = tmp_path / "registry.yaml"
    policy_file.write_text(POLICY.replace("  toy:\n", f"  {model}:\n"))
    common = _cli_args(registry, policy_file)
    v1 = register(model, {"auc": 0.70, "log_loss": 0.5})
    v2 = register(model, {"auc": 0.70, "log_loss": 0.4})

    assert cli_main(["models", "promote", model, "--version", v1, *common]) == 0
    out = capsys.readouterr().out
    assert f"{model} v1 against no champion: PROMOTED" in out
    assert "champion is now v1" in out

    assert cli_main(["models", "promote", model, "--version", v2, *common]) == 1
    captured = capsys.readouterr()
    assert "FAIL  improvement over champion (auc, higher is better)" in captured.out
    assert "champion stays v1" in captured.out
    assert f"error: {model} v2 not promoted: improvement over champion" in captured.err
    assert "+0.0000, needs at least +0.01" in captured.err

    assert cli_main(["models", "promote", model, "--version", "9", *common]) == 2
    assert f"model '{model}' has no version 9 (versions: 2, 1)" in capsys.readouterr().err
    assert cli_main(["models", "promote", "nosuch", "--version", "1", *common]) == 2
    assert "no promotion policy for model 'nosuch'" in capsys.readouterr().err

    assert cli_main(["models", "list", model, *common]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{model}: 2 versions"
    assert out[2].split()[:2] == ["2", "challenger"] and out[3].split()[:2] == ["1", "champion"]

    assert cli_main(["models", "rollback", model, "--reason", "test", *common]) == 1
    assert "is the first champion in the audit trail" in capsys.readouterr().err

    assert cli_main(["models", "list", "nosuch", *common]) == 2
    assert "no registered model 'nosuch'" in capsys.readouterr().err
    assert cli_main(["models"]) == 2
    assert "promote" in capsys.readouterr().out


def test_cli_rollback_and_a_broken_policy(registry, tmp_path, capsys):
    model = registry.new_name("toy")
    policy_file = tmp_path / "registry.yaml"
    policy_file.write_text(POLICY.replace("  toy:\n", f"  {model}:\n"))
    common = _cli_args(registry, policy_file)
    for auc in (0.70, 0.80):
        version = register(model, {"auc": auc, "log_loss": 0.5})
        assert cli_main(["models", "promote", model, "--version", version, *common]) == 0
    capsys.readouterr()
    assert cli_main(["models", "rollback", model, "--actor", "oncall", *common]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{model}: champion v2 -> v1 (rollback to v1, the champion before v2)"
    )
    [event] = [e for e in registry.audit.events(model) if e.outcome == "rolled_back"]
    assert (event.actor, event.from_version, event.to_version) == ("oncall", "2", "1")

    text = policy_file.read_text()
    policy_file.write_text(text.replace("direction: higher", "direction: up", 1))
    assert cli_main(["models", "promote", model, "--version", "2", *common]) == 2
    assert f"models.{model}.compare.direction' must be higher or lower" in capsys.readouterr().err
    assert aliases(registry, model)["champion"] == "1"

"""Gated promotion and rollback by alias.

``promote`` makes the version the ``challenger`` (it is the candidate), evaluates the
model's policy against it -- required tags, metric thresholds, improvement over the
current ``champion`` on the same evaluation data -- and moves ``champion`` to it only if
every check passes. ``rollback`` moves ``champion`` back to the champion before the
current one, as the audit trail records it. Every alias change, and every refused
promotion, is appended to the audit table.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from feature_store.evaluation import EVALUATION_DATA_TAG, EvaluatorError, short
from feature_store.registry import CHALLENGER, CHAMPION
from feature_store.registry import store as st
from feature_store.registry.audit import (
    PROMOTED,
    REFUSED,
    ROLLED_BACK,
    SET,
    AliasEvent,
    AuditLog,
    now,
)
from feature_store.registry.evaluators import load_evaluator
from feature_store.registry.policy import ModelPolicy

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# Floating-point slack for "at least min_improvement": 0.7 - 0.6 is 0.09999999999999998.
_SLACK = 1e-12


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class Decision:
    """The gate's verdict on one version: every check with its reason, and the metrics
    it looked at (the candidate's logged values; ``champion.<m>`` or, when re-scored,
    ``rescored.<m>`` and ``rescored.champion.<m>``)."""

    model: str
    version: str
    champion: str | None  # the champion it was compared with (None: first champion)
    checks: tuple[Check, ...]
    metrics: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def reason(self) -> str:
        """One line for the audit table: the failures, or what the promotion rests on."""
        if self.passed:
            return f"all {len(self.checks)} checks passed; {self.checks[-1].reason}"
        return "refused: " + "; ".join(f"{c.name}: {c.reason}" for c in self.failures)

    def format(self) -> str:
        """The decision as text: the verdict, each check on its line, who is champion now."""
        against = f"champion v{self.champion}" if self.champion else "no champion"
        verdict = "PROMOTED" if self.passed else "REFUSED"
        lines = [f"{self.model} v{self.version} against {against}: {verdict}"]
        width = max(len(c.name) for c in self.checks)
        for c in self.checks:
            lines.append(f"  {'pass' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.reason}")
        if self.passed:
            lines.append(f"champion is now v{self.version}")
        elif self.champion:
            lines.append(f"champion stays v{self.champion}")
        else:
            lines.append("no champion yet; nothing changed")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Rollback:
    model: str
    from_version: str
    to_version: str
    reason: str


def evaluate_gate(
    client: MlflowClient, policy: ModelPolicy, version: str, *, champion: str | None
) -> Decision:
    """Every check of ``policy`` on ``version`` (against ``champion``); moves nothing."""
    candidate = st.model_version(client, policy.model, version)
    logged = client.get_run(candidate.run_id).data.metrics
    metrics: dict[str, float] = {}
    checks = [_tags_check(policy, candidate)]
    for threshold in policy.thresholds:
        value = logged.get(threshold.metric)
        name = threshold.describe()
        if value is None:
            checks.append(Check(name, False, f"not logged by run {candidate.run_id}"))
        elif math.isnan(value):
            checks.append(Check(name, False, "is NaN"))
        else:
            metrics[threshold.metric] = value
            checks.append(Check(name, threshold.holds(value), f"{value:.4f}"))
    checks.append(_improvement_check(client, policy, candidate, logged, champion, metrics))
    return Decision(policy.model, str(version), champion, tuple(checks), metrics)


def _tags_check(policy: ModelPolicy, candidate: ModelVersion) -> Check:
    missing = [t for t in policy.required_tags if not candidate.tags.get(t)]
    if missing:
        return Check("required tags", False, f"missing {', '.join(missing)}")
    return Check("required tags", True, f"all {len(policy.required_tags)} present")


def _improvement_check(
    client: MlflowClient,
    policy: ModelPolicy,
    candidate: ModelVersion,
    logged: dict[str, float],
    champion: str | None,
    metrics: dict[str, float],
) -> Check:
    compare = policy.compare
    metric, baseline_metric = compare.metric, compare.baseline_metric
    against = "" if baseline_metric == metric else f" against its {baseline_metric}"
    name = f"improvement over champion ({metric}{against}, {compare.direction} is better)"
    if champion is None:
        return Check(name, True, "no champion yet")
    value = logged.get(metric)
    if value is None:
        return Check(name, False, f"v{candidate.version}'s run logged no {metric}")
    metrics[metric] = value
    held = st.model_version(client, policy.model, champion)
    ours, theirs = candidate.tags.get(EVALUATION_DATA_TAG), held.tags.get(EVALUATION_DATA_TAG)
    if ours and ours == theirs:
        # Same rows: the metrics as logged are comparable.
        baseline = client.get_run(held.run_id).data.metrics.get(baseline_metric)
        if baseline is None:
            return Check(name, False, f"champion v{champion}'s run logged no {baseline_metric}")
        metrics[f"champion.{baseline_metric}"] = baseline
        basis = f"on the same evaluation data ({short(ours)})"
    else:
        differ = (
            f"champion v{champion} was evaluated on other data ({short(theirs)}) than "
            f"v{candidate.version} ({short(ours)})"
        )
        if compare.evaluator is None:
            return Check(
                name,
                False,
                f"{differ} and no evaluator exists for model '{policy.model}' to re-score the "
                "champion on the candidate's data: the logged metrics are not comparable",
            )
        try:
            evaluator = load_evaluator(compare.evaluator)
            rescored = evaluator(client, candidate, held, metric, champion_metric=baseline_metric)
        except EvaluatorError as exc:
            return Check(name, False, f"{differ}; re-scoring the champion failed: {exc}")
        value, baseline = rescored.candidate, rescored.champion
        metrics[f"rescored.{metric}"] = value
        metrics[f"rescored.champion.{baseline_metric}"] = baseline
        basis = f"both re-scored on {rescored.detail}, as {differ}"
    gain = compare.improvement(value, baseline)
    passed = not math.isnan(gain) and gain >= compare.min_improvement - _SLACK
    return Check(
        name,
        passed,
        f"{value:.4f} against champion v{champion}'s {baseline:.4f} {basis}: "
        f"{gain:+.4f}, needs at least {compare.min_improvement:+g}",
    )


def promote(
    client: MlflowClient,
    policy: ModelPolicy,
    version: str,
    *,
    audit: AuditLog,
    actor: str,
) -> Decision:
    """Make ``version`` the challenger, run the gate, and on a pass make it the champion.

    A failing gate leaves the champion where it was. The challenger move and the outcome
    (``promoted`` or ``refused``) are audited; the previous champion is in the promoted
    row's ``from_version``, which is what rollback restores."""
    model, version = policy.model, str(version)
    st.model_version(client, model, version)  # refuses unknown versions before any move
    current = st.aliases(client, model)
    champion = current.get(CHAMPION)
    if champion == version:
        raise st.RegistryError(f"{model} v{version} is already the champion")
    if current.get(CHALLENGER) != version:
        client.set_registered_model_alias(model, CHALLENGER, version)
        audit.append(
            AliasEvent(
                now(),
                model,
                CHALLENGER,
                current.get(CHALLENGER),
                version,
                SET,
                "candidate for champion",
                {},
                actor,
            )  # fmt: skip
        )
    decision = evaluate_gate(client, policy, version, champion=champion)
    if decision.passed:
        client.set_registered_model_alias(model, CHAMPION, version)
    outcome = PROMOTED if decision.passed else REFUSED
    audit.append(
        AliasEvent(
            now(),
            model,
            CHAMPION,
            champion,
            version,
            outcome,
            decision.reason,
            decision.metrics,
            actor,
        )  # fmt: skip
    )
    return decision


def champion_history(events: list[AliasEvent]) -> list[str]:
    """The champions in force, oldest first, replayed from the audit trail: a promotion
    pushes its version, a rollback pops the one it replaced. The last is the current
    champion, the one before it what a rollback restores."""
    stack: list[str] = []
    for event in events:
        if event.alias != CHAMPION:
            continue
        if event.outcome == PROMOTED:
            # a champion set before the trail began (or outside it) is still the one a
            # rollback of this promotion restores
            if event.from_version and (not stack or stack[-1] != event.from_version):
                stack.append(event.from_version)
            stack.append(event.to_version)
        elif event.outcome == ROLLED_BACK and stack and stack[-1] == event.from_version:
            stack.pop()
    return stack


def rollback(
    client: MlflowClient, model: str, *, audit: AuditLog, actor: str, note: str = ""
) -> Rollback:
    """Move ``champion`` back to the champion before the current one, as recorded in the
    audit trail; refuses when the trail has none or disagrees with the registry."""
    champion = st.aliases(client, model).get(CHAMPION)
    if champion is None:
        raise st.RegistryError(f"{model} has no champion to roll back from")
    history = champion_history(audit.events(model))
    if not history or history[-1] != champion:
        recorded = f"v{history[-1]}" if history else "no champion"
        raise st.RegistryError(
            f"{model}'s champion is v{champion} but the audit trail records {recorded}: the "
            "alias was moved outside `marquee models`, so the previous champion is unknown"
        )
    if len(history) < 2:
        raise st.RegistryError(
            f"{model} v{champion} is the first champion in the audit trail: "
            "there is no previous champion to restore"
        )
    target = history[-2]
    st.model_version(client, model, target)  # still registered?
    client.set_registered_model_alias(model, CHAMPION, target)
    reason = f"rollback to v{target}, the champion before v{champion}"
    if note:
        reason += f": {note}"
    audit.append(
        AliasEvent(now(), model, CHAMPION, champion, target, ROLLED_BACK, reason, {}, actor)
    )
    return Rollback(model, champion, target, reason)

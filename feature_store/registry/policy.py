"""The promotion policy: per registered model, what a version must show to become champion.

Kept as data (``mlflow/registry.yaml``, see its header for the format) so that changing a
gate is a reviewed one-line change, not a code change. Loading validates everything up
front: an unknown key, a threshold without bounds, a direction other than higher/lower or
an evaluator that does not exist is an error naming the file and the key, before any
alias moves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from feature_store.config import ConfigError
from feature_store.registry.evaluators import evaluator_names

SUPPORTED_VERSION = 1
HIGHER, LOWER = "higher", "lower"


class PolicyError(ConfigError):
    """The policy file is invalid, or has no entry for a model; names the file and key."""


@dataclasses.dataclass(frozen=True)
class Threshold:
    metric: str
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        """The threshold in words, e.g. ``gbt.roc_auc >= 0.7``."""
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return f"{self.metric} {' and '.join(parts)}"

    def holds(self, value: float) -> bool:
        """Whether `value` is within the bounds (inclusive)."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclasses.dataclass(frozen=True)
class Comparison:
    metric: str
    direction: str  # HIGHER or LOWER is better
    min_improvement: float  # absolute, in the metric's units
    evaluator: str | None = None  # an installed evaluator's name; None: none possible
    # The champion's metric the candidate's is held against (default: the same one), e.g.
    # a candidate's lower confidence bound against the champion's estimate.
    champion_metric: str | None = None

    @property
    def baseline_metric(self) -> str:
        return self.champion_metric or self.metric

    def improvement(self, candidate: float, champion: float) -> float:
        """How much better ``candidate`` is (negative: worse), whatever the direction."""
        return candidate - champion if self.direction == HIGHER else champion - candidate


@dataclasses.dataclass(frozen=True)
class ModelPolicy:
    model: str
    required_tags: tuple[str, ...]
    thresholds: tuple[Threshold, ...]
    compare: Comparison
    key_metrics: tuple[str, ...]
    description: str = ""

    @property
    def shown_metrics(self) -> tuple[str, ...]:
        """key_metrics, with the comparison metric first when they do not name it."""
        if self.compare.metric in self.key_metrics:
            return self.key_metrics
        return (self.compare.metric, *self.key_metrics)


@dataclasses.dataclass(frozen=True)
class Policy:
    source: str
    models: Mapping[str, ModelPolicy]

    def for_model(self, name: str) -> ModelPolicy:
        """The policy of model `name`; raises `PolicyError` when the file has none."""
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise PolicyError(
                f"{self.source}: no promotion policy for model '{name}' (policies: {known}); "
                f"add 'models.{name}' to the file"
            )
        return self.models[name]


def load_policy(path: str | Path) -> Policy:
    """The promotion policy in the YAML file at `path`; raises `PolicyError` if bad or missing."""
    file = Path(path)
    if not file.is_file():
        raise PolicyError(f"{file}: promotion policy file not found (paths.registry_policy)")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise PolicyError(f"{file}: not valid YAML: {exc}") from exc
    return parse_policy(data, source=str(file))


def parse_policy(data: Any, *, source: str) -> Policy:
    """The policy in parsed YAML `data`; raises `PolicyError` naming `source` and the key."""

    def fail(key: str, why: str) -> PolicyError:
        return PolicyError(f"{source}: key '{key}' {why}")

    top = _mapping(data, "(top level)", fail)
    _known_keys(top, "", {"version", "models"}, fail)
    if top.get("version") != SUPPORTED_VERSION:
        raise fail("version", f"must be {SUPPORTED_VERSION}, got {top.get('version')!r}")
    models = _mapping(top.get("models"), "models", fail)
    if not models:
        raise fail("models", "must name at least one model")
    return Policy(
        source=source,
        models={str(name): _model(str(name), entry, fail) for name, entry in models.items()},
    )


def _model(name: str, entry: Any, fail) -> ModelPolicy:
    key = f"models.{name}"
    entry = _mapping(entry, key, fail)
    fields = {"description", "required_tags", "thresholds", "compare", "key_metrics"}
    _known_keys(entry, key, fields, fail)
    if "compare" not in entry:
        raise fail(f"{key}.compare", "is required (metric, direction, min_improvement)")
    thresholds = _mapping(entry.get("thresholds", {}), f"{key}.thresholds", fail)
    return ModelPolicy(
        model=name,
        required_tags=_names(entry.get("required_tags", []), f"{key}.required_tags", fail),
        thresholds=tuple(
            _threshold(str(metric), bounds, f"{key}.thresholds.{metric}", fail)
            for metric, bounds in thresholds.items()
        ),
        compare=_comparison(entry["compare"], f"{key}.compare", fail),
        key_metrics=_names(entry.get("key_metrics", []), f"{key}.key_metrics", fail),
        description=str(entry.get("description", "")),
    )


def _threshold(metric: str, bounds: Any, key: str, fail) -> Threshold:
    bounds = _mapping(bounds, key, fail)
    _known_keys(bounds, key, {"min", "max"}, fail)
    if not bounds:
        raise fail(key, "needs min and/or max")
    low = _number(bounds["min"], f"{key}.min", fail) if "min" in bounds else None
    high = _number(bounds["max"], f"{key}.max", fail) if "max" in bounds else None
    if low is not None and high is not None and low > high:
        raise fail(key, f"has min {low:g} above max {high:g}")
    return Threshold(metric=metric, min=low, max=high)


def _comparison(value: Any, key: str, fail) -> Comparison:
    value = _mapping(value, key, fail)
    known = {"metric", "champion_metric", "direction", "min_improvement", "evaluator"}
    _known_keys(value, key, known, fail)
    for required in ("metric", "direction", "min_improvement"):
        if required not in value:
            raise fail(f"{key}.{required}", "is required")
    metric = value["metric"]
    if not isinstance(metric, str) or not metric:
        raise fail(f"{key}.metric", f"must be a metric name, got {metric!r}")
    if value["direction"] not in (HIGHER, LOWER):
        raise fail(f"{key}.direction", f"must be higher or lower, got {value['direction']!r}")
    improvement = _number(value["min_improvement"], f"{key}.min_improvement", fail)
    if improvement < 0:
        raise fail(f"{key}.min_improvement", f"must not be negative, got {improvement:g}")
    evaluator = value.get("evaluator")
    if evaluator is not None and evaluator not in (installed := evaluator_names()):
        known = ", ".join(sorted(installed))
        raise fail(f"{key}.evaluator", f"names no evaluator: {evaluator!r} (known: {known})")
    champion_metric = value.get("champion_metric")
    if champion_metric is not None and (
        not isinstance(champion_metric, str) or not champion_metric
    ):
        raise fail(f"{key}.champion_metric", f"must be a metric name, got {champion_metric!r}")
    return Comparison(metric, value["direction"], improvement, evaluator, champion_metric)


def _mapping(value: Any, key: str, fail) -> dict:
    if not isinstance(value, dict):
        raise fail(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _known_keys(value: dict, key: str, known: set[str], fail) -> None:
    for name in value:
        if name not in known:
            where = f"{key}.{name}" if key else str(name)
            raise fail(where, f"is unknown (known: {', '.join(sorted(known))})")


def _names(value: Any, key: str, fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(key, f"must be a list of names, got {value!r}")
    return tuple(value)


def _number(value: Any, key: str, fail) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise fail(key, f"must be a number, got {value!r}")
    return float(value)

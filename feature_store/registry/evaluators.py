"""The evaluators the promotion gate can call, found by name among the installed
packages' ``marquee.evaluators`` entry points.

A model domain declares its evaluator in its package's metadata (e.g. ``churn =
"feature_store.churn.rescoring:rescore"``); the registry never imports a model. The contract
(:data:`~feature_store.evaluation.Evaluator`) is in :mod:`feature_store.evaluation`.
Listing the names reads package metadata only; an evaluator's module is imported when the
gate first calls it. Which models have none: docs/registry-and-publishing.md.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from feature_store.evaluation import Evaluator, EvaluatorError

ENTRY_POINT_GROUP = "marquee.evaluators"


def evaluator_names() -> frozenset[str]:
    """The names of the installed evaluators (entry points of `ENTRY_POINT_GROUP`)."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


@functools.cache
def load_evaluator(name: str) -> Evaluator:
    """The evaluator declared as ``name``; :class:`EvaluatorError` when none is."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = ", ".join(sorted(evaluator_names())) or "none"
        raise EvaluatorError(f"no evaluator {name!r} is installed (known: {known})")
    return found[0].load()

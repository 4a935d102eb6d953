"""Registered models as a table: versions, aliases, data window and key metrics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import TYPE_CHECKING

from feature_store.evaluation import EVALUATION_DATA_TAG, short
from feature_store.registry import store as st
from feature_store.registry.policy import Policy

if TYPE_CHECKING:
    from mlflow import MlflowClient

AS_OF_TAG = "data.as_of"


@dataclasses.dataclass(frozen=True)
class VersionRow:
    model: str
    version: str
    aliases: tuple[str, ...]
    created: dt.datetime  # UTC
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float]  # the policy's key metrics the run logged

    def as_dict(self) -> dict:
        """The row as JSON-ready values (`created` in ISO format)."""
        return {**dataclasses.asdict(self), "created": self.created.isoformat()}


@dataclasses.dataclass(frozen=True)
class ModelListing:
    model: str
    metric_names: tuple[str, ...]  # from the policy; empty when the model has none
    has_policy: bool
    versions: tuple[VersionRow, ...]  # newest first


def list_models(
    client: MlflowClient, policy: Policy | None, model: str | None = None
) -> list[ModelListing]:
    """One listing per registered model (or just ``model``)."""
    names = [model] if model else st.model_names(client)
    listings = []
    for name in names:
        by_version: dict[str, list[str]] = {}
        for alias, version in sorted(st.aliases(client, name).items()):
            by_version.setdefault(version, []).append(alias)
        has_policy = policy is not None and name in policy.models
        shown = policy.models[name].shown_metrics if has_policy else ()
        rows = []
        for version in st.versions(client, name):
            mv = client.get_model_version(name, version)
            logged = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            rows.append(
                VersionRow(
                    model=name,
                    version=version,
                    aliases=tuple(by_version.get(version, ())),
                    created=dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC),
                    run_id=mv.run_id or "",
                    tags=dict(mv.tags),
                    metrics={m: logged[m] for m in shown if m in logged},
                )
            )
        listings.append(ModelListing(name, shown, has_policy, tuple(rows)))
    return listings


def format_listing(listings: list[ModelListing]) -> str:
    """The listings as text, a table per model."""
    if not listings:
        return "no registered models"
    blocks = []
    for listing in listings:
        header = [
            "version", "aliases", "as of", "eval data", "run", "created (UTC)",
            *listing.metric_names,
        ]  # fmt: skip
        body = [
            [
                row.version,
                ",".join(row.aliases) or "-",
                row.tags.get(AS_OF_TAG, "-"),
                short(row.tags.get(EVALUATION_DATA_TAG)),
                row.run_id[:8] or "-",
                row.created.strftime("%Y-%m-%d %H:%M"),
                *[_number(row.metrics.get(m)) for m in listing.metric_names],
            ]
            for row in listing.versions
        ]
        widths = [max(len(str(c)) for c in column) for column in zip(header, *body, strict=True)]
        note = "" if listing.has_policy else "  (no promotion policy)"
        count = len(listing.versions)
        lines = [f"{listing.model}: {count} version{'' if count == 1 else 's'}{note}"]
        for cells in (header, *body):
            cells = (f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))
            lines.append(("  " + "  ".join(cells)).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.4f}"

"""The MLflow model registry as the promotion workflow sees it: a client on the configured
store, aliases by name, versions as strings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feature_store.config import Config

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


class RegistryError(RuntimeError):
    """A request the registry cannot serve (no such model or version, nothing to roll
    back, ...); the message says what and why."""


def client_for(config: Config) -> MlflowClient:
    """A client on the configured tracking and registry store.

    Also points MLflow's process-wide URIs at it: loading a registered model
    (``models:/name/version``, when a champion is re-scored) resolves through them."""
    import mlflow

    from feature_store.tracking import tracking_uri

    uri = tracking_uri(config)
    if uri.startswith("sqlite:///"):
        Path(config.paths.mlflow).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def aliases(client: MlflowClient, model: str) -> dict[str, str]:
    """alias -> version of ``model``; the registered model's own map is the one the
    SQLite store fills (versions from a search carry no aliases there)."""
    registered = _registered(client, model)
    return {alias: str(version) for alias, version in registered.aliases.items()}


def model_version(client: MlflowClient, model: str, version: str) -> ModelVersion:
    """Version `version` of `model`; raises `RegistryError` when either is unknown."""
    from mlflow.exceptions import MlflowException

    _registered(client, model)
    try:
        return client.get_model_version(model, str(version))
    except MlflowException as exc:
        known = ", ".join(versions(client, model)) or "none"
        raise RegistryError(
            f"model '{model}' has no version {version} (versions: {known})"
        ) from exc


def versions(client: MlflowClient, model: str) -> list[str]:
    """Every version of ``model``, newest first."""
    if "'" in model:
        raise RegistryError(f"model name {model!r} contains a quote")
    found = client.search_model_versions(f"name = '{model}'")
    return [str(v) for v in sorted((int(v.version) for v in found), reverse=True)]


def model_names(client: MlflowClient) -> list[str]:
    """Every registered model's name, sorted."""
    names, token = [], None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        names.extend(m.name for m in page)
        token = page.token
        if not token:
            return sorted(names)


def _registered(client: MlflowClient, model: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(model)
    except MlflowException as exc:
        known = ", ".join(model_names(client)) or "none"
        raise RegistryError(f"no registered model '{model}' (models: {known})") from exc

"""MLflow set-up from the configuration: tracking and registry on SQLite, artifacts on disk.

``paths.mlflow`` is either a folder -- ``mlflow.db`` in it holds the runs and the model
registry, ``artifacts/`` the logged files -- or the URI of a tracking server
(``http://mlflow:5000``), which then keeps both.
"""

from __future__ import annotations

from pathlib import Path

from feature_store.config import Config


def tracking_uri(config: Config) -> str:
    target = config.paths.mlflow
    if "://" in target:
        return target
    return f"sqlite:///{Path(target).absolute() / 'mlflow.db'}"


def configure_mlflow(config: Config, experiment: str) -> str:
    """Point MLflow at the configured store and select (or create) ``experiment``;
    returns the tracking URI."""
    import mlflow

    uri = tracking_uri(config)
    artifacts = None
    if uri.startswith("sqlite:///"):
        folder = Path(config.paths.mlflow).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        artifacts = (folder / "artifacts").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment)
    return uri

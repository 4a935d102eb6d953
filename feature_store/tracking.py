"""MLflow set-up from the configuration: tracking and registry on SQLite, artifacts on disk.

``paths.mlflow`` is either a folder -- ``mlflow.db`` in it holds the runs and the model
registry, ``artifacts/`` the logged files -- or the URI of a tracking server
(``http://mlflow:5000``), which then keeps both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from feature_store.config import Config


def tracking_uri(config: Config) -> str:
    """The MLflow tracking URI: `paths.mlflow` when a URI, else SQLite in its folder."""
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


# What a logged model needs to load and predict, pinned to the versions it was trained
# with. Listed rather than inferred: MLflow infers requirements by reloading the model in
# a second Python process, which for these models starts a second Spark JVM.
MODEL_RUNTIME_PACKAGES = (
    "mlflow",
    "pyspark",
    "delta-spark",
    "pandas",
    "pyarrow",
    "numpy",
    "scipy",
    "threadpoolctl",
    "pyyaml",
)


def model_requirements() -> list[str]:
    """The pip pins a logged model needs: `MODEL_RUNTIME_PACKAGES` at installed versions."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in MODEL_RUNTIME_PACKAGES]


def package_code_path() -> str:
    """The whole ``feature_store`` package, for ``code_paths`` of a pyfunc model.

    The whole package rather than MLflow's inferred subset: loading a model puts its code
    folder first on ``sys.path``, so a partial copy would shadow the installed package
    for every later import in that process (and in the processes it starts)."""
    return str(Path(__file__).resolve().parent)


def tag_model_version(model_name: str, version: str, tags: dict[str, str]) -> None:
    """Set `tags` on `version` of `model_name` in the active registry."""
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def tag_registered_version(model_info: Any, model_name: str, tags: dict[str, str]) -> str | None:
    """The version a `log_model` call registered (None when it registered none), tagged
    with `tags` so that the promotion gate can read the run's data window from it."""
    registered = model_info.registered_model_version
    if registered is None:
        return None
    version = str(registered)
    tag_model_version(model_name, version, tags)
    return version

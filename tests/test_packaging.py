"""Guards on the installation itself."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_mlflow_resolves_to_the_installed_package():
    import mlflow

    origin = Path(mlflow.__file__).resolve()
    assert "site-packages" in origin.parts, origin
    assert origin.parent != (REPO / "mlflow").resolve(), f"mlflow imported from ./mlflow: {origin}"
    assert hasattr(mlflow, "set_registered_model_alias") or hasattr(mlflow, "MlflowClient")


def test_repository_mlflow_folder_cannot_shadow_the_package():
    assert not (REPO / "mlflow" / "__init__.py").exists()
    assert not (REPO / "mlflow" / "mlflow.py").exists()


def test_library_and_jobs_are_installed_packages():
    assert importlib.util.find_spec("feature_store.ingest") is not None
    assert importlib.util.find_spec("jobs.ingest_events") is not None

"""What a run logged, read from its MLflow store."""

from __future__ import annotations

from mlflow.tracking import MlflowClient


def logged_model_files(client: MlflowClient, run_id: str) -> list[str]:
    """The files of the one MLflow Model (LoggedModel) that ``run_id`` logged, read with
    ``client``'s own store (MLflow resolves ``runs:/<id>/model`` through the process's
    global tracking URI, which a test process that trained nothing has not set)."""
    experiment = client.get_run(run_id).info.experiment_id
    models = [m for m in client.search_logged_models([experiment]) if m.source_run_id == run_id]
    assert len(models) == 1, models
    return [f.path for f in client.list_logged_model_artifacts(models[0].model_id)]

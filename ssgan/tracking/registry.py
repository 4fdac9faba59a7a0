"""The MLflow Model Registry: a promoted run's registered version and its aliases."""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from ssgan.tracking.mlflow_model import logged_model_of
from ssgan.tracking.runs import MODEL_ARTIFACT
from ssgan.tracking.store import TrackingStore


def registered_version(
    store: TrackingStore,
    name: str,
    run_id: str,
    tags: dict[str, str],
    artifact_path: str = MODEL_ARTIFACT,
) -> tuple[str, bool]:
    """The registry version of model ``name`` carrying all ``tags``, created (from the
    run's ``artifact_path``) when none does. Returns ``(version, created)``: calling it
    again after a failure repairs, and never registers the same thing twice."""
    client = store.client
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    query = " and ".join(
        [f"name='{name}'", *(f"tags.`{key}`='{value}'" for key, value in tags.items())]
    )
    found = client.search_model_versions(query)
    if found:
        return str(min(int(v.version) for v in found)), False
    run = client.get_run(run_id)
    model = logged_model_of(client, run)
    if model is not None:  # the run's MLflow Model: models:/<name>@<alias> loads it
        source, model_id = f"models:/{model.model_id}", model.model_id
    else:  # a run logged before models were MLflow Models: its plain SavedModel folder
        source, model_id = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}", None
    version = client.create_model_version(
        name, source=source, run_id=run_id, tags=tags, model_id=model_id
    )
    return str(version.version), True


def registry_aliases(store: TrackingStore, name: str) -> dict[str, str]:
    """``{alias: registry version}`` of model ``name`` (empty if it is not registered)."""
    client = store.client
    try:
        return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    except MlflowException:
        return {}


def set_registry_alias(store: TrackingStore, name: str, alias: str, version: str) -> None:
    store.client.set_registered_model_alias(name, alias, version)


def alias_version_tags(store: TrackingStore, name: str, alias: str) -> dict[str, str]:
    """The tags of the registry version ``name@alias`` points at (empty if none does)."""
    try:
        return dict(store.client.get_model_version_by_alias(name, alias).tags)
    except MlflowException:
        return {}


def delete_registry_alias(store: TrackingStore, name: str, alias: str) -> None:
    store.client.delete_registered_model_alias(name, alias)

"""The MLflow Model Registry: a promoted run's registered version and its aliases."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from ssgan.tracking.mlflow_model import logged_model_of
from ssgan.tracking.runs import MODEL_ARTIFACT
from ssgan.tracking.store import TrackingStore


@dataclass(frozen=True)
class Registered:
    """The registry version that stands for one thing (``version``), whether this call
    created it, and any ``duplicates`` carrying the same tags (a race before the registry
    sync was serialised could register one serving version twice)."""

    version: str
    created: bool
    duplicates: tuple[str, ...] = ()


def ensure_registered_model(store: TrackingStore, name: str) -> None:
    """Create registered model ``name`` unless it exists; another process creating it at
    the same moment is not an error (its creation is as good as ours)."""
    client = store.client
    try:
        client.get_registered_model(name)
        return
    except MlflowException:
        pass
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def registered_version(
    store: TrackingStore,
    name: str,
    run_id: str,
    tags: dict[str, str],
    artifact_path: str = MODEL_ARTIFACT,
) -> Registered:
    """The registry version of model ``name`` carrying all ``tags`` (the lowest, when
    several do), created from the run's ``artifact_path`` when none does. Calling it
    again after a failure repairs. Check and create are two requests: callers that may
    race serialise them (the serving folder's lock)."""
    client = store.client
    ensure_registered_model(store, name)
    query = " and ".join(
        [f"name='{name}'", *(f"tags.`{key}`='{value}'" for key, value in tags.items())]
    )
    versions = {int(v.version): v for v in client.search_model_versions(query)}
    found = sorted(versions)
    if found:
        kept = versions[found[0]]
        kept_model = kept.model_id or _logged_model_id(kept.source)
        if kept_model:  # repairs a link a failure after creating the version left out
            link_logged_model(store, kept_model, name, str(kept.version))
        return Registered(str(found[0]), False, tuple(str(v) for v in found[1:]))
    run = client.get_run(run_id)
    model = logged_model_of(client, run)
    if model is not None:  # the run's MLflow Model: models:/<name>@<alias> loads it
        source, model_id = f"models:/{model.model_id}", model.model_id
    else:  # a run logged before models were MLflow Models: its plain SavedModel folder
        source, model_id = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}", None
    version = client.create_model_version(
        name, source=source, run_id=run_id, tags=tags, model_id=model_id
    )
    if model_id is not None:
        link_logged_model(store, model_id, name, str(version.version))
    return Registered(str(version.version), True)


def _logged_model_id(source: str | None) -> str | None:
    """The LoggedModel id of a version's ``models:/m-…`` source (the SQL registry store
    keeps no model id on its versions)."""
    if source and source.startswith("models:/m-") and "/" not in source[len("models:/") :]:
        return source.removeprefix("models:/")
    return None


def link_logged_model(store: TrackingStore, model_id: str, name: str, version: str) -> None:
    """List registry version ``name``/``version`` in the LoggedModel's ``mlflow.modelVersions``
    tag, which the Models tab reads, unless it is listed already.

    A tracking server sets that tag itself when a version is created from a model id; the
    SQLite store does not (its ``create_model_version`` keeps the model id on the version
    only). The tag is what MLflow's server writes (``AbstractStore.set_model_versions_tags``):
    a JSON list of ``{"name": …, "version": <int>}``, appended to."""
    client = store.client
    tag = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    listed = json.loads(tag) if tag else []
    if any(v.get("name") == name and str(v.get("version")) == version for v in listed):
        return
    entry = {"name": name, "version": int(version)}
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*listed, entry])})


def delete_registry_version(store: TrackingStore, name: str, version: str) -> None:
    store.client.delete_model_version(name, version)


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

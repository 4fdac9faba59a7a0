"""Make MLflow agree with the serving folder: run tags, registry versions and the aliases
that follow the labels; rerunning repairs what a failure left missing."""

from __future__ import annotations

from dataclasses import dataclass, field

from ssgan.config import PromoteAppConfig
from ssgan.errors import UserError, first_line
from ssgan.serving.labels import current_labels
from ssgan.serving.models_config import LABELS
from ssgan.serving.repository import PromoteError, ServingFolder, locked, read_provenance
from ssgan.tracking.registry import (
    alias_version_tags,
    delete_registry_alias,
    delete_registry_version,
    registered_version,
    registry_aliases,
    set_registry_alias,
)
from ssgan.tracking.runs import (
    MODEL_ARTIFACT,
    get_run,
    set_run_tags,
)
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tags import (
    PROMOTED_PATH_TAG,
    PROMOTED_VERSION_TAG,
    SERVING_ROOT_TAG,
    SERVING_VERSION_TAG,
)


@dataclass
class Recorded:
    """What :func:`record_in_mlflow` had to write: a line for each tag, registry version
    or alias it set, and the aliases it removed (their labels were dropped)."""

    written: list[str] = field(default_factory=list)
    removed_aliases: set[str] = field(default_factory=set)


def alias_for(cfg: PromoteAppConfig, label: str) -> str:
    """The registry alias that follows ``label`` (``alias`` for stable, ``canary_alias``)."""
    return cfg.alias if label == "stable" else cfg.canary_alias


def record_in_mlflow(
    cfg: PromoteAppConfig,
    store: TrackingStore,
    folder: ServingFolder,
    run_id: str | None,
    version: int | None,
) -> Recorded:
    """Make MLflow agree with the serving folder: the run's tag names its version, each
    labelled version (and ``version``) has a registry version, each label's registry alias
    points at it. Writes only what is missing or wrong, so running it again after a
    failure repairs. Returns what it had to write and remove.

    Runs under the model folder's lock, which the caller must not hold: the registry's
    "find the version tagged N, else create it" is two requests, and two promotes
    finishing together would both create. Under the lock the labels read here are also
    the ones the aliases end up following."""
    root = folder.root
    where = f"version {version} is in {root / str(version)}" if version else f"{root} is"
    try:
        with locked(root):
            return _sync_mlflow(cfg, store, folder, run_id, version)
    except UserError as err:
        problem = str(err)
    except Exception as err:  # the serving folder is already changed: say so, one line
        problem = first_line(err)
    raise PromoteError(
        f"{where} as intended, but recording it in MLflow failed ({problem}): "
        "run the same command again to record it"
    )


def _sync_mlflow(
    cfg: PromoteAppConfig,
    store: TrackingStore,
    folder: ServingFolder,
    run_id: str | None,
    version: int | None,
) -> Recorded:
    root = folder.root
    recorded = Recorded()
    written = recorded.written
    if run_id and version:
        wanted = {
            PROMOTED_VERSION_TAG: str(version),
            PROMOTED_PATH_TAG: str((root / str(version)).resolve()),
        }
        tags = get_run(store, run_id).data.tags
        if any(tags.get(key) != value for key, value in wanted.items()):
            set_run_tags(store, run_id, wanted)
            written.append(f"run tag {PROMOTED_VERSION_TAG}={version}")
    labels = current_labels(folder)
    registry: dict[int, str] = {}
    duplicates: dict[int, tuple[str, ...]] = {}
    for number in sorted({*labels.values(), *([version] if version else [])}):
        owner = read_provenance(root / str(number)).get("run_id")
        if not owner:
            continue
        tags = {SERVING_VERSION_TAG: str(number), SERVING_ROOT_TAG: str(root.resolve())}
        found = registered_version(store, cfg.model_name, owner, tags, MODEL_ARTIFACT)
        registry[number], duplicates[number] = found.version, found.duplicates
        if found.created:
            written.append(f"registry version {found.version} (version {number})")
    aliases = registry_aliases(store, cfg.model_name)
    for label, number in sorted(labels.items()):
        alias = alias_for(cfg, label)
        if number in registry and aliases.get(alias) != registry[number]:
            set_registry_alias(store, cfg.model_name, alias, registry[number])
            written.append(f"alias {alias} -> registry version {registry[number]}")
    # One serving version, one registry version: the lowest is kept (the aliases now
    # point at it); the others a race registered (before this ran under the lock) go.
    for number, extra in sorted(duplicates.items()):
        for duplicate in extra:
            delete_registry_version(store, cfg.model_name, duplicate)
            written.append(f"removed registry version {duplicate} (duplicate of version {number})")
    # A label models.config no longer has (dropped because its version folder is gone):
    # its alias would keep models:/<name>@<alias> on that version. Only an alias on a
    # version of this serving folder is removed: another folder may share the registry.
    for label in LABELS:
        alias = alias_for(cfg, label)
        if label in labels or alias not in aliases:
            continue
        tags = alias_version_tags(store, cfg.model_name, alias)
        if tags.get(SERVING_ROOT_TAG) == str(root.resolve()):
            delete_registry_alias(store, cfg.model_name, alias)
            recorded.removed_aliases.add(alias)
    return recorded

"""TF Serving's model config file (``models.config``): which versions are served, by label.

The file is TF Serving's ``ModelServerConfig`` message in protobuf text format, read with
``--model_config_file``. For each model it names the base path, a ``specific`` version
policy that loads exactly the labelled versions, and ``version_labels`` (``stable``,
``canary``) that clients address as ``/v1/models/<name>/labels/<label>``. Entries of other
models in the same file are kept as they are.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig, ModelServerConfig

from ssgan import files
from ssgan.config_checks import VERSION_LABELS
from ssgan.errors import UserError

MODELS_CONFIG = "models.config"
LABELS = VERSION_LABELS  # declared with the promote checks (ssgan/config_checks.py)


class ServingConfigError(UserError):
    """A models.config that cannot be read or does not describe the model."""


def parse(text: str, where: Path | str) -> ModelServerConfig:
    """The ``ModelServerConfig`` in ``text``; one-line error naming ``where`` if malformed."""
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ServingConfigError(
            f"{where} is not a TF Serving model config ({err}): fix or remove it"
        ) from err
    return config


def read(path: Path) -> ModelServerConfig:
    """The config at ``path``; an empty one when the file does not exist yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ModelServerConfig()
    except OSError as err:
        raise ServingConfigError(
            f"cannot read {path} ({err.strerror or err}): make it a readable file, or remove it"
        ) from err
    return parse(text, path)


def model_entry(config: ModelServerConfig, name: str) -> ModelConfig | None:
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    return None


def labels_of(config: ModelServerConfig, name: str) -> dict[str, int]:
    """``{label: version}`` of model ``name`` (empty when the model is not configured)."""
    entry = model_entry(config, name)
    return dict(entry.version_labels) if entry is not None else {}


def with_labels(
    config: ModelServerConfig, name: str, base_path: str, labels: dict[str, int]
) -> ModelServerConfig:
    """A copy of ``config`` in which model ``name`` serves exactly the ``labels``' versions."""
    updated = ModelServerConfig()
    updated.CopyFrom(config)
    entry = model_entry(updated, name)
    if entry is None:
        entry = updated.model_config_list.config.add()
    entry.name = name
    entry.base_path = base_path
    entry.model_platform = "tensorflow"
    entry.model_version_policy.specific.Clear()
    entry.model_version_policy.specific.versions.extend(sorted(set(labels.values())))
    entry.version_labels.clear()
    for label in sorted(labels):
        entry.version_labels[label] = labels[label]
    return updated


def to_text(config: ModelServerConfig) -> str:
    return text_format.MessageToString(config)


def write_atomically(path: Path, config: ModelServerConfig) -> None:
    """Write ``config`` to a temporary file beside ``path``, fsync, rename over ``path``:
    TF Serving's config poll reads the old file or the new one, never half of one."""
    files.write_atomically(path, to_text(config))

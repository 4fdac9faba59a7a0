"""The data a run used, as MLflow datasets (the run's "Datasets used"): one per split, named
after the data, with the data's fingerprint as digest, its file as source and its size."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import mlflow.data
import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT


class Split(NamedTuple):
    """One split as the run used it: where it was read from and its arrays."""

    source: str
    features: np.ndarray
    targets: np.ndarray | None = None


def dataset_inputs(fingerprint: str, splits: dict[str, Split]) -> list[DatasetInput]:
    """MLflow dataset inputs for ``{context: split}`` (context ``train``, ``validation``,
    ``test``). ``fingerprint`` is ``<data>:<hash>``: the dataset is named ``<data>-<context>``
    and its digest is the hash (MLflow allows a digest of 36 characters), so name and
    digest together are the ``ssgan.data_fingerprint`` tag."""
    data, _, digest = fingerprint.rpartition(":")
    inputs = []
    for context, split in splits.items():
        with warnings.catch_warnings():
            # MLflow registers its local-file source class twice and warns that a path
            # "can be interpreted in multiple ways"; both ways are the same class.
            warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
            dataset = mlflow.data.from_numpy(  # type: ignore[attr-defined]  # set at import
                split.features, source=split.source, targets=split.targets,
                name=f"{data or 'data'}-{context}", digest=digest[:36],
            )  # fmt: skip
        record = dataset.to_dict()  # name, digest, source, source_type, schema, profile
        inputs.append(
            DatasetInput(Dataset(**record), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
        )
    return inputs

"""A run's exported model as an MLflow Model: logged as a pyfunc (models from code, the
SavedModel as its artifact), found again from a run or a ``models:/`` URI, and the
SavedModel inside it located for TF Serving.

Runs logged before models were MLflow Models keep a plain SavedModel folder as their
``model/`` artifact; everything here reads both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModel
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from ssgan.errors import DiskFullError, disk_full_reason, first_line
from ssgan.tracking.runs import MODEL_ARTIFACT, RUN_ID_PATTERN
from ssgan.tracking.store import TrackingError, TrackingStore

# The file MLflow copies into each model and runs to build it. Not imported here: it is
# a script for MLflow's loader (it calls mlflow.models.set_model when run).
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
SAVED_MODEL_KEY = "saved_model"  # = pyfunc_model.ARTIFACT
INPUT_COLUMN = "image"  # = INPUT_COLUMN
MLMODEL_FILE = "MLmodel"
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.binary, INPUT_COLUMN)]),
    outputs=Schema([ColSpec(DataType.long, "digit"), ColSpec(Array(DataType.float), "scores")]),
)


def log_pyfunc_model(
    store: TrackingStore,
    run_id: str,
    saved_model_dir: Path,
    example_images: Sequence[bytes],
    step: int,
    retrying: Callable[..., Any],
) -> str:
    """Log ``saved_model_dir`` as the run's MLflow Model named ``model``; return its
    ``models:/m-…`` URI. The run's metrics at ``step`` are linked to it.

    ``retrying(what, call, *args)`` retries store outages. Logging again (a resumed run
    exporting again) fills the same LoggedModel instead of adding a second one."""
    client = store.client
    run = retrying("read the run", client.get_run, run_id)
    logged = logged_model_of(client, run)
    # Already the run's output (a resumed run exporting again): MLflow would record the
    # run -> model link a second time, which its store refuses (UNIQUE constraint), so the
    # run could never finish. The model's files are replaced; the link stays as it was.
    link_to = None if logged is not None else run_id
    if logged is None:
        logged = retrying(
            "create the logged model", client.create_logged_model,
            run.info.experiment_id, MODEL_ARTIFACT, run_id, None, dict(run.data.params),
        )  # fmt: skip
    example = pd.DataFrame({INPUT_COLUMN: list(example_images)})
    store.use_in_fluent_api()  # Model.log writes through MLflow's global URI
    retrying(
        "store the MLflow model", _model_log,
        link_to, name=MODEL_ARTIFACT, model_id=logged.model_id,
        step=step, python_model=str(MODEL_CODE),
        artifacts={SAVED_MODEL_KEY: str(saved_model_dir)},
        signature=SIGNATURE, input_example=example, pip_requirements=_requirements(),
    )  # fmt: skip
    return f"models:/{logged.model_id}"


def _model_log(link_to: str | None, **kwargs: Any) -> None:
    """``Model.log`` of the pyfunc, the run linked to it when ``link_to`` names it. Given no
    run, Model.log links MLflow's active run, which the run being trained is (its link
    exists already): MLflow's active run is per thread, so that call runs in a thread of
    its own, where none is active."""
    if link_to is not None:
        Model.log(None, mlflow.pyfunc, run_id=link_to, **kwargs)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssgan-model") as pool:
        pool.submit(Model.log, None, mlflow.pyfunc, run_id=None, **kwargs).result()


def _requirements() -> list[str]:
    """Pinned here: MLflow would otherwise load the model in a subprocess to infer them."""
    import tensorflow as tf

    return [
        f"mlflow=={mlflow.__version__}",
        f"tensorflow=={tf.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def logged_model_of(client: MlflowClient, run: Any) -> LoggedModel | None:
    """The LoggedModel named ``model`` that ``run`` output, if any."""
    outputs = run.outputs.model_outputs if run.outputs else []
    for output in outputs:
        model = client.get_logged_model(output.model_id)
        if model.name == MODEL_ARTIFACT:
            return model
    return None


def run_model_uri(store: TrackingStore, run_id: str) -> str | None:
    """``models:/m-…`` of the run's MLflow Model; None for a run without one (a run
    logged before models were MLflow Models, or one that exported nothing)."""
    client = store.client
    model = logged_model_of(client, client.get_run(run_id))
    return f"models:/{model.model_id}" if model else None


def has_model(store: TrackingStore, run_id: str) -> bool:
    """Whether the run has a model: its MLflow Model, or an older run's ``model/`` folder."""
    store.use_in_fluent_api()  # runs:/<id>/model resolves through MLflow's global URI
    try:
        listing = mlflow.artifacts.list_artifacts(
            artifact_uri=f"runs:/{run_id}/{MODEL_ARTIFACT}", tracking_uri=store.uri
        )
    except (MlflowException, OSError):
        return False
    return bool(listing)


def download_model(store: TrackingStore, model_uri: str, dst_dir: Path) -> Path:
    """Copy a model (``runs:/<id>/model``, ``models:/<name>@<alias>``, ``models:/m-…``) into
    ``dst_dir``; return the local folder. One-line TrackingError when it cannot be found.
    Reading never creates a store: a SQLite file that is not there is refused."""
    uri = store.uri
    if store.is_local and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise TrackingError(
            f"there is no tracking store at {uri}, so no model {model_uri} (point tracking.uri, "
            "--tracking-uri or MLFLOW_TRACKING_URI at the store the model was logged to)"
        )
    store.use_in_fluent_api()  # models:/ and runs:/ URIs resolve through the global URI
    Path(dst_dir).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(dst_dir), tracking_uri=uri
        )
    except (MlflowException, OSError) as err:
        full = disk_full_reason(err, written=dst_dir)
        if full is not None:  # not a missing model: no room to copy it here
            raise DiskFullError(
                f"model {model_uri} could not be downloaded into {dst_dir}: {full}"
            ) from err
        reason = first_line(err)[:200]
        raise TrackingError(
            f"model {model_uri} was not found in the tracking store {uri} "
            f"({reason}; check the name, alias or run id, and tracking.uri)"
        ) from err
    return Path(local)


def download_run_model(store: TrackingStore, run_id: str, dst_dir: Path) -> Path:
    """The run's model folder, downloaded (MLflow Model or an older run's SavedModel)."""
    if not RUN_ID_PATTERN.match(run_id):
        raise TrackingError(f"run_id={run_id!r} is not an MLflow run id")
    return download_model(store, f"runs:/{run_id}/{MODEL_ARTIFACT}", dst_dir)


def saved_model_in(model_dir: Path) -> Path:
    """The SavedModel folder inside a downloaded model: the pyfunc's ``saved_model``
    artifact, as its ``MLmodel`` names it; an older run's ``model/`` is the SavedModel."""
    mlmodel = Path(model_dir) / MLMODEL_FILE
    if not mlmodel.is_file():
        return Path(model_dir)
    pyfunc = Model.load(str(mlmodel)).flavors.get("python_function", {})
    artifact = pyfunc.get("artifacts", {}).get(SAVED_MODEL_KEY, {})
    if "path" not in artifact:
        raise TrackingError(
            f"{model_dir} is an MLflow Model without a '{SAVED_MODEL_KEY}' artifact: not an "
            "ssgan model"
        )
    return Path(model_dir) / artifact["path"]

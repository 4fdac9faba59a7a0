"""A run's model as an MLflow Model (pyfunc load, `mlflow models serve`, the Models tab, the
registry, predict with a models:/ URI) and the run's MLflow context: user, source, git,
datasets, system metrics."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from ssgan.cli import compose_config
from ssgan.data import load_data
from ssgan.predict import main as predict_main
from ssgan.serving.images import encode_png
from ssgan.serving.promotion import promote, promote_settings
from ssgan.serving.saved_model import score_saved_model
from ssgan.tracking.mlflow_model import MODEL_CODE, download_run_model, saved_model_in
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tracker import RunTracker
from tests.helpers.configs import typed_config
from tests.helpers.processes import free_ports, wait_until_answered


def _images(smoke_run: dict, count: int = 3) -> tuple[list[bytes], np.ndarray]:
    """PNG bytes of the first test images and the scores the run's SavedModel gives them."""
    cfg = smoke_run["cfg"]
    data = load_data(typed_config(cfg).data, cfg.model.num_classes)
    return [encode_png(image) for image in data.test_x[:count]], data.test_x[:count]


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def promoted(smoke_run: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke run promoted into a fresh serving folder (labelled stable)."""
    cfg = smoke_run["cfg"]
    serving = tmp_path_factory.mktemp("mlflow-model") / "serving"
    result = promote(
        promote_settings(
            compose_config(
                "promote",
                [
                    f"run_id={smoke_run['summary'].run_id}",
                    f"serving_dir={serving}",
                    f"tracking.uri={cfg.tracking.uri}",
                    f"tracking.artifact_root={cfg.tracking.artifact_root}",
                ],
            )
        )
    )
    return {"version_dir": Path(result.path), "serving": serving}


@pytest.mark.integration
def test_the_runs_model_is_an_mlflow_model_that_loads_and_is_in_the_models_tab(
    smoke_run: dict, promoted: dict, tmp_path: Path
) -> None:
    cfg, summary = smoke_run["cfg"], smoke_run["summary"]
    run_id, model_uri = summary.run_id, summary.model_uri
    mlflow.set_tracking_uri(cfg.tracking.uri)
    blobs, pixels = _images(smoke_run)
    # The SavedModel inside the MLflow Model is, file for file, what promote served.
    local = download_run_model(TrackingStore(cfg.tracking), run_id, tmp_path)
    saved = saved_model_in(local)
    assert saved == local / "artifacts" / "saved_model"
    served = _file_hashes(promoted["version_dir"])
    served.pop("assets.extra/provenance.json")
    assert _file_hashes(saved) == served
    expected = score_saved_model(saved, pixels)
    for uri in (f"runs:/{run_id}/model", model_uri, "models:/ssgan@production"):
        model = mlflow.pyfunc.load_model(uri)
        out = model.predict(pd.DataFrame({"image": blobs}))
        assert list(out["digit"]) == list(np.argmax(expected, axis=-1)), uri
        np.testing.assert_allclose(np.stack(out["scores"]), expected, atol=1e-5)
    signature = model.metadata.signature
    assert signature.inputs.input_names() == ["image"]
    assert signature.outputs.input_names() == ["digit", "scores"]
    # The Models tab: a LoggedModel of the run, READY, with the run's final metrics linked.
    run = MlflowClient(cfg.tracking.uri).get_run(run_id)
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    assert [m.model_uri for m in found] == [model_uri]
    assert str(found[0].status) == "READY" or found[0].status.name == "READY"
    linked = {m.key: m.value for m in found[0].metrics}
    assert linked["export/test_accuracy"] == pytest.approx(summary.export_test_accuracy)
    assert [o.model_id for o in run.outputs.model_outputs] == [model_uri.removeprefix("models:/")]
    # The registry version promote made points at the model, not at a file path.
    version = MlflowClient(cfg.tracking.uri).get_model_version_by_alias("ssgan", "production")
    assert version.source == model_uri


@pytest.mark.unit
def test_the_pyfunc_takes_image_bytes_or_base64_text_of_them_and_refuses_the_rest() -> None:
    """The tensor formats of `mlflow models serve` pass base64 text on as bytes (or as
    str); the DataFrame formats pass the decoded image. Either way the same bytes go to
    the SavedModel; anything else is one line."""
    spec = importlib.util.spec_from_file_location("ssgan_pyfunc_model", MODEL_CODE)
    assert spec is not None and spec.loader is not None
    pyfunc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pyfunc)  # the file MLflow runs: it imports nothing of ssgan
    for kind in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, kind)
        image = buffer.getvalue()
        text = base64.b64encode(image)
        for value in (image, text, text.decode(), text[:40] + b"\n" + text[40:]):
            assert pyfunc.image_bytes(value) == image, (kind, value[:12])
    for value, words in (
        (b"hello", "image 3 is not a JPEG, PNG, GIF or BMP image, nor base64 text of one"),
        (base64.b64encode(b"hello"), "(base64 text of 5 bytes starting with b'hello')"),
        (b"", "(0 bytes)"),
        (7, "image 3 is of type int, not encoded image bytes"),
    ):
        with pytest.raises(pyfunc.BadImageError) as refused:
            pyfunc.image_bytes(value, 3)
        error = refused.value
        assert words in error.message and "\n" not in error.message
        assert error.error_code == "INVALID_PARAMETER_VALUE"
        error.message = f"Failed to predict data '{value!r}'. \nError: {error.message}"
        assert "Failed to predict" not in error.message  # the scoring server's prefix


def _request_bodies(blob: bytes) -> dict[str, tuple[str, str]]:
    """The image as each request format of `mlflow models serve` carries it:
    {format: (content type, body)}."""
    text = base64.b64encode(blob).decode()
    json_bodies = {
        "dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[text]]}},
        "dataframe_records": {"dataframe_records": [{"image": text}]},
        "inputs (columns)": {"inputs": {"image": [text]}},
        "inputs (records)": {"inputs": [{"image": text}]},
        "inputs (tensor)": {"inputs": [text]},
        "instances (records)": {"instances": [{"image": text}]},
        "instances (tensor)": {"instances": [text]},
    }
    bodies = {name: ("application/json", json.dumps(body)) for name, body in json_bodies.items()}
    return bodies | {"csv": ("text/csv", f"image\n{text}\n")}


def _post(url: str, content_type: str, body: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, body.encode(), {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.mark.e2e
def test_mlflow_models_serve_answers_every_request_format(smoke_run: dict, tmp_path: Path) -> None:
    """A real `mlflow models serve` process on loopback gives the same digit and scores for
    an image in every request format MLflow documents (the tensor formats carry base64
    text that MLflow does not decode), and answers what is not an image with one line;
    `mlflow models predict -t json` takes the tensor format too."""
    cfg, run_id = smoke_run["cfg"], smoke_run["summary"].run_id
    blobs, pixels = _images(smoke_run, 1)
    local = saved_model_in(download_run_model(TrackingStore(cfg.tracking), run_id, tmp_path))
    expected = score_saved_model(local, pixels)[0]
    port = free_ports(1)[0]
    env = {**os.environ, "MLFLOW_TRACKING_URI": str(cfg.tracking.uri)}
    model = f"runs:/{run_id}/model"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model,
         "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    bad = {"not an image": b"hello, not an image", "truncated": blobs[0][:60]}
    try:
        wait_until_answered(f"{url}/ping", server, 180, "mlflow models serve")
        answers = {
            name: _post(f"{url}/invocations", kind, body)
            for name, (kind, body) in _request_bodies(blobs[0]).items()
        }
        refusals = {
            (name, form): _post(f"{url}/invocations", *_request_bodies(blob)[form])
            for name, blob in bad.items()
            for form in ("dataframe_split", "inputs (columns)")
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
        server.wait(timeout=30)
    for name, (status, answer) in answers.items():
        assert status == 200, (name, answer)
        [prediction] = answer["predictions"]
        assert prediction["digit"] == int(np.argmax(expected)), name
        np.testing.assert_allclose(prediction["scores"], expected, atol=1e-5, err_msg=name)
    for name, (status, answer) in refusals.items():
        assert status == 400, (name, answer)
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE", (name, answer)
        assert "stack_trace" not in answer, name
        message = answer["message"]
        assert len(message.splitlines()) == 1 and len(message) < 300, (name, message)
        assert "Traceback" not in message and "node" not in message, (name, message)
    for form in ("dataframe_split", "inputs (columns)"):
        assert "is not a JPEG, PNG, GIF or BMP" in refusals["not an image", form][1]["message"]
        assert "could not be decoded" in refusals["truncated", form][1]["message"]
    # `mlflow models predict -t json` reads the same tensor format from a file.
    request = tmp_path / "request.json"
    request.write_text(_request_bodies(blobs[0])["inputs (columns)"][1])
    predicted = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "predict", "-m", model, "-i", str(request),
         "-t", "json", "-o", str(tmp_path / "out.json"), "--env-manager", "local"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    [prediction] = json.loads((tmp_path / "out.json").read_text())["predictions"]
    assert prediction["digit"] == int(np.argmax(expected))


@pytest.mark.integration
def test_predict_takes_a_registry_uri_and_refuses_a_missing_one_in_one_line(
    smoke_run: dict, promoted: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = smoke_run["cfg"]
    blobs, pixels = _images(smoke_run, 1)
    image = tmp_path / "digit.png"
    image.write_bytes(blobs[0])
    store = ["--tracking-uri", str(cfg.tracking.uri)]
    predict_main([str(image), "--model", "models:/ssgan@production", "--json", *store])
    [row] = json.loads(capsys.readouterr().out)
    expected = score_saved_model(promoted["version_dir"], pixels)[0]
    assert row["digit"] == int(np.argmax(expected))
    for model, words in (
        ("models:/nope@production", "model models:/nope@production was not found"),
        ("models:/ssgan@production", "there is no tracking store at"),
    ):
        where = store if "nope" in model else ["--tracking-uri", f"sqlite:///{tmp_path}/no.db"]
        with pytest.raises(SystemExit) as stopped:
            predict_main([str(image), "--model", model, *where])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no.db").exists()


@pytest.mark.integration
def test_a_run_records_mlflows_context_and_its_datasets(smoke_run: dict) -> None:
    cfg, run_id = smoke_run["cfg"], smoke_run["summary"].run_id
    run = MlflowClient(cfg.tracking.uri).get_run(run_id)
    tags = run.data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.name"]
    assert tags["mlflow.source.type"] == "LOCAL"
    fingerprint = tags["ssgan.data_fingerprint"]
    data_name, _, digest = fingerprint.rpartition(":")
    data = load_data(typed_config(cfg).data, cfg.model.num_classes)
    sizes = {"train": len(data.unlabelled_x), "validation": len(data.val_x),
             "test": len(data.test_x)}  # fmt: skip
    recorded = {}
    for item in run.inputs.dataset_inputs:
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        dataset = item.dataset
        assert (dataset.name, dataset.digest) == (f"{data_name}-{context}", digest)
        assert Path(json.loads(dataset.source)["uri"]).is_file()
        recorded[context] = json.loads(dataset.profile)["features_shape"][0]
    assert recorded == sizes


@pytest.mark.integration
def test_system_metrics_are_recorded_when_asked(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    tiny_cfg.tracking.system_metrics = True
    tracker = RunTracker.start(
        TrackingStore(tiny_cfg.tracking), params={}, tags={}, run_name="system"
    )
    with tracker.active():  # MLflow's monitor runs with the active run
        time.sleep(1.0)
        tracker.finish("FINISHED")
    metrics = MlflowClient(tiny_cfg.tracking.uri).get_run(tracker.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/system_memory_usage_megabytes" in metrics
    tiny_cfg.tracking.system_metrics = False  # the default: none
    quiet = RunTracker.start(TrackingStore(tiny_cfg.tracking), params={}, tags={}, run_name="quiet")
    with quiet.active():
        quiet.finish("FINISHED")
    metrics = MlflowClient(tiny_cfg.tracking.uri).get_run(quiet.run_id).data.metrics
    assert not [key for key in metrics if key.startswith("system/")]


@pytest.mark.integration
def test_a_resumed_run_can_log_its_model_again(smoke_run: dict, tmp_path: Path) -> None:
    """A run that exported, then failed to finish (its record incomplete) and was resumed,
    exports again: MLflow refused the second run -> model link (UNIQUE constraint failed:
    inputs...), so the resumed run failed every time."""
    from ssgan.tracking.tracker import create_run

    store = [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
             f"tracking.artifact_root={tmp_path / 'artifacts'}"]  # fmt: skip
    cfg = compose_config("config", store)
    run_id = smoke_run["summary"].run_id
    smoke_store = TrackingStore(smoke_run["cfg"].tracking)
    saved = saved_model_in(download_run_model(smoke_store, run_id, tmp_path / "m"))
    blobs, _ = _images(smoke_run, 1)
    tracker = create_run(TrackingStore(cfg.tracking), "twice", {}, {})
    first = tracker.log_model(saved, blobs, 1)
    with tracker.active():  # a resumed run exports as MLflow's active run, linked already
        assert tracker.log_model(saved, blobs, 2) == first
        tracker.finish("FINISHED")
    run = MlflowClient(cfg.tracking.uri).get_run(tracker.run_id)
    assert [o.model_id for o in run.outputs.model_outputs] == [first.removeprefix("models:/")]

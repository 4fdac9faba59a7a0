"""The predict client: local model, TF Serving's REST and gRPC wire formats."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from ssgan.config import ModelConfig
from ssgan.data.synthetic import sample_crops
from ssgan.models.networks import build_discriminator
from ssgan.predict import main as predict_main
from ssgan.serving.clients import PredictError, check_rest_url
from ssgan.serving.images import encode_jpeg, encode_png
from ssgan.serving.prediction import (
    PredictOptions,
    ReadLimits,
    UnreadableFileError,
    check_options,
    parser,
    read_image,
)
from ssgan.serving.saved_model import export_saved_model
from tests.helpers.hostile_inputs import (
    fifo_and_device_named_png,
    fixed_scores_server,
    png_header_only,
    trickling_server,
)
from tests.helpers.processes import run_cli

TINY = ModelConfig(name="tutorial", z_size=8, g_size_mult=4, d_size_mult=4)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("predict")
    tf.keras.utils.set_random_seed(1)
    versions = root / "serving" / "ssgan"
    classifier = build_discriminator(TINY)
    export_saved_model(classifier, versions / "2", warmup_images=sample_crops(2))
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    (images / "a.png").write_bytes(encode_png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    (images / "b.jpg").write_bytes(encode_jpeg(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)))
    (images / "broken.jpg").write_bytes(b"not really a jpeg")
    loaded = tf.saved_model.load(str(versions / "2"))
    return {"root": root, "model": versions / "2", "versions": versions, "images": images,
            "loaded": loaded}  # fmt: skip


def _expected(served: dict, names: list[str]) -> np.ndarray:
    blobs = [(served["images"] / n).read_bytes() for n in names]
    return (
        served["loaded"].signatures["serving_default"](images=tf.constant(blobs))["scores"].numpy()
    )


@pytest.mark.integration
def test_local_model_json_and_skips_unreadable(served: dict, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(served["images"]), "--model", str(served["versions"]), "--json"])
    assert exit_info.value.code == 1  # some files skipped, the others scored
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [Path(r["file"]).name for r in rows] == ["a.png", "b.jpg"]
    expected = _expected(served, ["a.png", "b.jpg"])
    np.testing.assert_allclose([r["scores"] for r in rows], expected, atol=1e-6)
    assert [r["digit"] for r in rows] == expected.argmax(1).tolist()
    assert "skipped" in captured.err and "broken.jpg" in captured.err
    assert "1 of 3 files skipped" in captured.err


@pytest.mark.e2e
def test_cli_table(served: dict) -> None:
    result = run_cli("ssgan.predict", str(served["images"] / "a.png"), "--model",
                     str(served["model"]), cwd=served["root"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["file", "digit", "probability"]
    assert row.split()[0].endswith("a.png") and 0 <= int(row.split()[1]) <= 9


@pytest.mark.e2e
def test_nothing_readable_or_bad_model_is_one_line(served: dict, tmp_path: Path) -> None:
    nothing = run_cli("ssgan.predict", str(served["images"] / "broken.jpg"), "--model",
                      str(served["model"]), cwd=tmp_path)  # fmt: skip
    assert nothing.returncode == 2 and "no readable image" in nothing.stderr
    assert "Traceback" not in nothing.stderr
    bad_model = run_cli("ssgan.predict", str(served["images"] / "a.png"), "--model",
                        str(tmp_path), cwd=tmp_path)  # fmt: skip
    assert bad_model.returncode == 2
    assert bad_model.stderr.strip().splitlines()[-1].startswith("error: --model")


class _FakeRestServing(http.server.BaseHTTPRequestHandler):
    """Answers like TF Serving's REST API, after checking the documented request format."""

    model = None
    seen: list = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/models/ssgan:predict"
        assert body["signature_name"] == "serving_default"
        blobs = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
        self.seen.append(len(blobs))
        try:
            out = self.model.signatures["serving_default"](images=tf.constant(blobs))
        except tf.errors.InvalidArgumentError as err:  # TF Serving: 400 and {"error": ...}
            self._reply(400, {"error": err.message})
            return
        predictions = [
            {"scores": s.tolist(), "classes": int(c)}
            for s, c in zip(out["scores"].numpy(), out["classes"].numpy(), strict=True)
        ]
        self._reply(200, {"predictions": predictions})

    def _reply(self, status: int, answer: dict) -> None:
        reply = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def rest_server(served: dict):
    _FakeRestServing.model, _FakeRestServing.seen = served["loaded"], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeRestServing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/ssgan"
    server.shutdown()
    server.server_close()


@pytest.mark.e2e
def test_rest_client_speaks_tf_serving_json(served: dict, rest_server: str, capsys) -> None:
    images = [str(served["images"] / n) for n in ("a.png", "b.jpg")]
    predict_main([*images, "--rest-url", rest_server, "--json", "--batch-size", "1"])
    rows = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([r["scores"] for r in rows], _expected(served, ["a.png", "b.jpg"]),
                               atol=1e-6)  # fmt: skip
    assert _FakeRestServing.seen == [1, 1]


class _FakeGrpcServing(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers like TF Serving's PredictionService.Predict for one served model: checks
    the model name, the signature, and the request's input names and dtypes against the
    SavedModel's signature, as TF Serving does, then runs the real model."""

    def __init__(self, model, name: str = "ssgan") -> None:
        self.model, self.name = model, name
        self.requests: list[predict_pb2.PredictRequest] = []

    def Predict(self, request, context):  # noqa: N802 (gRPC's naming)
        self.requests.append(request)
        if request.model_spec.name != self.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}"
            )
        name = request.model_spec.signature_name or "serving_default"
        if name not in self.model.signatures:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Serving signature name: {name} not found"
            )
        signature = self.model.signatures[name]
        wanted = signature.structured_input_signature[1]
        if set(request.inputs) != set(wanted):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"inputs {set(request.inputs)} != {set(wanted)}"
            )
        for key, spec in wanted.items():
            if request.inputs[key].dtype != spec.dtype.as_datatype_enum:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input {key} has the wrong dtype")
        inputs = {key: tf.constant(tf.make_ndarray(request.inputs[key])) for key in wanted}
        try:
            outputs = signature(**inputs)
        except tf.errors.InvalidArgumentError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, err.message)
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = self.name
        reply.model_spec.signature_name = name
        for key, value in outputs.items():
            reply.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return reply


@contextlib.contextmanager
def _grpc_serving(servicer: _FakeGrpcServing):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.mark.e2e
def test_grpc_client_uses_the_prediction_service(served: dict, capsys) -> None:
    servicer = _FakeGrpcServing(served["loaded"])
    images = [str(served["images"] / n) for n in ("a.png", "b.jpg")]
    with _grpc_serving(servicer) as target:
        predict_main([*images, "--grpc", target, "--json", "--signature", "predict_images"])
    rows = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([r["scores"] for r in rows], _expected(served, ["a.png", "b.jpg"]),
                               atol=1e-6)  # fmt: skip
    request = servicer.requests[0]
    assert request.model_spec.name == "ssgan"
    assert request.model_spec.signature_name == "predict_images"
    assert request.inputs["images"].dtype == tf.string.as_datatype_enum


@pytest.mark.e2e
def test_the_tutorials_grpc_request_is_answered_and_its_stub_is_gone(served: dict) -> None:
    """The original tutorial's client, as it builds its request (one JPEG's bytes as a
    DT_STRING tensor of shape [1], input "images", signature "predict_images", model
    "gan", a 60 s timeout), against a server serving the model as "gan".

    Its stub factory no longer exists in tensorflow-serving-api, so the client cannot run
    unchanged; with the documented change (the stub class of prediction_service_pb2_grpc
    on a grpc channel, and TF 2's make_tensor_proto) the request itself is accepted."""
    from tensorflow_serving.apis import prediction_service_pb2

    assert not hasattr(prediction_service_pb2, "beta_create_PredictionService_stub")
    data = (served["images"] / "b.jpg").read_bytes()  # a JPEG, read as the client reads it
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "gan"
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(data, shape=[1]))
    assert request.inputs["images"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in request.inputs["images"].tensor_shape.dim] == [1]
    with _grpc_serving(_FakeGrpcServing(served["loaded"], name="gan")) as target:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
        result = stub.Predict(request, 60.0)
    scores = tf.make_ndarray(result.outputs["scores"])
    assert scores.shape == (1, 10) and result.outputs["scores"].dtype == tf.float32.as_datatype_enum
    np.testing.assert_allclose(scores, _expected(served, ["b.jpg"]), atol=1e-6)


@pytest.mark.e2e
def test_grpc_label_and_rest_label_url(served: dict, capsys) -> None:
    """A label from models.config: --label over gRPC, /labels/NAME in a REST URL."""
    servicer = _FakeGrpcServing(served["loaded"])
    image = str(served["images"] / "a.png")
    with _grpc_serving(servicer) as target:
        predict_main([image, "--grpc", target, "--label", "canary"])
    assert servicer.requests[0].model_spec.version_label == "canary"
    check_rest_url("http://localhost:8501/v1/models/ssgan/labels/canary")
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        predict_main([image, "--rest-url", "http://localhost:8501/v1/models/ssgan",
                      "--label", "canary"])  # fmt: skip
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --label canary is for --grpc only") and err.count("\n") == 1


def _tiff_named_png(folder: Path) -> Path:
    """A file Pillow reads but TF's image decoder does not (TIFF), under a .png name."""
    odd = folder / "tiff_named.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(odd, format="TIFF")
    return odd


@pytest.mark.e2e
def test_rest_errors_are_one_line(served: dict, rest_server: str, tmp_path: Path, capsys) -> None:
    # A lone image the server refuses (400): reported, and nothing else to score.
    odd = _tiff_named_png(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(odd), "--rest-url", rest_server])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and err[-1].startswith("error: ")
    assert "answered 400" in err[0] and "Unknown image file format" in err[0]
    unreachable = run_cli("ssgan.predict", str(served["images"] / "a.png"), "--rest-url",
                          "http://127.0.0.1:9/v1/models/ssgan", cwd=tmp_path)  # fmt: skip
    assert unreachable.returncode == 2 and "cannot reach TF Serving" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["model", "rest"])
def test_an_image_the_model_cannot_decode_is_skipped_and_the_rest_scored(
    served: dict, rest_server: str, tmp_path: Path, capsys, backend: str
) -> None:
    odd = _tiff_named_png(tmp_path)
    good = [served["images"] / "a.png", served["images"] / "b.jpg"]
    where = ["--model", str(served["model"])] if backend == "model" else ["--rest-url", rest_server]
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(good[0]), str(odd), str(good[1]), *where, "--json"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [Path(r["file"]).name for r in rows] == ["a.png", "b.jpg"]
    np.testing.assert_allclose([r["scores"] for r in rows], _expected(served, ["a.png", "b.jpg"]),
                               atol=1e-6)  # fmt: skip
    assert f"skipped {odd}: the model cannot decode it" in captured.err
    assert "1 of 3 files skipped" in captured.err and "Traceback" not in captured.err


@pytest.mark.e2e
def test_bad_inputs_and_options_are_one_line_each(served: dict, tmp_path: Path, capsys) -> None:
    """Each bad input: its exit status and one line (two with the skipped-files count).
    Two cases run as a user runs them (a process: no traceback); the rest call main()."""
    bomb = png_header_only(tmp_path / "bomb.png", 20000, 20000)  # above Pillow's own limit
    photo = png_header_only(tmp_path / "photo.png", 10000, 6000)  # 60 MP: below it
    a_png, model = str(served["images"] / "a.png"), str(served["model"])
    big = tmp_path / "big.png"  # a readable image, only larger than the limit given
    big.write_bytes(encode_png(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)))
    limit = (big.stat().st_size + Path(a_png).stat().st_size) // 2
    big_line = f"{big.stat().st_size:,} bytes, above the --max-file-mb limit ({limit:,} bytes)"
    cases = [
        (
            [str(bomb), a_png, "--model", model],
            1,
            f"skipped {bomb}: 20000x20000 pixels (400 megapixels)",
            "above the --max-megapixels limit (50)",
        ),
        (
            [str(photo), a_png, "--model", model],
            1,
            f"skipped {photo}: 10000x6000 pixels (60 megapixels)",
            "above the --max-megapixels limit (50)",
        ),
        (
            [a_png, str(photo), "--model", model, "--max-megapixels", "59.9"],
            1,
            f"skipped {photo}",
            "above the --max-megapixels limit (59.9)",
        ),
        (
            [str(big), a_png, "--model", model, "--max-file-mb", repr(limit / 2**20)],
            1,
            f"skipped {big}: ",
            big_line,
        ),
        ([a_png, "--model", model, "--max-file-mb", "0"], 2, "error: --max-file-mb 0", "MiB"),
        (
            [a_png, "--model", model, "--max-megapixels", "-1"],
            2,
            "error: --max-megapixels -1",
            "positive number of megapixels",
        ),
        (
            [a_png, "--model", model, "--max-batch-megapixels", "nan"],
            2,
            "error: --max-batch-megapixels nan",
            "positive",
        ),
        ([a_png, "--rest-url", ""], 2, "error: --rest-url is empty", "REST URL"),
        ([a_png], 2, "error: one of the arguments", "--model"),
        ([a_png, "--rest-url", "http://127.0.0.1:9"], 2, "error: --rest-url", "/v1/models/NAME"),
        ([a_png, "--rest-url", "localhost:8501/v1/models/ssgan"], 2, "error: --rest-url", "NAME"),
        ([a_png, "--model", model, "--timeout", "-1"], 2, "error: --timeout -1", "positive"),
        ([a_png, "--model", model, "--timeout", "abc"], 2, "error: argument --timeout", "float"),
        ([a_png, "--model", model, "--signature", "classify"], 2, "error: --signature", "allowed"),
        ([a_png, "--model", ""], 2, "error: --model is empty", "SavedModel folder"),
        ([a_png, "--rest-url", " "], 2, "error: --rest-url is empty", "REST URL"),
        ([a_png, "--grpc", ""], 2, "error: --grpc is empty", "gRPC address"),
    ]
    for index, (argv, code, starts, says) in enumerate(cases):
        if index < 2:
            result = run_cli("ssgan.predict", *argv, cwd=tmp_path)
            status, stderr = result.returncode, result.stderr
        else:
            capsys.readouterr()
            with pytest.raises(SystemExit) as exited:
                predict_main(argv)
            status, stderr = exited.value.code, capsys.readouterr().err
        lines = stderr.strip().splitlines()
        assert status == code, (argv, stderr)
        assert "Traceback" not in stderr, argv
        assert lines[0].startswith(starts) and says in lines[0], (argv, stderr)
        assert len(lines) == (2 if code == 1 else 1), (argv, stderr)


@pytest.mark.e2e
def test_a_savedmodel_that_is_not_an_ssgan_export_is_one_line(served: dict, tmp_path: Path) -> None:
    """A SavedModel whose serving signature takes floats under another name: refused before
    scoring, naming what it takes and returns (it used to be a TensorFlow traceback)."""

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serving_default(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": 2.0 * x}

    module = Doubler()
    foreign = tmp_path / "foreign"
    signatures = {"serving_default": module.serving_default}
    tf.saved_model.save(module, str(foreign), signatures=signatures)
    result = run_cli("ssgan.predict", str(served["images"] / "a.png"), "--model", str(foreign),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "is not an ssgan export" in result.stderr and "takes x (float32)" in result.stderr


@pytest.mark.integration
def test_a_folder_is_read_a_batch_at_a_time(
    served: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A folder of N images used to be read into memory whole before the first batch was
    scored (RSS grew with the folder: 1,000 300x300 PNGs, +240 MB)."""
    from ssgan.serving import prediction

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i:02d}.png").write_bytes((served["images"] / "a.png").read_bytes())
    read, held = [], []
    reading = prediction.read_image

    def counted(path: Path, limits: ReadLimits) -> tuple[bytes, int]:
        read.append(path)
        return reading(path, limits)

    monkeypatch.setattr(prediction, "read_image", counted)
    scorer = prediction.local_scorer

    def watched(*args, **kwargs):
        score = scorer(*args, **kwargs)

        def scored(blobs: list[bytes]) -> np.ndarray:
            held.append(len(read))  # files read so far when this batch is scored
            return score(blobs)

        return scored

    monkeypatch.setattr(prediction, "local_scorer", watched)
    predict_main([str(folder), "--model", str(served["model"]), "--batch-size", "4", "--json"])
    assert len(json.loads(capsys.readouterr().out)) == 12
    assert held == [4, 8, 12]


@pytest.mark.unit
def test_options_are_built_from_the_command_line() -> None:
    argv = ["a.png", "pics", "--grpc", "localhost:8500", "--label", "canary", "--batch-size",
            "8", "--max-file-mb", "2.5", "--max-megapixels", "12", "--max-batch-megapixels",
            "30"]  # fmt: skip
    options = PredictOptions.from_args(parser().parse_args(argv))
    assert options == PredictOptions(
        images=("a.png", "pics"), grpc="localhost:8500", label="canary", batch_size=8,
        max_file_mb=2.5, max_megapixels=12.0, max_batch_megapixels=30.0,
    )  # fmt: skip
    assert options.read_limits == ReadLimits(file_bytes=2_621_440, pixels=12_000_000)
    check_options(options)
    defaults = PredictOptions.from_args(parser().parse_args(["a.png", "--model", "m", "--json"]))
    assert defaults == PredictOptions(images=("a.png",), model="m", json=True)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (PredictOptions(images=("a",), model=" "), "--model is empty"),
        (PredictOptions(images=("a",), model="m", batch_size=0), "--batch-size 0"),
        (PredictOptions(images=("a",), model="m", timeout=float("nan")), "--timeout nan"),
        (PredictOptions(images=("a",), model="m", signature="classify"), "--signature classify"),
        (PredictOptions(images=("a",), model="m", label="stable"), "--label stable is for --grpc"),
        (PredictOptions(images=("a",), model="m", max_file_mb=0), "--max-file-mb 0 must"),
        (PredictOptions(images=("a",), model="m", max_megapixels=-2), "--max-megapixels -2"),
        (
            PredictOptions(images=("a",), model="m", max_batch_megapixels=float("inf")),
            "--max-batch-megapixels inf must be a positive number of megapixels",
        ),
    ],
)
def test_options_that_cannot_work_are_refused(options: PredictOptions, expected: str) -> None:
    with pytest.raises(PredictError, match=expected):
        check_options(options)


def _png(path: Path, width: int = 32, height: int = 32) -> Path:
    path.write_bytes(encode_png(np.full((height, width, 3), 128, np.uint8)))
    return path


@pytest.mark.e2e
def test_rest_timeout_bounds_the_whole_request_as_users_run_it(tmp_path: Path) -> None:
    """A server that sends a 200 header (Content-Length: 100000) and then one byte at a
    time: urlopen's timeout bounded each read, so --timeout never fired and the command ran
    as long as the bytes came (issue 32, item 8). Now it ends at the deadline, one line,
    and the server sees the client leave within the timeout and a small margin."""
    image = _png(tmp_path / "a.png")
    with trickling_server(headers_too=False) as (url, seen):
        result = run_cli("ssgan.predict", str(image), "--rest-url", url, "--timeout", "2",
                         cwd=tmp_path)  # fmt: skip
        assert seen.done.wait(20)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"error: no complete answer from TF Serving at {url} within --timeout 2 s\n"
    )
    assert seen.client_left and seen.ended - seen.arrived < 2 + 1.5, seen


@pytest.mark.e2e
@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "header"])
def test_rest_timeout_ends_a_trickled_answer(tmp_path: Path, capsys, headers_too: bool) -> None:
    """The deadline covers the whole answer: a trickled body, and a header line that never
    ends (each byte comes well within any per-read timeout)."""
    image = _png(tmp_path / "a.png")
    with trickling_server(headers_too=headers_too) as (url, _):
        started = time.monotonic()
        with pytest.raises(SystemExit) as exited:
            predict_main([str(image), "--rest-url", url, "--timeout", "1.5"])
        elapsed = time.monotonic() - started
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"error: no complete answer from TF Serving at {url} within --timeout 1.5 s\n"
    )
    assert 1.5 <= elapsed < 1.5 + 1.0


class _SilentGrpcServing(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Takes the call and answers nothing until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def Predict(self, request, context):  # noqa: N802 (gRPC's naming)
        self.release.wait(30)
        context.abort(grpc.StatusCode.UNAVAILABLE, "released")


@pytest.mark.e2e
def test_grpc_timeout_is_the_whole_calls_deadline(tmp_path: Path, capsys) -> None:
    """gRPC's ``timeout`` was already a deadline for the whole call; a call past it is now
    the same one line as over REST (it was "failed: DEADLINE_EXCEEDED Deadline Exceeded")."""
    image = _png(tmp_path / "a.png")
    servicer = _SilentGrpcServing()
    with _grpc_serving(servicer) as target:
        try:
            started = time.monotonic()
            with pytest.raises(SystemExit) as exited:
                predict_main([str(image), "--grpc", target, "--timeout", "1.5"])
            elapsed = time.monotonic() - started
        finally:
            servicer.release.set()
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"error: no complete answer from TF Serving at {target} within --timeout 1.5 s\n"
    )
    assert 1.5 <= elapsed < 1.5 + 1.5


# What the command may take in the test below; a regression that reads /dev/zero whole
# then stops with a MemoryError instead of taking the machine's memory.
_ADDRESS_SPACE = 3 << 30


@pytest.mark.e2e
def test_a_fifo_or_a_device_named_png_is_skipped_by_name(tmp_path: Path) -> None:
    """A folder holding a FIFO named *.png (reading it waited for a writer forever) and a
    symlink to /dev/zero named *.png (read until the OOM killer came), beside an image
    and a symlink to it: the two are skipped, one line each, before anything is read;
    the images are scored (issue 32, item 9)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    good = _png(folder / "good.png")
    (folder / "link.png").symlink_to(good)
    fifo, zero = fifo_and_device_named_png(folder)
    (folder / "album.png").mkdir()  # a folder named like an image is searched, not a file
    capped = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({_ADDRESS_SPACE}, {_ADDRESS_SPACE})); "
        "runpy.run_module('ssgan.predict', run_name='__main__')"
    )
    with fixed_scores_server() as (url, batches):
        result = subprocess.run(
            [sys.executable, "-c", capped, str(folder), "--rest-url", url],
            cwd=tmp_path, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"skipped {fifo}: not a regular file (a FIFO)",
        f"skipped {zero}: not a regular file (a character device)",
        "2 of 4 files skipped",
    ]
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [(Path(r[0]).name, r[1]) for r in rows] == [("good.png", "3"), ("link.png", "3")]
    assert batches == [2]


@pytest.mark.unit
def test_only_regular_files_within_the_budgets_are_read(tmp_path: Path) -> None:
    """What each kind of file reads as, with the limits given (nothing here is decoded)."""
    good = _png(tmp_path / "good.png", 40, 25)
    (tmp_path / "link.png").symlink_to(good)
    (tmp_path / "null.png").symlink_to("/dev/null")
    (tmp_path / "folder.png").mkdir()
    png_header_only(tmp_path / "claims.png", 3000, 2000)
    limits = ReadLimits(file_bytes=good.stat().st_size, pixels=1000)
    assert read_image(good, limits) == (good.read_bytes(), 1000)
    assert read_image(tmp_path / "link.png", limits) == (good.read_bytes(), 1000)
    refused = {
        "null.png": "not a regular file (a character device)",
        "folder.png": "not a regular file (a folder)",
        "claims.png": "3000x2000 pixels (6 megapixels), above the --max-megapixels limit (0.001)",
        "missing.png": "not a readable image (No such file or directory)",
    }
    for name, reason in refused.items():
        with pytest.raises(UnreadableFileError) as err:
            read_image(tmp_path / name, limits)
        assert str(err.value) == reason, name
    smaller = ReadLimits(file_bytes=good.stat().st_size - 1, pixels=1000)
    with pytest.raises(UnreadableFileError, match="bytes, above the --max-file-mb limit"):
        read_image(good, smaller)


@pytest.mark.integration
def test_a_batch_holds_at_most_the_pixel_budget(
    served: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Six images of 100x100 and one of 200x200 pixels, 25,000 pixels a batch: two small
    ones a request, the large one alone; --batch-size still caps the count. Before, a
    batch was --batch-size images whatever their size (64 large photos: ~12 GB)."""
    from ssgan.serving import prediction

    folder = tmp_path / "sizes"
    folder.mkdir()
    for name, side in [("a", 100), ("b", 100), ("c", 200), ("d", 100), ("e", 100), ("f", 100)]:
        _png(folder / f"{name}.png", side, side)
    sizes = []
    scorer = prediction.local_scorer

    def watched(*args, **kwargs):
        score = scorer(*args, **kwargs)

        def scored(blobs: list[bytes]) -> np.ndarray:
            sizes.append(len(blobs))
            return score(blobs)

        return scored

    monkeypatch.setattr(prediction, "local_scorer", watched)
    model = str(served["model"])
    predict_main([str(folder), "--model", model, "--max-batch-megapixels", "0.025", "--json"])
    assert len(json.loads(capsys.readouterr().out)) == 6
    assert sizes == [2, 1, 2, 1]
    sizes.clear()
    predict_main([str(folder), "--model", model, "--max-batch-megapixels", "1", "--batch-size",
                  "4", "--json"])  # fmt: skip
    assert sizes == [4, 2]

"""The exported SavedModel: signatures, preprocessing, batch independence, bad input."""

from __future__ import annotations

import fcntl
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import fingerprint_pb2

from ssgan.config import ModelConfig
from ssgan.data.synthetic import sample_crops
from ssgan.models.networks import build_discriminator
from ssgan.preprocess import to_model_range
from ssgan.serving.contract import CLASSIFY_METHOD, ExportError, verify_saved_model
from ssgan.serving.images import decode_images, encode_jpeg, encode_png
from ssgan.serving.saved_model import (
    export_from_checkpoint,
    export_saved_model,
    remove_dead_exports,
    score_saved_model,
)
from ssgan.serving.warmup import read_warmup_requests, write_warmup_requests

TINY = ModelConfig(name="tutorial", z_size=8, g_size_mult=4, d_size_mult=4)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    keras_seed = tf.keras.utils.set_random_seed
    keras_seed(0)
    classifier = build_discriminator(TINY)
    # Move the batch-norm statistics away from their initial values.
    noisy = tf.random.uniform([64, 32, 32, 3], -1, 1)
    for layer in classifier.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.moving_mean.assign(tf.random.normal(layer.moving_mean.shape, stddev=0.1))
    classifier(noisy, training=False)
    folder = tmp_path_factory.mktemp("export") / "model"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    export_saved_model(classifier, folder, warmup_images=images[:8])
    return {"dir": folder, "classifier": classifier, "images": images,
            "loaded": tf.saved_model.load(str(folder))}  # fmt: skip


@pytest.mark.integration
def test_png_bytes_score_like_the_array_through_the_network(exported: dict) -> None:
    images, classifier = exported["images"][:16], exported["classifier"]
    expected = tf.nn.softmax(classifier(to_model_range(images), training=False)[0]).numpy()
    serve = exported["loaded"].signatures["serving_default"]
    out = serve(images=tf.constant([encode_png(i) for i in images]))
    np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(out["classes"].numpy(), expected.argmax(-1))
    np.testing.assert_allclose(score_saved_model(exported["dir"], images), expected, atol=1e-6)


@pytest.mark.integration
def test_every_signature_on_jpeg_png_grey_odd_sizes_and_examples(exported: dict) -> None:
    loaded, rng = exported["loaded"], np.random.default_rng(1)
    blobs = [
        encode_jpeg(exported["images"][0]),
        encode_png(rng.integers(0, 256, (57, 23, 3), dtype=np.uint8)),
        encode_png(rng.integers(0, 256, (40, 40), dtype=np.uint8)),  # grey
        encode_jpeg(rng.integers(0, 256, (300, 120), dtype=np.uint8)),  # grey JPEG
    ]
    predict = loaded.signatures["predict_images"](images=tf.constant(blobs))["scores"].numpy()
    assert predict.shape == (4, 10)
    np.testing.assert_allclose(predict.sum(axis=1), 1.0, rtol=1e-5)
    default = loaded.signatures["serving_default"](images=tf.constant(blobs))
    np.testing.assert_allclose(default["scores"].numpy(), predict, atol=1e-6)
    examples = [
        tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[blob]))
        })).SerializeToString()
        for blob in blobs
    ]  # fmt: skip
    classify = loaded.signatures["classify"](inputs=tf.constant(examples))
    np.testing.assert_allclose(classify["scores"].numpy(), predict, atol=1e-6)
    assert classify["classes"].numpy().tolist()[0] == [str(d).encode() for d in range(10)]


def _decoded_by_tensorflow(blob: bytes) -> np.ndarray:
    """The reference: tf.io.decode_image to RGB, resized (antialiased) only when not 32x32,
    mapped to [-1, 1]."""
    image = tf.cast(tf.io.decode_image(blob, channels=3, expand_animations=False), tf.float32)
    if image.shape[:2] != (32, 32):
        image = tf.image.resize(image, [32, 32], antialias=True)
    return to_model_range(image).numpy()


@pytest.mark.integration
def test_batched_decoding_gives_tensorflows_pixels_for_any_mix_of_inputs() -> None:
    """The one-loop uint8 decode (all 32x32) and the per-image path (any other size in the
    batch) both give, image for image, what tf.io.decode_image gives alone."""
    rng = np.random.default_rng(3)
    colour = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    odd = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    odd_grey = rng.integers(0, 256, (29, 17), dtype=np.uint8)
    square = [encode_png(colour), encode_jpeg(colour), encode_png(grey), encode_jpeg(grey)]
    mixed = [*square, encode_png(odd), encode_jpeg(odd), encode_png(odd_grey),
             encode_jpeg(odd_grey)]  # fmt: skip
    for batch in (square, mixed):
        decoded = decode_images(tf.constant(batch)).numpy()
        assert decoded.shape == (len(batch), 32, 32, 3)
        for blob, pixels in zip(batch, decoded, strict=True):
            np.testing.assert_array_equal(pixels, _decoded_by_tensorflow(blob))
    # A grey image comes out with three equal channels, and PNG keeps pixels exactly.
    np.testing.assert_array_equal(decode_images(tf.constant(square[2:3])).numpy()[0, ..., 1],
                                  to_model_range(grey.astype(np.float32)).numpy())  # fmt: skip


@pytest.mark.integration
def test_one_image_scores_the_same_alone_and_in_a_batch_of_64(exported: dict) -> None:
    serve = exported["loaded"].signatures["serving_default"]
    blobs = [encode_png(i) for i in exported["images"]]
    alone = serve(images=tf.constant(blobs[:1]))["scores"].numpy()
    batched = serve(images=tf.constant(blobs))["scores"].numpy()
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-6)


def _bmp(width: int, height: int) -> bytes:
    """A well-formed 24-bit BMP header (PIL refuses to write zero-sized images)."""
    row = (width * 3 + 3) // 4 * 4
    pixels = bytes(row * abs(height))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


@pytest.mark.integration
@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "image bytes are empty"),
        (b"this is not an image", "Unknown image file format"),
        (None, "JPEG"),  # a truncated JPEG
        (_bmp(0, 4), "Width must be positive"),  # a zero-sized image
        (_bmp(4, 0), "Height must be nonzero"),
    ],
    ids=["empty", "not-an-image", "truncated-jpeg", "zero-width", "zero-height"],
)
def test_bad_images_are_invalid_argument_and_the_model_keeps_working(
    exported: dict, blob: bytes | None, message: str
) -> None:
    serve = exported["loaded"].signatures["serving_default"]
    good = encode_jpeg(exported["images"][0])
    bad = good[: len(good) // 3] if blob is None else blob
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(images=tf.constant([good, bad]))
    after = serve(images=tf.constant([good]))["scores"].numpy()
    assert after.shape == (1, 10) and np.isfinite(after).all()


@pytest.mark.integration
@pytest.mark.parametrize(
    "blob",
    [b"\xff\xfe not a proto", b"hello", b"\x0a\x05\x0a\x03\xff\xff\xff", b""],
    ids=["binary-garbage", "text", "nested-garbage", "no-image-feature"],
)
def test_classify_refuses_what_is_not_an_image_example_as_invalid_argument(
    exported: dict, blob: bytes
) -> None:
    """TF's own parse error quotes the raw bytes, which Python cannot decode: the
    signature must answer InvalidArgument, not UnicodeDecodeError."""
    classify = exported["loaded"].signatures["classify"]
    image = encode_png(exported["images"][0])
    good = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    })).SerializeToString()  # fmt: skip
    with pytest.raises(tf.errors.InvalidArgumentError, match="serialized tf.Example"):
        classify(inputs=tf.constant([good, blob]))
    assert classify(inputs=tf.constant([good]))["scores"].shape == (1, 10)


@pytest.mark.integration
def test_empty_batch_gives_empty_scores(exported: dict) -> None:
    out = exported["loaded"].signatures["serving_default"](images=tf.constant([], tf.string))
    assert out["scores"].shape == (0, 10) and out["classes"].shape == (0,)


@pytest.mark.integration
def test_warmup_records_are_real_requests(exported: dict) -> None:
    logs = read_warmup_requests(exported["dir"] / "assets.extra" / "tf_serving_warmup_requests")
    assert 1 <= len(logs) <= 1000
    predicts = [log.predict_log.request for log in logs if log.HasField("predict_log")]
    assert {r.model_spec.signature_name for r in predicts} == {"serving_default", "predict_images"}
    assert all(list(r.inputs) == ["images"] for r in predicts)
    images = tf.make_ndarray(max(predicts, key=lambda r: len(r.inputs["images"].string_val))
                             .inputs["images"])  # fmt: skip
    assert all(blob[:2] == b"\xff\xd8" for blob in images)  # JPEG bytes
    decoded = [tf.io.decode_jpeg(blob).shape for blob in images]
    # The given images, then a larger colour photo and a grey one (resize, grey to RGB).
    assert decoded[0] == (32, 32, 3) and decoded[-2] == (64, 96, 3) and decoded[-1] == (64, 96, 1)
    # The warm-up used the images it was given (JPEG of noise is lossy: compare distances).
    first = tf.io.decode_jpeg(images[0]).numpy().astype(float)
    given = exported["images"].astype(float)
    distances = np.abs(first - given[:8]).mean(axis=(1, 2, 3))
    assert distances.argmin() == 0 and distances[0] < distances[1:].min() * 0.8
    classify = [log.classify_log.request for log in logs if log.HasField("classify_log")]
    assert classify and all(r.model_spec.signature_name == "classify" for r in classify)
    example = classify[0].input.example_list.examples[0]
    assert example.features.feature["image/encoded"].bytes_list.value[0][:2] == b"\xff\xd8"


@pytest.mark.integration
def test_synthetic_crops_make_picture_like_warmup_requests(tmp_path: Path) -> None:
    path = tmp_path / "warmup"
    count = write_warmup_requests(path, sample_crops(8))
    logs = read_warmup_requests(path)
    assert len(logs) == count
    blob = tf.make_ndarray(logs[1].predict_log.request.inputs["images"])[0]
    pixels = tf.io.decode_jpeg(blob).numpy()
    assert pixels.shape == (32, 32, 3) and pixels.std() > 10  # a picture, not a flat field


@pytest.mark.integration
def test_fingerprint_matches_the_edited_saved_model(exported: dict) -> None:
    from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

    written = tf.saved_model.experimental.read_fingerprint(str(exported["dir"]))
    fresh = fingerprint_pb2.FingerprintDef.FromString(
        fingerprinting.CreateFingerprintDef(str(exported["dir"]))
    )
    assert written.saved_model_checksum == fresh.saved_model_checksum


@pytest.mark.e2e
def test_saved_model_cli_lists_the_signatures(exported: dict) -> None:
    shown = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", str(exported["dir"])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for name in ("predict_images", "serving_default", "classify"):
        assert f"signature_def['{name}']" in text
    classify = text.split("signature_def['classify']")[1].split("signature_def[")[0]
    assert f"Method name is: {CLASSIFY_METHOD}" in classify
    assert "inputs['inputs']" in classify and "outputs['classes']" in classify
    predict = text.split("signature_def['predict_images']")[1].split("signature_def[")[0]
    assert "inputs['images'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in predict
    assert "dtype: DT_FLOAT\n        shape: (-1, 10)" in predict


@pytest.mark.integration
def test_verify_refuses_wrong_contract_and_broken_warmup(exported: dict, tmp_path: Path) -> None:
    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        def __call__(self, images):
            return {"scores": tf.zeros([tf.shape(images)[0], 10])}

    other = Other()
    tf.saved_model.save(
        other, str(tmp_path / "other"), signatures={"predict_images": other.__call__}
    )
    with pytest.raises(ExportError, match="signature 'serving_default' is missing"):
        verify_saved_model(tmp_path / "other")
    with pytest.raises(ExportError, match="no saved_model.pb"):
        verify_saved_model(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(exported["dir"], broken)
    warmup = broken / "assets.extra" / "tf_serving_warmup_requests"
    warmup.write_bytes(b"garbage")
    with pytest.raises(ExportError, match="holds 0 records"):
        verify_saved_model(broken)
    with tf.io.TFRecordWriter(str(warmup)) as writer:
        writer.write(b"\xff\xff not a PredictionLog")
    with pytest.raises(ExportError, match="not a file of PredictionLog records"):
        verify_saved_model(broken)


@pytest.mark.integration
def test_export_refuses_a_used_folder_and_leaves_nothing_when_it_fails(
    exported: dict, tmp_path: Path
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="already exists and is not empty"):
        export_saved_model(exported["classifier"], used, warmup_images=exported["images"])
    assert [p.name for p in used.iterdir()] == ["notes.txt"]

    inputs = tf.keras.Input((32, 32, 3))
    features = tf.keras.layers.GlobalAveragePooling2D()(inputs)
    five_classes = tf.keras.Model(inputs, (tf.keras.layers.Dense(5)(features), features))
    with pytest.raises(ExportError, match="outputs are"):
        export_saved_model(five_classes, tmp_path / "five", warmup_images=exported["images"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]


@pytest.mark.integration
def test_export_from_checkpoint_takes_the_named_weights(exported: dict, tmp_path: Path) -> None:
    plain, ema = build_discriminator(TINY), build_discriminator(TINY)
    for variable in ema.weights:
        variable.assign(variable + 0.01)
    ckpt = tf.train.Checkpoint(discriminator=plain, ema_discriminator=ema)
    ckpt.write(str(tmp_path / "ckpt" / "last"))
    (tmp_path / "ckpt" / "checkpoint").write_text('model_checkpoint_path: "last"\n')
    images = exported["images"][:4]
    for use_ema, source in ((False, plain), (True, ema)):
        out = export_from_checkpoint(TINY, tmp_path / "ckpt", tmp_path / f"ema{use_ema}",
                                     warmup_images=images, use_ema=use_ema)  # fmt: skip
        expected = tf.nn.softmax(source(to_model_range(images), training=False)[0]).numpy()
        np.testing.assert_allclose(score_saved_model(out, images), expected, atol=1e-5)

    tf.train.Checkpoint(discriminator=plain).write(str(tmp_path / "plain" / "p"))
    (tmp_path / "plain" / "checkpoint").write_text('model_checkpoint_path: "p"\n')
    with pytest.raises(ExportError, match="has no 'ema_discriminator' weights"):
        export_from_checkpoint(
            TINY, tmp_path / "plain", tmp_path / "bad", warmup_images=images, use_ema=True
        )
    with pytest.raises(ExportError, match="holds no checkpoint"):
        export_from_checkpoint(TINY, tmp_path / "nowhere", tmp_path / "bad", warmup_images=images)
    assert not (tmp_path / "bad").exists()


# An export stalled while it writes its staging folder, to be killed there.
_STALLED_EXPORT = """
import sys, time
import numpy as np
import tensorflow as tf
from ssgan.config import ModelConfig
from ssgan.models.networks import build_discriminator
from ssgan.serving.saved_model import export_saved_model

def stalled(module, folder, **kwargs):
    (open(folder + "/partial.bin", "wb")).write(b"x" * 1024)
    print("writing", flush=True)
    time.sleep(600)

tf.saved_model.save = stalled
classifier = build_discriminator(
    ModelConfig(name="tutorial", z_size=8, g_size_mult=4, d_size_mult=4)
)
export_saved_model(classifier, sys.argv[1], warmup_images=np.zeros((1, 32, 32, 3), np.uint8))
"""


@pytest.mark.integration
def test_an_export_removes_what_a_killed_export_left_and_keeps_a_live_ones(
    exported: dict, tmp_path: Path
) -> None:
    """kill -9 during an export used to leave its .NAME.partial-*/ beside it for good."""
    target = tmp_path / "model"
    killed = subprocess.Popen(
        [sys.executable, "-c", _STALLED_EXPORT, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout is not None and killed.stdout.readline() == "writing\n"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    (dead,) = [p for p in tmp_path.glob(".model.partial-*") if p.is_dir()]
    assert (dead / "partial.bin").is_file()
    older = tmp_path / ".model.partial-k2x9q0zw"  # an earlier version's scrap: no lock file
    older.mkdir()
    live = tmp_path / ".model.partial-1live"
    live.mkdir()
    other = tmp_path / ".other.partial-0dead"  # another export's name: not this one's to judge
    other.mkdir()
    with open(live.with_name(live.name + ".lock"), "a+") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)  # an export of the same name, still writing
        export_saved_model(exported["classifier"], target, warmup_images=exported["images"][:2])
    verify_saved_model(target)
    assert {p.name for p in tmp_path.iterdir()} == {
        "model",
        live.name,
        live.name + ".lock",
        other.name,
    }
    older.mkdir()  # and once the live export's lock is free, it is dead too
    assert remove_dead_exports(target) == [live, older]  # what ssgan.export says it removed
    assert {p.name for p in tmp_path.iterdir()} == {"model", other.name}


@pytest.mark.integration
def test_the_export_command_says_what_a_killed_export_left_and_it_removed(
    smoke_run: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ssgan.export import main

    out = tmp_path / "exported"
    dead = tmp_path / ".exported.partial-0dead"  # its export was killed: its lock is free
    (dead / "variables").mkdir(parents=True)
    dead.with_name(dead.name + ".lock").touch()
    run_id, uri = smoke_run["summary"].run_id, smoke_run["cfg"].tracking.uri
    monkeypatch.chdir(tmp_path)  # Hydra writes nothing there (no outputs/, no .hydra/)
    argv = ["ssgan/export.py", f"run_id={run_id}", f"output={out}", f"tracking.uri={uri}"]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"removed {dead}, left by a killed export",
        f"exported {out}",
    ]
    assert {p.name for p in tmp_path.iterdir()} == {"exported"}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("run_id", "says"),
    [("nope", "run_id='nope' is not an MLflow run id"), ("0" * 32, "was not found in the")],
)
def test_the_export_command_names_a_bad_run_id(
    smoke_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, run_id: str, says: str,
) -> None:  # fmt: skip
    from ssgan.export import main

    monkeypatch.chdir(tmp_path)
    uri = smoke_run["cfg"].tracking.uri
    argv = ["ssgan/export.py", f"run_id={run_id}", "output=out", f"tracking.uri={uri}"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and says in error, error
    assert list(tmp_path.iterdir()) == []

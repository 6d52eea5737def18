"""Model loading, validation, inference and CAMs: tiny ONNX models on the cells of a bundled field."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx_factory import (
    make_tiny_classifier,
    read_sidecar_dict,
    resign,
    tiny_weights,
    write_sidecar,
)

from leukview.core.errors import ModelError
from leukview.core.explain import (
    class_activation_map,
    feature_activation_map,
    raw_class_activation_maps,
)
from leukview.core.models import CPU, Classifier, cam_is_exact, softmax
from leukview.core.preprocess import crop_box, preprocess_cells
from leukview.core.progress import AnalysisCancelled

CLASSES = ["lymphocyte", "monocyte", "neutrophil"]


def edit_sidecar(folder: Path, **changes: object) -> None:
    data = read_sidecar_dict(folder)
    data.update(changes)
    write_sidecar(folder, data)


# --- loading and validation -------------------------------------------------


def test_load_reports_spec_provider_and_path(tiny: Path) -> None:
    model = Classifier.load(tiny)
    assert model.spec.name == "tiny"
    assert model.spec.classes == CLASSES
    assert model.provider == CPU
    assert model.path == tiny
    assert model.feature_shape == (8, 8, 8)
    assert model.cam_weights.shape == (3, 8)
    assert model.cam_exact is True
    # a path to either file of the model is accepted too
    assert Classifier.load(tiny / "model.onnx").spec.name == "tiny"


def test_changed_model_file_does_not_match_sidecar(tiny: Path) -> None:
    model = onnx.load(tiny / "model.onnx")
    weight = next(t for t in model.graph.initializer if t.name == "classifier.weight")
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) + 1, weight.name))
    onnx.save(model, tiny / "model.onnx")  # still a valid model, but not the one signed
    with pytest.raises(ModelError, match=r"does not match its sidecar \(sha256"):
        Classifier.load(tiny)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: os.urandom(4096), id="garbage"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated-half"),
        pytest.param(lambda b: b[:100], id="truncated-header"),
        pytest.param(lambda b: b"<html>404 not found</html>", id="html"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_damaged_model_file_is_a_model_error(tiny: Path, damage) -> None:
    path = tiny / "model.onnx"
    path.write_bytes(damage(path.read_bytes()))
    damaged = path.read_bytes()
    # an empty file is said to be empty before its sha256 is compared
    with pytest.raises(ModelError, match="model file is empty" if not damaged else "does not match"):
        Classifier.load(tiny)
    resign(tiny)  # as if the sidecar had been written for the damaged file
    with pytest.raises(ModelError, match="not a valid ONNX model|model file is empty") as info:
        Classifier.load(tiny)
    assert info.value.path == str(path)


def test_bad_json_sidecar(tiny: Path) -> None:
    (tiny / "model.json").write_text('{"name": "tiny", "classes": [', encoding="utf-8")
    with pytest.raises(ModelError, match="not valid JSON"):
        Classifier.load(tiny)


def test_missing_files(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="folder not found"):
        Classifier.load(tmp_path / "nowhere")
    (tiny / "model.onnx").unlink()
    with pytest.raises(ModelError, match="model.onnx not found"):
        Classifier.load(tiny)
    (tiny / "model.json").unlink()
    with pytest.raises(ModelError, match="sidecar not found"):
        Classifier.load(tiny)


def test_sidecar_of_another_model(tmp_path: Path) -> None:
    mine = make_tiny_classifier(tmp_path / "mine", CLASSES, input_size=32)
    other = make_tiny_classifier(tmp_path / "other", ["blast", "normal"], input_size=48, seed=1)
    shutil.copy(other / "model.json", mine / "model.json")
    with pytest.raises(ModelError, match="does not match its sidecar"):
        Classifier.load(mine)
    resign(mine)
    with pytest.raises(ModelError, match=r"sidecar says \(N, 3, 48, 48\)"):
        Classifier.load(mine)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": ["a", "b", "c", "d"]}, "lists 4 classes"),
        ({"classes": ["a", "b"]}, "lists 2 classes"),
        (
            {"input": {"name": "pixels", "size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}},
            "no input 'pixels'",
        ),
        (
            {"input": {"name": "input", "size": 64, "mean": [0.5] * 3, "std": [0.25] * 3}},
            r"\(N, 3, 64, 64\)",
        ),
        (
            {"outputs": {"scores": "scores", "scores_kind": "logits", "features": "features"}},
            "no output 'scores'",
        ),
        (
            {"outputs": {"scores": "logits", "scores_kind": "logits", "features": "fmap"}},
            "no output 'fmap'",
        ),
        (
            {"outputs": {"scores": "logits", "scores_kind": "logits", "features": "logits"}},
            "must be feature maps",
        ),
        ({"cam": {"weight": "head.fc.weight"}}, "no initialiser 'head.fc.weight'"),
        ({"cam": {"weight": "conv.weight"}}, r"shape \(8, 3, 4, 4\); expected \(3, channels\)"),
        ({"sha256": ""}, "no sha256"),
    ],
)
def test_sidecar_that_does_not_match_the_graph(tiny: Path, changes: dict, message: str) -> None:
    edit_sidecar(tiny, **changes)
    with pytest.raises(ModelError, match=message):
        Classifier.load(tiny)


def test_cam_weight_with_wrong_channel_count(tiny: Path) -> None:
    model = onnx.load(tiny / "model.onnx")
    model.graph.initializer.append(
        numpy_helper.from_array(np.ones((3, 5), np.float32), "other.weight")
    )
    onnx.save(model, tiny / "model.onnx")
    resign(tiny)
    edit_sidecar(tiny, cam={"weight": "other.weight"})
    with pytest.raises(ModelError, match="features have 8 channels"):
        Classifier.load(tiny)


# --- CAM exactness ----------------------------------------------------------


def test_cam_decomposes_the_logits_exactly(tiny: Path, field) -> None:
    image, cells = field
    model = Classifier.load(tiny)
    weights, bias = tiny_weights(onnx.load(tiny / "model.onnx"))
    spec = model.spec
    batch = preprocess_cells(image, cells, spec.crop, spec.input_size, spec.mean, spec.std)
    logits, features = model.run(batch)
    maps = raw_class_activation_maps(features, weights)
    assert maps.shape == (len(cells), 3, 8, 8)
    np.testing.assert_allclose(maps.mean(axis=(-2, -1)) + bias, logits, rtol=1e-4, atol=1e-4)
    assert cam_is_exact(logits[:2], features[:2], weights) is True


def test_inexact_cam_is_detected(tmp_path: Path, field) -> None:
    image, cells = field
    folder = make_tiny_classifier(tmp_path / "loose", CLASSES, features_before_relu=True)
    model = Classifier.load(folder)
    assert model.cam_exact is False
    weights, bias = tiny_weights(onnx.load(folder / "model.onnx"))
    spec = model.spec
    logits, features = model.run(
        preprocess_cells(image, cells, spec.crop, spec.input_size, spec.mean, spec.std)
    )
    assert not np.allclose(
        raw_class_activation_maps(features, weights).mean(axis=(-2, -1)) + bias, logits, atol=1e-2
    )


def test_cam_exactness_through_probabilities(tmp_path: Path) -> None:
    folder = make_tiny_classifier(tmp_path / "p", CLASSES, scores_kind="probabilities")
    assert Classifier.load(folder).cam_exact is True


# --- predict on real cells --------------------------------------------------


def test_predict_on_bccd_cells(tiny: Path, field) -> None:
    image, cells = field
    model = Classifier.load(tiny)
    predictions = model.predict(image, cells)
    assert len(predictions) == len(cells)

    # the same numbers straight from onnxruntime on the preprocessing contract's output
    spec = model.spec
    batch = preprocess_cells(image, cells, spec.crop, spec.input_size, spec.mean, spec.std)
    session = ort.InferenceSession(str(tiny / "model.onnx"), providers=[CPU])
    logits, features = session.run(["logits", "features"], {"input": batch})
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    weights, _ = tiny_weights(onnx.load(tiny / "model.onnx"))

    got = np.array([[p.probabilities[c] for c in CLASSES] for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    assert got.std(axis=0).max() > 1e-3  # different cells, different answers
    for cell, prediction, row, fmap in zip(cells, predictions, expected, features, strict=True):
        assert prediction.label == CLASSES[int(np.argmax(row))]
        assert prediction.cam.dtype == np.float32 and prediction.cam.shape == (8, 8)
        assert prediction.cam.min() >= 0.0 and prediction.cam.max() <= 1.0
        np.testing.assert_allclose(
            prediction.cam,
            class_activation_map(fmap, weights, CLASSES.index(prediction.label)),
            atol=1e-5,
        )
        assert prediction.cam_box == tuple(float(v) for v in crop_box(cell, spec.crop))


def test_batch_size_does_not_change_results(tiny: Path, field) -> None:
    image, cells = field
    model = Classifier.load(tiny)
    one = model.predict(image, cells, batch_size=1)
    many = model.predict(image, cells, batch_size=32)
    odd = model.predict(image, cells, batch_size=5)
    for a, b, c in zip(one, many, odd, strict=True):
        assert a.label == b.label == c.label
        for name in CLASSES:
            assert abs(a.probabilities[name] - b.probabilities[name]) < 1e-5
            assert abs(c.probabilities[name] - b.probabilities[name]) < 1e-5
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-5)


def test_fixed_batch_graphs_give_the_same_results(tmp_path: Path, tiny: Path, field) -> None:
    image, cells = field
    cells = cells[:7]
    reference = Classifier.load(tiny).predict(image, cells)
    for fixed in (1, 4):
        model = Classifier.load(
            make_tiny_classifier(tmp_path / f"b{fixed}", CLASSES, fixed_batch=fixed)
        )
        assert model.fixed_batch == fixed
        got = model.predict(image, cells, batch_size=3)
        for a, b in zip(reference, got, strict=True):
            assert a.label == b.label
            assert abs(a.probabilities[a.label] - b.probabilities[b.label]) < 1e-5


def test_dynamic_spatial_graph(tmp_path: Path, tiny: Path, field) -> None:
    image, cells = field
    model = Classifier.load(make_tiny_classifier(tmp_path / "dyn", CLASSES, dynamic_spatial=True))
    reference = Classifier.load(tiny).predict(image, cells[:4])
    got = model.predict(image, cells[:4])
    assert [p.label for p in got] == [p.label for p in reference]


def test_probabilities_output_is_used_as_is(tmp_path: Path, tiny: Path, field) -> None:
    image, cells = field
    logits_model = Classifier.load(tiny)
    prob_model = Classifier.load(
        make_tiny_classifier(tmp_path / "p", CLASSES, scores_kind="probabilities")
    )
    for a, b in zip(
        logits_model.predict(image, cells), prob_model.predict(image, cells), strict=True
    ):
        assert a.label == b.label
        assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in CLASSES) < 1e-5


def test_without_cam_weight_the_map_is_the_channel_mean(tmp_path: Path, field) -> None:
    image, cells = field
    model = Classifier.load(make_tiny_classifier(tmp_path / "nocam", CLASSES, cam=False))
    assert model.cam_weights is None and model.cam_exact is None
    spec = model.spec
    _, features = model.run(
        preprocess_cells(image, cells, spec.crop, spec.input_size, spec.mean, spec.std)
    )
    for prediction, fmap in zip(model.predict(image, cells), features, strict=True):
        mean = np.maximum(fmap.mean(axis=0), 0)
        np.testing.assert_allclose(prediction.cam, mean / mean.max(), atol=1e-5)
        np.testing.assert_allclose(prediction.cam, feature_activation_map(fmap), atol=1e-6)


def test_without_features_there_is_no_cam(tmp_path: Path, field) -> None:
    image, cells = field
    model = Classifier.load(
        make_tiny_classifier(tmp_path / "nofeat", CLASSES, features=False, cam=False)
    )
    predictions = model.predict(image, cells[:3])
    assert all(p.cam is None and p.cam_box is None for p in predictions)
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in predictions)


def test_with_cam_false(tiny: Path, field) -> None:
    image, cells = field
    predictions = Classifier.load(tiny).predict(image, cells[:3], with_cam=False)
    assert all(p.cam is None and p.cam_box is None for p in predictions)


def test_no_cells(tiny: Path, field) -> None:
    image, _ = field
    assert Classifier.load(tiny).predict(image, []) == []


def test_cancel_between_batches(tiny: Path, field) -> None:
    image, cells = field
    model = Classifier.load(tiny)
    polls: list[int] = []
    done: list[float] = []

    def should_cancel() -> bool:
        polls.append(1)
        return len(polls) >= 2

    with pytest.raises(AnalysisCancelled):
        model.predict(
            image,
            cells,
            batch_size=2,
            should_cancel=should_cancel,
            progress=lambda fraction, _: done.append(fraction),
        )
    assert len(polls) == 2
    assert done == [0.0]  # the first batch was announced and ran, the second never started

    done.clear()
    model.predict(image, cells, batch_size=4, progress=lambda fraction, _: done.append(fraction))
    assert done == [start / len(cells) for start in range(0, len(cells), 4)] + [1.0]


def test_softmax_rows() -> None:
    scores = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(softmax(scores), [[0.5, 0.5], [0.25, 0.75]], rtol=1e-6)

"""Class-activation maps, occlusion maps, deletion curves and their placement on the image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leukview.core.cells import Cell, Prediction
from leukview.core.explain import (
    cam_map,
    cam_to_image,
    class_activation_map,
    classifier_predictor,
    deletion_curve,
    feature_activation_map,
    field_heatmap,
    heatmap_overlay,
    occlusion_drops,
    occlusion_map,
    raw_class_activation_maps,
    scale_cam,
)
from leukview.core.preprocess import preprocess_cells

RNG = np.random.default_rng(7)


def test_raw_maps_are_the_weighted_channel_sums() -> None:
    features = RNG.normal(size=(5, 4, 6)).astype(np.float32)
    weights = RNG.normal(size=(3, 5)).astype(np.float32)
    maps = raw_class_activation_maps(features, weights)
    assert maps.shape == (3, 4, 6) and maps.dtype == np.float32
    for k in range(3):
        expected = sum(weights[k, c] * features[c] for c in range(5))
        np.testing.assert_allclose(maps[k], expected, rtol=1e-5, atol=1e-5)
    batched = raw_class_activation_maps(np.stack([features, 2 * features]), weights)
    assert batched.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(batched[1], 2 * maps, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        raw_class_activation_maps(features, weights[:, :4])


def test_class_activation_map_is_rectified_and_scaled() -> None:
    features = RNG.normal(size=(5, 7, 7)).astype(np.float32)
    weights = RNG.normal(size=(3, 5)).astype(np.float32)
    for k in range(3):
        cam = class_activation_map(features, weights, k)
        raw = np.tensordot(weights[k], features, axes=1)
        assert cam.dtype == np.float32 and cam.shape == (7, 7)
        assert cam.max() == pytest.approx(1.0)
        assert np.all(cam[raw <= 0] == 0)
        np.testing.assert_allclose(cam, np.maximum(raw, 0) / raw.max(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="class_index"):
        class_activation_map(features, weights, 3)


def test_scale_cam_of_nothing_positive_is_zero() -> None:
    assert not scale_cam(-np.ones((3, 3))).any()
    assert scale_cam(np.full((2, 2), np.nan)).dtype == np.float32


def test_feature_activation_map_is_the_channel_mean() -> None:
    features = np.abs(RNG.normal(size=(4, 3, 3))).astype(np.float32)
    mean = features.mean(axis=0)
    np.testing.assert_allclose(feature_activation_map(features), mean / mean.max(), rtol=1e-6)


def test_cam_to_image_fills_only_the_box() -> None:
    heat = cam_to_image(np.ones((4, 4), np.float32), (10, 20, 50, 60), (100, 80, 3))
    assert heat.shape == (100, 80) and heat.dtype == np.float32
    assert np.all(heat[20:60, 10:50] == 1.0)
    assert heat.sum() == 40 * 40


def test_cam_to_image_keeps_the_peak_where_it_was() -> None:
    cam = np.zeros((4, 4), np.float32)
    cam[0, 3] = 1.0  # top right of the crop
    heat = cam_to_image(cam, (100, 200, 180, 280), (400, 400))
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert 200 <= y < 220 and 160 <= x < 180
    assert heat.max() == pytest.approx(1.0)


def test_cam_to_image_clips_at_the_border() -> None:
    cam = RNG.random((5, 5)).astype(np.float32)
    # the same box seen in a large image (offset by 50) and in one whose corner cuts it
    big = cam_to_image(cam, (20, 30, 100, 110), (300, 300))
    clipped = cam_to_image(cam, (-30, -20, 50, 60), (200, 200))
    np.testing.assert_allclose(clipped[0:60, 0:50], big[50:110, 50:100])
    assert not clipped[60:, :].any() and not clipped[:, 50:].any()
    assert not cam_to_image(cam, (-90, -90, -10, -10), (50, 50)).any()


def _cell_with_cam(box: tuple[int, int, int, int], value: float) -> Cell:
    cell = Cell(1, "wbc", np.zeros((0, 2), np.int32), box, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
    cam = np.full((2, 2), value, np.float32)
    cell.predictions["m"] = Prediction("a", {"a": 1.0}, cam=cam, cam_box=tuple(float(v) for v in box))
    return cell


def test_field_heatmap_takes_the_maximum() -> None:
    first = _cell_with_cam((0, 0, 20, 20), 0.4)
    second = _cell_with_cam((10, 10, 30, 30), 0.9)
    other = _cell_with_cam((0, 0, 40, 40), 1.0)
    other.predictions["other-model"] = other.predictions.pop("m")
    bare = Cell(9, "rbc", np.zeros((0, 2), np.int32), (0, 0, 5, 5), (2.5, 2.5))
    heat = field_heatmap([first, second, other, bare], "m", (40, 40, 3))
    assert heat[5, 5] == pytest.approx(0.4)
    assert heat[15, 15] == pytest.approx(0.9)  # overlap: the larger value
    assert heat[35, 35] == 0.0  # the other model's map is not drawn


def test_heatmap_overlay() -> None:
    image = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert np.array_equal(heatmap_overlay(image, np.zeros((30, 40))), image)
    hot = heatmap_overlay(image, np.ones((30, 40)), alpha=1.0)
    assert hot.dtype == np.uint8 and hot.shape == image.shape
    assert np.all(hot[..., 0] > 100) and np.all(hot[..., 2] == 0)  # JET's top is red, in RGB order
    half = heatmap_overlay(image, np.ones((30, 40)), alpha=0.5).astype(int)
    assert np.abs(half - (image.astype(int) + hot.astype(int)) / 2).max() <= 1
    with pytest.raises(ValueError, match="does not match"):
        heatmap_overlay(image, np.zeros((10, 10)))
    with pytest.raises(ValueError, match="colormap"):
        heatmap_overlay(image, np.zeros((30, 40)), colormap="rainbow")


# -- occlusion maps and deletion curves ------------------------------------------------------------

QUADRANT_SIZE = 32


def _quadrant_model(folder: Path, size: int = QUADRANT_SIZE) -> Path:
    """A model whose only evidence is the top-left quadrant: logits (m, -m), m = its mean input."""
    from onnx import TensorProto, helper, numpy_helper
    from onnx_factory import IR_VERSION, OPSET, sha256_file

    from leukview.core.models import ModelSpec
    from leukview.core.preprocess import CropRule

    half = size // 2
    inits = [
        numpy_helper.from_array(np.array([0, 0], np.int64), "starts"),
        numpy_helper.from_array(np.array([half, half], np.int64), "ends"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([1], np.int64), "unsqueeze_axes"),
    ]
    nodes = [
        helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["quadrant"]),
        helper.make_node("ReduceMean", ["quadrant"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "unsqueeze_axes"], ["m"]),
        helper.make_node("Neg", ["m"], ["minus_m"]),
        helper.make_node("Concat", ["m", "minus_m"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "quadrant",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    spec = ModelSpec(
        name="quadrant", version="0.0.1", classes=["bright", "dark"], input_size=size,
        mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], crop=CropRule(1.5, 16, "keep"),
        features_output=None, sha256=sha256_file(folder / "model.onnx"),
    )
    (folder / "model.json").write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    return folder


def _quadrant_predict(batch: np.ndarray) -> np.ndarray:
    m = batch[:, :, : QUADRANT_SIZE // 2, : QUADRANT_SIZE // 2].mean(axis=(1, 2, 3))
    p = 1.0 / (1.0 + np.exp(-2.0 * m))
    return np.stack([p, 1.0 - p], axis=1)


def _quadrant_crop(seed: int = 0) -> np.ndarray:
    crop = np.random.default_rng(seed).normal(0.0, 0.3, (3, QUADRANT_SIZE, QUADRANT_SIZE)).astype(np.float32)
    crop[:, : QUADRANT_SIZE // 2, : QUADRANT_SIZE // 2] += 0.6
    return crop


def test_occlusion_finds_the_only_region_that_matters() -> None:
    crop = _quadrant_crop()
    drops, index, base = occlusion_drops(_quadrant_predict, crop)
    half = QUADRANT_SIZE // 2
    patch = QUADRANT_SIZE // 4
    assert index == 0 and base == pytest.approx(float(_quadrant_predict(crop[None])[0, 0]))
    assert drops.shape == (QUADRANT_SIZE, QUADRANT_SIZE) and drops.dtype == np.float32
    y, x = np.unravel_index(np.argmax(drops), drops.shape)
    assert y < half and x < half
    inside = drops[:half, :half]
    assert inside.min() > 0
    # no window farther than a patch from the quadrant touches it: exactly no effect there
    assert np.all(drops[half + patch :, :] == 0) and np.all(drops[:, half + patch :] == 0)
    outside = np.ones_like(drops, bool)
    outside[:half, :half] = False
    assert inside.mean() > 3 * drops[outside].mean()
    top = np.argsort(-drops.ravel())[: half * half]  # the quarter of pixels ranked highest
    rows, cols = np.unravel_index(top, drops.shape)
    assert np.mean((rows < half) & (cols < half)) > 0.8
    with pytest.raises(ValueError, match="crop must be"):
        occlusion_drops(_quadrant_predict, crop[0])
    with pytest.raises(ValueError, match="patch"):
        occlusion_drops(_quadrant_predict, crop, patch=QUADRANT_SIZE + 1)


def test_occlusion_batches_all_windows() -> None:
    calls: list[int] = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return _quadrant_predict(batch)

    occlusion_drops(counting, _quadrant_crop(), patch=8, stride=4, batch_size=100)
    assert calls == [7 * 7 + 1]  # one call: the intact crop and every window
    calls.clear()
    occlusion_drops(counting, _quadrant_crop(), patch=8, stride=4, batch_size=16)
    assert calls == [16, 16, 16, 2]


def test_deletion_curve_of_the_occlusion_map_beats_random() -> None:
    crop = _quadrant_crop(1)
    drops, index, _ = occlusion_drops(_quadrant_predict, crop)
    curve = deletion_curve(_quadrant_predict, crop, index, drops, steps=16)
    assert curve.fractions[0] == 0 and curve.fractions[-1] == 1 and len(curve.probabilities) == 17
    assert curve.probabilities[0] == pytest.approx(float(_quadrant_predict(crop[None])[0, 0]), abs=1e-6)
    assert curve.probabilities[-1] == pytest.approx(0.5, abs=1e-6)  # all grey: m = 0
    randoms = [deletion_curve(_quadrant_predict, crop, index, None, steps=16, seed=s).auc for s in range(5)]
    assert curve.auc < min(randoms) - 0.05
    # a map that points at the wrong quadrant does worse than random
    wrong = np.zeros_like(drops)
    wrong[QUADRANT_SIZE // 2 :, QUADRANT_SIZE // 2 :] = 1.0
    assert deletion_curve(_quadrant_predict, crop, index, wrong, steps=16).auc > max(randoms)
    # a coarse map is resized to the crop
    coarse = np.zeros((4, 4), np.float32)
    coarse[:2, :2] = 1.0
    assert deletion_curve(_quadrant_predict, crop, index, coarse, steps=16).auc < min(randoms)
    with pytest.raises(ValueError, match="steps"):
        deletion_curve(_quadrant_predict, crop, index, drops, steps=0)


def test_occlusion_map_of_a_classifier_is_placed_like_the_cam(tmp_path: Path) -> None:
    from leukview.core.models import Classifier
    from leukview.core.preprocess import crop_box

    classifier = Classifier.load(_quadrant_model(tmp_path / "quadrant"))
    image = np.full((120, 120, 3), 128, np.uint8)
    cell = Cell(1, "wbc", np.zeros((0, 2), np.int32), (40, 40, 80, 80), (60.0, 60.0), measurements={"area": 1000.0})
    x0, y0, x1, y1 = crop_box(cell, classifier.spec.crop)
    side = x1 - x0
    image[y0 : y0 + side // 2, x0 : x0 + side // 2] = 230  # the crop's top-left quadrant is bright
    result = occlusion_map(classifier, image, cell)
    assert result.kind == "occlusion" and result.label == "bright" and result.class_index == 0
    assert result.box == (float(x0), float(y0), float(x1), float(y1))
    assert result.grid.shape == (QUADRANT_SIZE, QUADRANT_SIZE) and result.grid.max() == pytest.approx(1.0)
    assert result.probability == pytest.approx(classifier.predict(image, [cell], with_cam=False)[0].probabilities["bright"], abs=1e-5)
    heat = cam_to_image(result.grid, result.box, image.shape)
    yy, xx = np.unravel_index(np.argmax(heat), heat.shape)
    assert y0 <= yy < y0 + side // 2 and x0 <= xx < x0 + side // 2
    # explaining the other class: hiding the bright quadrant raises its probability
    other = occlusion_map(classifier, image, cell, class_index=1)
    assert other.label == "dark" and other.raw[: QUADRANT_SIZE // 2, : QUADRANT_SIZE // 2].max() < 0


def test_cam_map_matches_predict(tmp_path: Path) -> None:
    from onnx_factory import make_tiny_classifier

    from leukview.core.models import Classifier

    classifier = Classifier.load(make_tiny_classifier(tmp_path / "tiny"))
    image = np.random.default_rng(2).integers(0, 256, (80, 80, 3), dtype=np.uint8)
    cell = Cell(1, "wbc", np.zeros((0, 2), np.int32), (20, 20, 50, 50), (35.0, 35.0), measurements={"area": 700.0})
    prediction = classifier.predict(image, [cell])[0]
    cam = cam_map(classifier, image, cell)
    assert cam.kind == "cam" and cam.label == prediction.label
    np.testing.assert_allclose(cam.grid, prediction.cam, atol=1e-6)
    assert cam.box == prediction.cam_box
    assert cam.probability == pytest.approx(prediction.probabilities[prediction.label], abs=1e-6)
    occlusion = occlusion_map(classifier, image, cell)
    assert occlusion.class_index == cam.class_index and occlusion.box == cam.box
    predict = classifier_predictor(classifier)
    batch = preprocess_cells(image, [cell], classifier.spec.crop, 32, classifier.spec.mean, classifier.spec.std)
    for saliency in (cam.grid, occlusion.grid):
        curve = deletion_curve(predict, batch[0], cam.class_index, saliency, steps=8)
        assert curve.probabilities[0] == pytest.approx(cam.probability, abs=1e-5)
        assert 0.0 <= curve.auc <= 1.0

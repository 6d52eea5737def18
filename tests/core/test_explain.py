"""Class-activation maps and their placement on the image."""

from __future__ import annotations

import numpy as np
import pytest

from leukview.core.cells import Cell, Prediction
from leukview.core.explain import (
    cam_to_image,
    class_activation_map,
    feature_activation_map,
    field_heatmap,
    heatmap_overlay,
    raw_class_activation_maps,
    scale_cam,
)

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

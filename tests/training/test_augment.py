"""uint8 augmentation of cached crops: geometry, stain, blur, JPEG, the look of other microscopes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.augment import (
    NO_AUGMENT,
    AugmentConfig,
    amplitude_mix,
    augment,
    hed_jitter,
    jpeg_round_trip,
)
from training.data import read_rgb

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """128 x 128 around the eosinophil of a bundled BCCD field, halved.

    BCCD's camera stores colour at half resolution (4:2:0); halving the field
    gives a crop with colour detail at every pixel, as PBC's 4:4:4 cells have.
    """
    image = read_rgb(SAMPLES / "BloodImage_00056.jpg")
    return cv2.resize(image[167:423, 214:470], (128, 128), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    """Red cells of another bundled field, recoloured as another microscope might show them."""
    field = read_rgb(SAMPLES / "BloodImage_00214.jpg")[100:228, 100:228]
    return np.clip(field.astype(float) * [1.05, 0.8, 0.6] + [10, 0, 0], 0, 255).astype(np.uint8)


def test_augment_keeps_crops_valid(crop: np.ndarray) -> None:
    before = crop.copy()
    rng = np.random.default_rng(0)
    outs = [augment(crop, rng, AugmentConfig(blur=1.0, lowres=1.0, grayscale=1.0)) for _ in range(4)]
    assert np.array_equal(crop, before)
    assert all(o.shape == crop.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, crop) for o in outs)
    assert np.array_equal(augment(crop, rng, NO_AUGMENT), crop)


def test_hed_jitter_and_eosin_fading(crop: np.ndarray) -> None:
    from skimage.color import rgb2hed

    same = hed_jitter(crop, np.ones(3), np.zeros(3))
    assert np.abs(same.astype(int) - crop.astype(int)).max() <= 2
    # more haematoxylin: darker, bluer nuclei
    stained = hed_jitter(crop, np.array([1.5, 1.0, 1.0]), np.zeros(3))
    assert stained.mean() < crop.mean()
    # eosin fading: the orange granules lose eosin, haematoxylin stays
    only_fade = dataclasses.replace(NO_AUGMENT, eosin_fade=1.0, eosin_min=0.3)
    fade_rng = np.random.default_rng(1)
    faded = [rgb2hed(augment(crop, fade_rng, only_fade)).reshape(-1, 3).mean(0) for _ in range(20)]
    before_hed, after_hed = rgb2hed(crop).reshape(-1, 3).mean(0), np.mean(faded, axis=0)
    assert 0.5 * before_hed[1] < after_hed[1] < 0.8 * before_hed[1]  # E scaled by U(0.3, 1): 0.65 on average
    assert after_hed[0] == pytest.approx(before_hed[0], rel=0.02)


def test_jpeg_420_loses_colour_detail_keeps_brightness_detail(crop: np.ndarray) -> None:
    def detail(img: np.ndarray) -> np.ndarray:
        ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(float)
        return np.abs(ycc - cv2.GaussianBlur(ycc, (0, 0), 1.0)).reshape(-1, 3).mean(0)

    squeezed = jpeg_round_trip(crop, 90)
    assert squeezed.shape == crop.shape and squeezed.dtype == np.uint8
    assert detail(squeezed)[1:].mean() < 0.8 * detail(crop)[1:].mean()
    assert detail(squeezed)[0] > 0.8 * detail(crop)[0]


def test_amplitude_mix_takes_the_look_keeps_the_cell(crop: np.ndarray, style: np.ndarray) -> None:
    assert np.abs(amplitude_mix(crop, style, 0.0).astype(int) - crop).max() <= 1
    full = amplitude_mix(crop, style, 1.0)
    # the zero frequency is the mean colour: it becomes the style's (up to clipping)
    assert np.abs(full.reshape(-1, 3).mean(0) - style.reshape(-1, 3).mean(0)).max() < 6
    assert np.abs(crop.reshape(-1, 3).mean(0) - style.reshape(-1, 3).mean(0)).max() > 15

    # the phase keeps the cell where it was: the dark nucleus stays the darkest region
    def dark(img: np.ndarray) -> np.ndarray:
        grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (0, 0), 4).astype(float)
        return grey < np.percentile(grey, 20)

    assert (dark(full) & dark(crop)).sum() > 0.5 * dark(crop).sum()
    rng = np.random.default_rng(0)
    out = augment(crop, rng, AugmentConfig(style_mix=1.0, hed=0, hue=0, saturation=0, brightness=0, contrast=0,
                                           gamma=0, blur=0, lowres=0), styles=style[None])
    assert out.shape == crop.shape and not np.array_equal(out, crop)
    with pytest.raises(ValueError, match="shapes differ"):
        amplitude_mix(crop, style[:64], 0.5)

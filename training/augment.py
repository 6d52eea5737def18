"""Augmentation of cached uint8 cell crops.

The crops come from :func:`leukview.core.preprocess.crop_cell`; augmentation
works on them as uint8 RGB and hands the result to
:func:`leukview.core.preprocess.normalize`, so a model is fed exactly the
app's preprocessing plus the perturbations below.

Geometry (a cell has no up or down): flips, 90-degree rotations, small
rotations, scale (a centre crop and resize when zooming in) and shifts.
Colour, for robustness across stains and microscopes rather than in-domain
accuracy: stain jitter in haematoxylin-eosin-DAB optical-density space
(Tellez et al. 2018), hue/saturation, brightness/contrast/gamma; optics:
blur and loss of resolution; and the look of other microscopes, taken from
unlabelled crops of their smears by mixing Fourier amplitudes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np
from skimage.color import hed_from_rgb, rgb_from_hed

_HED_FROM_RGB = hed_from_rgb.astype(np.float32)
_RGB_FROM_HED = rgb_from_hed.astype(np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation; zeros switch one off.

    Attributes
    ----------
    flip, rot90 : bool
        Random horizontal/vertical flips and multiples of 90 degrees.
    rotate : float
        Largest extra rotation in degrees (uniform in [-rotate, rotate]).
    scale : float
        Zoom uniform in [1 - scale, 1 + scale] about the centre.
    translate : float
        Largest shift as a fraction of the crop side.
    hed : float
        Stain jitter: each H, E, D optical density is scaled by
        U(1 - hed, 1 + hed) and shifted by U(-hed, hed) / 2.
    eosin_fade : float
        Probability of scaling the eosin optical density by U(eosin_min, 1):
        a Romanowsky stain's buffer pH and staining time change how orange an
        eosinophil's granules come out, from bright orange to a faint pink.
    eosin_min : float
    hue : float
        Largest hue shift as a fraction of the colour circle.
    saturation, brightness, contrast, gamma : float
        Multiplicative jitter U(1 - x, 1 + x) (gamma: exponent).
    blur : float
        Probability of a Gaussian blur with sigma U(0.3, blur_max) px.
    blur_max : float
        Largest blur sigma in pixels of the crop (a soft-focus microscope).
    lowres : float
        Probability of shrinking to U(lowres_min, 0.9) of the side and back
        (another camera's resolution).
    lowres_min : float
    jpeg : float
        Probability of a JPEG round trip at quality U(jpeg_min_quality, 95)
        with 4:2:0 chroma subsampling: colour at half the resolution of
        brightness, which blurs the colour of fine granules (BCCD's camera
        saves 4:2:0, PBC's CellaVision images are 4:4:4).
    jpeg_min_quality : int
    grayscale : float
        Probability of mixing the crop toward grey by U(0, 0.5).
    style_mix : float
        Probability of an amplitude-spectrum mix with a crop from another
        microscope (:func:`amplitude_mix`; needs ``styles``).
    style_strength : float
        Largest mixing weight of the other crop's amplitude, U(0, x).
    background : {'keep', 'black'}
        How pixels uncovered by a rotation are filled: mirrored smear, or black
        for cells cut out on black.
    """

    flip: bool = True
    rot90: bool = True
    rotate: float = 10.0
    scale: float = 0.1
    translate: float = 0.04
    hed: float = 0.05
    eosin_fade: float = 0.0
    eosin_min: float = 0.4
    hue: float = 0.03
    saturation: float = 0.25
    brightness: float = 0.15
    contrast: float = 0.15
    gamma: float = 0.15
    blur: float = 0.2
    blur_max: float = 1.2
    lowres: float = 0.2
    lowres_min: float = 0.4
    jpeg: float = 0.0
    jpeg_min_quality: int = 50
    grayscale: float = 0.0
    style_mix: float = 0.0
    style_strength: float = 1.0
    background: str = "keep"

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AugmentConfig:
        data = data or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown augmentation settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NO_AUGMENT = AugmentConfig(
    flip=False, rot90=False, rotate=0, scale=0, translate=0, hed=0, eosin_fade=0, hue=0, saturation=0,
    brightness=0, contrast=0, gamma=0, blur=0, lowres=0, jpeg=0, grayscale=0, style_mix=0,
)


def augment(
    crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig, styles: np.ndarray | None = None
) -> np.ndarray:
    """One random augmentation of a cell crop.

    Parameters
    ----------
    crop : ndarray of uint8, shape (S, S, 3)
        RGB crop from :func:`leukview.core.preprocess.crop_cell`.
    rng : numpy.random.Generator
    config : AugmentConfig
    styles : ndarray of uint8, shape (M, S, S, 3), optional
        Unlabelled crops from other microscopes for ``config.style_mix``.

    Returns
    -------
    out : ndarray of uint8, shape (S, S, 3)
        A new array; ``crop`` is not modified.
    """
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB crop (S, S, 3), got {crop.dtype} {crop.shape}")
    out = geometric(crop, rng, config)
    if config.style_mix and styles is not None and len(styles) and rng.random() < config.style_mix:
        style = styles[rng.integers(len(styles))]
        out = amplitude_mix(out, style, rng.uniform(0.0, config.style_strength))
    out = colour(out, rng, config)
    return optics(out, rng, config)


def amplitude_mix(crop: np.ndarray, style: np.ndarray, weight: float) -> np.ndarray:
    """Give a crop some of another crop's Fourier amplitude, keeping its own phase.

    The amplitude spectrum carries a microscope's look (stain balance,
    illumination, sharpness, noise); the phase carries the cell's shape. Mixing
    amplitudes (as in FACT, Xu et al., CVPR 2021) shows the network cells of
    one source with the optics of another.

    Parameters
    ----------
    crop, style : ndarray of uint8, shape (S, S, 3)
    weight : float
        0 leaves ``crop`` unchanged, 1 takes ``style``'s amplitude whole.

    Returns
    -------
    out : ndarray of uint8, shape (S, S, 3)
    """
    if crop.shape != style.shape:
        raise ValueError(f"crop and style shapes differ: {crop.shape} vs {style.shape}")
    f_crop = np.fft.fft2(crop.astype(np.float32), axes=(0, 1))
    f_style = np.fft.fft2(style.astype(np.float32), axes=(0, 1))
    amplitude = (1.0 - weight) * np.abs(f_crop) + weight * np.abs(f_style)
    mixed = np.fft.ifft2(amplitude * np.exp(1j * np.angle(f_crop)), axes=(0, 1)).real
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def geometric(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Flips, 90-degree turns, then one affine warp (rotation, zoom, shift)."""
    out = crop
    if config.flip:
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if rng.random() < 0.5:
            out = out[::-1]
    if config.rot90:
        out = np.rot90(out, int(rng.integers(4)))
    out = np.ascontiguousarray(out)
    angle = rng.uniform(-config.rotate, config.rotate) if config.rotate else 0.0
    zoom = rng.uniform(1 - config.scale, 1 + config.scale) if config.scale else 1.0
    side = out.shape[0]
    shift = rng.uniform(-config.translate, config.translate, 2) * side if config.translate else (0.0, 0.0)
    if angle or zoom != 1.0 or shift[0] or shift[1]:
        centre = ((side - 1) / 2.0, (side - 1) / 2.0)
        matrix = cv2.getRotationMatrix2D(centre, angle, zoom)
        matrix[:, 2] += shift
        border = cv2.BORDER_CONSTANT if config.background == "black" else cv2.BORDER_REFLECT_101
        out = cv2.warpAffine(out, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    return out


def hed_jitter(crop: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Scale and shift the stain optical densities of an RGB crop.

    Parameters
    ----------
    crop : ndarray of uint8, shape (S, S, 3)
    alpha, beta : ndarray of float, shape (3,)
        Per-stain (H, E, D) factor and offset.

    Returns
    -------
    out : ndarray of uint8, shape (S, S, 3)
    """
    rgb = np.maximum(crop.astype(np.float32) / 255.0, 1e-3)
    od = -np.log(rgb)
    stains = od.reshape(-1, 3) @ _HED_FROM_RGB
    stains = stains * alpha.astype(np.float32) + beta.astype(np.float32)
    back = np.exp(-(stains @ _RGB_FROM_HED)).reshape(crop.shape)
    return np.clip(back * 255.0 + 0.5, 0, 255).astype(np.uint8)


def colour(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Stain, hue/saturation and brightness/contrast/gamma jitter."""
    out = crop
    alpha, beta = np.ones(3), np.zeros(3)
    if config.hed:
        alpha = rng.uniform(1 - config.hed, 1 + config.hed, 3)
        beta = rng.uniform(-config.hed, config.hed, 3) / 2.0
    faded = bool(config.eosin_fade) and rng.random() < config.eosin_fade
    if faded:
        alpha[1] *= rng.uniform(config.eosin_min, 1.0)
    if config.hed or faded:
        out = hed_jitter(out, alpha, beta)
    if config.hue or config.saturation:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
        if config.hue:
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue, config.hue) * 256.0) % 256.0
        if config.saturation:
            hsv[..., 1] *= rng.uniform(1 - config.saturation, 1 + config.saturation)
        hsv = np.clip(hsv, 0, 255).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    if config.brightness or config.contrast or config.gamma:
        x = out.astype(np.float32) / 255.0
        if config.gamma:
            x = x ** rng.uniform(1 - config.gamma, 1 + config.gamma)
        if config.contrast:
            mean = x.mean()
            x = (x - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
        if config.brightness:
            x = x * rng.uniform(1 - config.brightness, 1 + config.brightness)
        out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if config.grayscale and rng.random() < config.grayscale:
        grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None].astype(np.float32)
        mix = rng.uniform(0.0, 0.5)
        out = np.clip(out * (1 - mix) + grey * mix + 0.5, 0, 255).astype(np.uint8)
    return out


def optics(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Blur, loss of resolution and JPEG compression, in a camera's order."""
    out = crop
    side = out.shape[0]
    if config.lowres and rng.random() < config.lowres:
        small = max(8, int(round(side * rng.uniform(min(config.lowres_min, 0.9), 0.9))))
        out = cv2.resize(cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA), (side, side),
                         interpolation=cv2.INTER_LINEAR)
    if config.blur and rng.random() < config.blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, max(0.3, config.blur_max)))
    if config.jpeg and rng.random() < config.jpeg:
        out = jpeg_round_trip(out, int(rng.integers(min(config.jpeg_min_quality, 95), 96)))
    return out if out is not crop else crop.copy()


def jpeg_round_trip(crop: np.ndarray, quality: int) -> np.ndarray:
    """Encode an RGB crop as a 4:2:0 JPEG of the given quality and decode it.

    Parameters
    ----------
    crop : ndarray of uint8, shape (H, W, 3)
    quality : int
        JPEG quality, 1-100.

    Returns
    -------
    out : ndarray of uint8, shape (H, W, 3)
    """
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [
        cv2.IMWRITE_JPEG_QUALITY, int(quality),
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    if not ok:
        raise ValueError(f"JPEG encoding of a {crop.shape} crop failed")
    return cv2.cvtColor(cv2.imdecode(buffer, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def augment_batch(
    crops: np.ndarray, rng: np.random.Generator, config: AugmentConfig, styles: np.ndarray | None = None
) -> np.ndarray:
    """:func:`augment` applied to each crop of (N, S, S, 3) uint8; returns a new array."""
    return np.stack([augment(c, rng, config, styles) for c in crops]) if len(crops) else crops.copy()

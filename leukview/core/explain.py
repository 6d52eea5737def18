"""Class-activation maps: where in a cell a model looked for its answer.

For a network that ends in global average pooling and one linear layer,
``logits[k] = mean_{y,x}(sum_c W[k, c] * F[c, y, x]) + b[k]``, so the map
``M_k = sum_c W[k, c] * F[c]`` is an exact spatial decomposition of the
logit of class ``k`` (Zhou et al., "Learning Deep Features for
Discriminative Localization", CVPR 2016): no gradients, no approximation.
:func:`raw_class_activation_maps` returns these maps before rectification so
that this identity can be checked; :func:`class_activation_map` gives the
display version (ReLU, scaled to [0, 1]).

All functions are pure: they take arrays and return new arrays.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from .cells import Cell

COLORMAPS = {"jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "inferno": cv2.COLORMAP_INFERNO}


def raw_class_activation_maps(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Un-rectified class-activation maps of every class.

    Parameters
    ----------
    features : ndarray of float, shape (C, h, w) or (N, C, h, w)
        Feature maps that the model's head averages.
    weights : ndarray of float, shape (K, C)
        Weights of the linear classifier (one row per class).

    Returns
    -------
    maps : ndarray of float32, shape (K, h, w) or (N, K, h, w)
        ``maps[..., k, :, :] = sum_c weights[k, c] * features[..., c, :, :]``.
        For a global-average-pool + linear head, ``maps.mean((-2, -1)) + bias``
        equals the logits.
    """
    features = np.asarray(features, np.float32)
    weights = np.asarray(weights, np.float32)
    if features.ndim not in (3, 4) or weights.ndim != 2 or weights.shape[1] != features.shape[-3]:
        raise ValueError(
            f"features (C, h, w) or (N, C, h, w) and weights (K, C) do not match: "
            f"{features.shape} vs {weights.shape}"
        )
    return np.einsum("kc,...chw->...khw", weights, features, optimize=True).astype(
        np.float32, copy=False
    )


def scale_cam(cam: np.ndarray) -> np.ndarray:
    """Rectify a map and scale it to [0, 1] for display.

    Parameters
    ----------
    cam : ndarray of float, shape (h, w)

    Returns
    -------
    scaled : ndarray of float32, shape (h, w)
        ``max(cam, 0) / max(cam)``; all zeros when nothing is positive.
    """
    cam = np.maximum(np.asarray(cam, np.float32), 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    if not np.isfinite(peak) or peak <= 0.0:
        return np.zeros(cam.shape, np.float32)
    return (cam / np.float32(peak)).astype(np.float32, copy=False)


def class_activation_map(features: np.ndarray, weights: np.ndarray, class_index: int) -> np.ndarray:
    """Display class-activation map of one class for one cell.

    Parameters
    ----------
    features : ndarray of float, shape (C, h, w)
    weights : ndarray of float, shape (K, C)
    class_index : int
        Row of ``weights`` (usually the predicted class).

    Returns
    -------
    cam : ndarray of float32, shape (h, w)
        ReLU of ``sum_c weights[class_index, c] * features[c]``, scaled to [0, 1].
    """
    weights = np.asarray(weights, np.float32)
    if not 0 <= class_index < weights.shape[0]:
        raise ValueError(f"class_index {class_index} is outside 0..{weights.shape[0] - 1}")
    return scale_cam(raw_class_activation_maps(features, weights[class_index : class_index + 1])[0])


def feature_activation_map(features: np.ndarray) -> np.ndarray:
    """Channel mean of the feature maps, for models whose head is not linear.

    This map shows where the network's features are strong, **not** what
    speaks for a particular class (the same map whatever the prediction).
    It is the fallback when a sidecar names no ``cam.weight`` (for example a
    gradient-boosted head on pooled CNN features).

    Parameters
    ----------
    features : ndarray of float, shape (C, h, w)

    Returns
    -------
    cam : ndarray of float32, shape (h, w), scaled to [0, 1]
    """
    features = np.asarray(features, np.float32)
    if features.ndim != 3:
        raise ValueError(f"features must be (C, h, w), got {features.shape}")
    return scale_cam(features.mean(axis=0))


def cam_to_image(
    cam: np.ndarray, cam_box: tuple[float, float, float, float], image_shape: tuple[int, ...]
) -> np.ndarray:
    """Place one cell's map on the image it came from.

    Parameters
    ----------
    cam : ndarray of float, shape (h, w)
        Map over the model's input crop.
    cam_box : tuple of float
        (x0, y0, x1, y1), half-open: the crop's square in image pixels
        (:func:`leukview.core.preprocess.crop_box`); it may extend past the border.
    image_shape : tuple of int
        (H, W) or (H, W, 3) of the image.

    Returns
    -------
    heatmap : ndarray of float32, shape (H, W)
        The map resized bilinearly to the box (feature-cell centres on
        crop-pixel centres), clipped at the image border; zero outside the box.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    out = np.zeros((height, width), np.float32)
    x0, y0, x1, y1 = (int(round(v)) for v in cam_box)
    if x1 <= x0 or y1 <= y0:
        return out
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return out
    cam = np.asarray(cam, np.float32)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"cam must be a non-empty (h, w) array, got shape {cam.shape}")
    resized = cv2.resize(cam, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    out[cy0:cy1, cx0:cx1] = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return out


def field_heatmap(
    cells: Iterable[Cell], model_name: str, image_shape: tuple[int, ...]
) -> np.ndarray:
    """One heatmap for a whole field: the maximum of every cell's map.

    Parameters
    ----------
    cells : iterable of Cell
        Cells without a prediction (or without a map) of ``model_name`` are skipped.
    model_name : str
    image_shape : tuple of int
        (H, W) or (H, W, 3).

    Returns
    -------
    heatmap : ndarray of float32, shape (H, W), values in [0, 1]
    """
    out = np.zeros((int(image_shape[0]), int(image_shape[1])), np.float32)
    for cell in cells:
        prediction = cell.predictions.get(model_name)
        if prediction is None or prediction.cam is None or prediction.cam_box is None:
            continue
        np.maximum(out, cam_to_image(prediction.cam, prediction.cam_box, out.shape), out=out)
    return out


def heatmap_overlay(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, colormap: str = "jet"
) -> np.ndarray:
    """Blend a heatmap over an image in false colour.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB image.
    heatmap : ndarray of float, shape (H, W)
        Values in [0, 1] (clipped).
    alpha : float
        Opacity of the colour where the heatmap is 1. The opacity is
        ``alpha * heatmap`` per pixel, so cold areas leave the image
        untouched instead of tinting the whole field blue.
    colormap : {'jet', 'turbo', 'inferno'}

    Returns
    -------
    overlay : ndarray of uint8, shape (H, W, 3)
        RGB.
    """
    image = np.asarray(image)
    heatmap = np.asarray(heatmap, np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heatmap.shape} does not match image {image.shape[:2]}")
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap must be one of {sorted(COLORMAPS)}, got {colormap!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    heat = np.clip(np.nan_to_num(heatmap), 0.0, 1.0)
    colour = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), COLORMAPS[colormap])
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (alpha * heat)[..., None]
    blended = image.astype(np.float32) * (1.0 - weight) + colour * weight
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)

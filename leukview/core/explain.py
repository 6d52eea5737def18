"""Class-activation maps: where in a cell a model looked for its answer.

For a network that ends in global average pooling and one linear layer,
``logits[k] = mean_{y,x}(sum_c W[k, c] * F[c, y, x]) + b[k]``, so the map
``M_k = sum_c W[k, c] * F[c]`` is an exact spatial decomposition of the
logit of class ``k`` (Zhou et al., "Learning Deep Features for
Discriminative Localization", CVPR 2016): no gradients, no approximation.
:func:`raw_class_activation_maps` returns these maps before rectification so
that this identity can be checked; :func:`class_activation_map` gives the
display version (ReLU, scaled to [0, 1]).

Occlusion maps (:func:`occlusion_map`, :func:`occlusion_drops`) need only the
model's scores: a grey patch (the model's mean colour) slides over the crop
and the drop of the called class's probability is recorded per position
(Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014). Both kinds come as a :class:`SaliencyMap` in the CAM's
coordinates (a grid over the crop and the crop's box in the image), so a
viewer shows either with :func:`cam_to_image`. :func:`deletion_curve`
measures how faithful a map is (Petsiuk et al., "RISE", BMVC 2018): grey
out the pixels it ranks highest first and follow the class's probability;
the area under that curve is compared with random orders.

The CAM functions are pure: they take arrays and return new arrays. The
occlusion and deletion functions run a model (a :class:`Classifier`, or
any ``predict(batch) -> probabilities`` callable).

Length (~700 lines): CAMs, occlusion maps and the deletion curve that checks both
share one map type and one coordinate rule (the crop's box); split only if a
third kind of map joins them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from .cells import Cell


class ModelLike(Protocol):
    """What the occlusion and CAM functions need of a model: a
    :class:`leukview.core.models.Classifier` (this module does not import it:
    the classifier imports this module)."""

    spec: Any
    cam_weights: np.ndarray | None

    def run(self, batch: np.ndarray, with_features: bool = True) -> tuple[np.ndarray, np.ndarray | None]: ...

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


#: A cell's map is kept at full strength inside its outline grown by this share of its diameter.
CAM_MARGIN = 0.15
#: Beyond that it fades (over twice as much again) to this share of its value: a model that looked
#: outside the cell still shows faintly there, but the cell's neighbours are not painted hot.
CAM_OUTSIDE = 0.25


def cell_heat_mask(
    cell: Cell, box: tuple[float, float, float, float], size: tuple[int, int],
    margin: float = CAM_MARGIN, outside: float = CAM_OUTSIDE,
) -> np.ndarray:  # fmt: skip
    """Weights in [outside, 1] over a cell's map box: 1 within its grown outline, fading to ``outside``.

    Parameters
    ----------
    cell : Cell
        Its contour (image pixels) and diameter set the mask.
    box : tuple of float
        (x0, y0, x1, y1), the map's square in image pixels.
    size : (width, height)
        Pixels of the returned mask over the box.
    margin : float
        Full strength up to ``margin x diameter`` outside the contour, then a
        smooth (raised-cosine) fall over twice as much.
    outside : float
        The weight far from the cell.

    Returns
    -------
    mask : ndarray of float32, shape (height, width)
    """
    width, height = int(size[0]), int(size[1])
    x0, y0, x1, y1 = box
    contour = np.asarray(cell.contour, np.float64).reshape(-1, 2)
    if len(contour) < 3 or x1 <= x0 or y1 <= y0:
        return np.ones((height, width), np.float32)
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    points = np.round((contour - (x0, y0)) * (sx, sy)).astype(np.int32).reshape(-1, 1, 2)
    inside = np.zeros((height, width), np.uint8)
    cv2.fillPoly(inside, [points], 255)
    if not inside.any():
        return np.full((height, width), outside, np.float32)
    distance = cv2.distanceTransform(255 - inside, cv2.DIST_L2, 5)  # 0 inside, pixels outside
    grow = max(margin * cell.diameter * (sx + sy) / 2.0, 1.0)
    t = np.clip((distance - grow) / (2.0 * grow), 0.0, 1.0)
    fall = 0.5 * (1.0 + np.cos(np.pi * t))  # 1 at the grown outline, 0 two margins further: no edge
    return (outside + (1.0 - outside) * fall).astype(np.float32)


def smooth_cam(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A coarse map (e.g. 4 x 4 features) upsampled smoothly: bicubic, then a Gaussian of one feature cell.

    Returns
    -------
    ndarray of float32, shape (size[1], size[0]), values in [0, 1]
    """
    cam = np.nan_to_num(np.asarray(cam, np.float32))
    width, height = max(int(size[0]), 1), max(int(size[1]), 1)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"cam must be a non-empty (h, w) array, got shape {cam.shape}")
    up = cv2.resize(cam, (width, height), interpolation=cv2.INTER_CUBIC)
    sigma = 0.5 * max(width / cam.shape[1], height / cam.shape[0])  # half a feature cell
    if sigma >= 0.5:
        up = cv2.GaussianBlur(up, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    return np.clip(up, 0.0, 1.0)


def cell_heat(cell: Cell, model_name: str, size: tuple[int, int] | None = None) -> np.ndarray | None:
    """One cell's map as shown: smooth (:func:`smooth_cam`) and attenuated away from the cell (:func:`cell_heat_mask`).

    Parameters
    ----------
    cell : Cell
    model_name : str
    size : (width, height), optional
        Pixels over the map's box (``Prediction.cam_box``); the box's own size in image pixels when None.

    Returns
    -------
    ndarray of float32, shape (height, width), or None when the cell has no map of that model
    """
    prediction = cell.predictions.get(model_name)
    if prediction is None or prediction.cam is None or prediction.cam_box is None:
        return None
    x0, y0, x1, y1 = prediction.cam_box
    if size is None:
        size = (max(int(round(x1 - x0)), 1), max(int(round(y1 - y0)), 1))
    heat = smooth_cam(prediction.cam, size)
    return heat * cell_heat_mask(cell, prediction.cam_box, size)


def field_heatmap(
    cells: Iterable[Cell], model_name: str, image_shape: tuple[int, ...], *, masked: bool = True
) -> np.ndarray:
    """One heatmap for a whole field: the maximum of every cell's map.

    Parameters
    ----------
    cells : iterable of Cell
        Cells without a prediction (or without a map) of ``model_name`` are skipped.
    model_name : str
    image_shape : tuple of int
        (H, W) or (H, W, 3).
    masked : bool
        Each map smooth and attenuated away from its cell (:func:`cell_heat`), as the
        viewer shows it; False: the raw maps resized bilinearly.

    Returns
    -------
    heatmap : ndarray of float32, shape (H, W), values in [0, 1]
    """
    out = np.zeros((int(image_shape[0]), int(image_shape[1])), np.float32)
    for cell in cells:
        prediction = cell.predictions.get(model_name)
        if prediction is None or prediction.cam is None or prediction.cam_box is None:
            continue
        shown = cell_heat(cell, model_name) if masked else prediction.cam
        assert shown is not None
        np.maximum(out, cam_to_image(shown, prediction.cam_box, out.shape), out=out)
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


# ---------------------------------------------------------------------------
# occlusion maps and deletion curves (model-agnostic: onnxruntime scores only)

Predictor = Callable[[np.ndarray], np.ndarray]
"""``predict(batch (N, 3, S, S) float32) -> probabilities (N, K)``: any model's forward pass."""


@dataclass(frozen=True)
class SaliencyMap:
    """One cell's explanation map, in the CAM's coordinates, whatever made it.

    Attributes
    ----------
    kind : {'cam', 'occlusion'}
    grid : ndarray of float32, shape (h, w)
        Values in [0, 1] over the model's input crop (as ``Prediction.cam``):
        :func:`cam_to_image` places it with ``box``. For a CAM, (h, w) is the
        feature grid; for occlusion the crop's pixels (S, S).
    box : tuple of float
        (x0, y0, x1, y1), the crop's square in image pixels (as ``Prediction.cam_box``).
    class_index : int
        Class explained (the called one unless asked otherwise).
    label : str
    probability : float
        That class's probability on the intact crop.
    raw : ndarray of float32, shape (h, w)
        Unscaled values: for occlusion, the signed drop of the probability
        when the region is greyed out (negative: hiding it raises the
        probability); for a CAM, its un-rectified map.
    """

    kind: str
    grid: np.ndarray
    box: tuple[float, float, float, float]
    class_index: int
    label: str
    probability: float
    raw: np.ndarray


@dataclass(frozen=True)
class DeletionCurve:
    """The called class's probability as the most salient pixels are greyed out first.

    Attributes
    ----------
    fractions : ndarray of float, shape (steps + 1,)
        Share of the crop's pixels removed, 0 to 1.
    probabilities : ndarray of float32, shape (steps + 1,)
    auc : float
        Area under the curve (trapezoid rule over ``fractions``): lower means
        the map found what the model relies on sooner (more faithful).
    """

    fractions: np.ndarray
    probabilities: np.ndarray
    auc: float


def classifier_predictor(classifier: ModelLike) -> Predictor:
    """The probabilities of a :class:`~leukview.core.models.Classifier` as a :data:`Predictor`."""
    spec = classifier.spec

    def predict(batch: np.ndarray) -> np.ndarray:
        scores, _ = classifier.run(batch, with_features=False)
        if spec.scores_kind == "logits":
            return _softmax(scores)
        scores = np.clip(np.nan_to_num(scores), 0.0, None)
        total = scores.sum(axis=1, keepdims=True)
        return np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1.0 / scores.shape[1])

    return predict


def _softmax(scores: np.ndarray) -> np.ndarray:
    # as leukview.core.models.softmax (not imported: that package imports this module)
    z = np.asarray(scores, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def occlusion_window(size: int) -> tuple[int, int]:
    """Default occlusion patch and stride for a crop of side ``size``.

    A patch of a quarter of the crop (about a nucleus lobe or a granule
    cluster of a centred white cell) at 5 x 5 evenly spaced positions,
    overlapping by a quarter: 26 inferences per map, well under a second
    on two CPU cores (``bench/bench_explain.py``).
    """
    patch = max(1, size // 4)
    return patch, max(1, (size - patch) // 4)


def _window_starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:  # the last window touches the far border
        starts.append(size - patch)
    return starts


def _run_batched(predict: Predictor, batch: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [np.asarray(predict(batch[s : s + batch_size]), np.float32) for s in range(0, len(batch), batch_size)]
    )


def occlusion_drops(
    predict: Predictor,
    crop: np.ndarray,
    class_index: int | None = None,
    *,
    patch: int | None = None,
    stride: int | None = None,
    fill: float | Sequence[float] = 0.0,
    batch_size: int = 64,
) -> tuple[np.ndarray, int, float]:
    """How much a class's probability drops when each region of a crop is greyed out.

    A ``patch`` x ``patch`` square of ``fill`` slides over the crop with
    ``stride`` (the last window touches the border); all occluded copies go
    through the model in batches of ``batch_size``. Each pixel gets the mean
    drop of the windows that covered it (Zeiler & Fergus 2014).

    Parameters
    ----------
    predict : Predictor
    crop : ndarray of float32, shape (3, S, S) or (1, 3, S, S)
        The model's normalised input.
    class_index : int, optional
        Class to explain; the most probable one on the intact crop by default.
    patch, stride : int, optional
        Default :func:`occlusion_window` (S // 4 at 5 x 5 positions); a
        patch given without a stride moves by half a patch.
    fill : float or sequence of 3 floats
        Value of the grey patch in the normalised input; 0 is the model's
        mean colour (``normalize`` maps ``mean`` to 0).
    batch_size : int

    Returns
    -------
    drops : ndarray of float32, shape (S, S)
        Base probability minus occluded probability, per pixel.
    class_index : int
    base : float
        The class's probability on the intact crop.
    """
    crop = np.asarray(crop, np.float32)
    if crop.ndim == 4 and crop.shape[0] == 1:
        crop = crop[0]
    if crop.ndim != 3 or crop.shape[0] != 3 or crop.shape[1] != crop.shape[2]:
        raise ValueError(f"crop must be a normalised (3, S, S) input, got {crop.shape}")
    size = crop.shape[1]
    default_patch, default_stride = occlusion_window(size)
    patch = default_patch if patch is None else int(patch)
    stride = (default_stride if patch == default_patch else max(1, patch // 2)) if stride is None else int(stride)
    if not 1 <= patch <= size or stride < 1:
        raise ValueError(f"need 1 <= patch <= {size} and stride >= 1, got {patch}, {stride}")
    starts = _window_starts(size, patch, stride)
    windows = [(y, x) for y in starts for x in starts]
    grey = np.asarray(fill, np.float32).reshape(-1, 1, 1)
    batch = np.repeat(crop[None], len(windows) + 1, axis=0)
    for n, (y, x) in enumerate(windows, 1):
        batch[n, :, y : y + patch, x : x + patch] = grey
    probabilities = _run_batched(predict, batch, batch_size)
    if class_index is None:
        class_index = int(np.argmax(probabilities[0]))
    if not 0 <= class_index < probabilities.shape[1]:
        raise ValueError(f"class_index {class_index} is outside 0..{probabilities.shape[1] - 1}")
    base = float(probabilities[0, class_index])
    total = np.zeros((size, size), np.float64)
    cover = np.zeros((size, size), np.float64)
    for (y, x), p in zip(windows, probabilities[1:, class_index], strict=True):
        total[y : y + patch, x : x + patch] += base - float(p)
        cover[y : y + patch, x : x + patch] += 1.0
    return (total / np.maximum(cover, 1.0)).astype(np.float32), class_index, base


def occlusion_map(
    classifier: ModelLike,
    image: np.ndarray,
    cell: Cell,
    class_index: int | None = None,
    *,
    patch: int | None = None,
    stride: int | None = None,
    smooth: bool = True,
    batch_size: int = 64,
) -> SaliencyMap:
    """Occlusion map of one cell by a classifier (onnxruntime only; no gradients).

    The cell is cut and normalised exactly as for classification; the grey
    patch is the model's mean colour. With the default window,
    5 x 5 + 1 = 26 crops go through the model in one batch (timings:
    ``bench/bench_explain.py``).

    Parameters
    ----------
    classifier : Classifier
    image : ndarray of uint8, shape (H, W, 3)
    cell : Cell
    class_index : int, optional
        Class to explain (default: the called class).
    patch, stride : int, optional
        See :func:`occlusion_drops`.
    smooth : bool
        Soften the window edges with a Gaussian of sigma stride / 2.

    Returns
    -------
    SaliencyMap
        ``kind='occlusion'``; ``grid`` (S, S): the positive drops scaled to [0, 1].
    """
    from .preprocess import crop_box, preprocess_cells

    spec = classifier.spec
    batch = preprocess_cells(image, [cell], spec.crop, spec.input_size, spec.mean, spec.std)
    box = tuple(float(v) for v in crop_box(cell, spec.crop))
    return occlusion_map_of_input(
        classifier, batch[0], box, class_index,  # type: ignore[arg-type]
        patch=patch, stride=stride, smooth=smooth, batch_size=batch_size,
    )


def occlusion_map_of_input(
    classifier: ModelLike,
    crop: np.ndarray,
    box: tuple[float, float, float, float] | None = None,
    class_index: int | None = None,
    *,
    patch: int | None = None,
    stride: int | None = None,
    smooth: bool = True,
    batch_size: int = 64,
) -> SaliencyMap:
    """:func:`occlusion_map` of an already normalised input (3, S, S); ``box`` defaults to (0, 0, S, S)."""
    spec = classifier.spec
    size = int(np.shape(crop)[-1])
    default_patch, default_stride = occlusion_window(size)
    if stride is not None:
        stride_px = int(stride)
    elif patch is None or int(patch) == default_patch:
        stride_px = default_stride
    else:
        stride_px = max(1, int(patch) // 2)
    drops, index, base = occlusion_drops(
        classifier_predictor(classifier), crop, class_index,
        patch=patch, stride=stride_px, batch_size=batch_size,
    )
    shown = drops
    if smooth:
        shown = cv2.GaussianBlur(drops, (0, 0), sigmaX=max(stride_px / 2.0, 0.5), borderType=cv2.BORDER_REFLECT)
    box = box or (0.0, 0.0, float(size), float(size))
    return SaliencyMap("occlusion", scale_cam(shown), box, index, spec.classes[index], base, drops)


def cam_map(classifier: ModelLike, image: np.ndarray, cell: Cell, class_index: int | None = None) -> SaliencyMap:
    """The CAM of one cell as a :class:`SaliencyMap` (the same map ``Classifier.predict`` gives).

    Raises
    ------
    ValueError
        The model has no features output.
    """
    from .preprocess import crop_box, preprocess_cells

    spec = classifier.spec
    batch = preprocess_cells(image, [cell], spec.crop, spec.input_size, spec.mean, spec.std)
    box = tuple(float(v) for v in crop_box(cell, spec.crop))
    return cam_map_of_input(classifier, batch[0], box, class_index)  # type: ignore[arg-type]


def cam_map_of_input(
    classifier: ModelLike,
    crop: np.ndarray,
    box: tuple[float, float, float, float] | None = None,
    class_index: int | None = None,
) -> SaliencyMap:
    """:func:`cam_map` of an already normalised input (3, S, S); ``box`` defaults to (0, 0, S, S)."""
    spec = classifier.spec
    if not spec.features_output:
        raise ValueError(f"model '{spec.name}' has no features output: no CAM")
    scores, features = classifier.run(np.asarray(crop, np.float32).reshape(1, *np.shape(crop)[-3:]))
    assert features is not None
    probabilities = _softmax(scores)[0] if spec.scores_kind == "logits" else np.asarray(scores[0])
    index = int(np.argmax(probabilities)) if class_index is None else int(class_index)
    if classifier.cam_weights is not None:
        raw = raw_class_activation_maps(features[0], classifier.cam_weights[index : index + 1])[0]
        grid = scale_cam(raw)
    else:
        raw = features[0].mean(axis=0)
        grid = feature_activation_map(features[0])
    size = float(np.shape(crop)[-1])
    box = box or (0.0, 0.0, size, size)
    return SaliencyMap("cam", grid, box, index, spec.classes[index], float(probabilities[index]), raw)


def deletion_curve(
    predict: Predictor,
    crop: np.ndarray,
    class_index: int,
    saliency: np.ndarray | None = None,
    *,
    steps: int = 20,
    fill: float | Sequence[float] = 0.0,
    seed: int = 0,
    batch_size: int = 64,
) -> DeletionCurve:
    """Grey out a crop's pixels, most salient first, and follow a class's probability.

    Petsiuk et al. 2018 (RISE): a faithful map names first the pixels whose
    loss hurts the class most, so its curve falls fast and its area is small.
    Compare with ``saliency=None`` (a random order, the baseline).

    Parameters
    ----------
    predict : Predictor
    crop : ndarray of float32, shape (3, S, S)
        Normalised model input.
    class_index : int
        Class followed (usually the called one).
    saliency : ndarray of float, shape (h, w), optional
        Any map over the crop (a CAM grid, an occlusion map); resized
        bilinearly to S x S (as :func:`cam_to_image` does). Ties are broken
        at random, so a flat map is a random order. None: a random order.
    steps : int
        The curve has ``steps + 1`` points, from nothing to everything removed.
    fill : float or sequence of 3 floats
        Normalised value of a removed pixel (0: the model's mean colour).
    seed : int
        Seeds the random order and the tie-breaks.

    Returns
    -------
    DeletionCurve
    """
    crop = np.asarray(crop, np.float32)
    if crop.ndim == 4 and crop.shape[0] == 1:
        crop = crop[0]
    if crop.ndim != 3 or crop.shape[0] != 3:
        raise ValueError(f"crop must be a normalised (3, S, S) input, got {crop.shape}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    height, width = crop.shape[1:]
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(height * width)
    if saliency is None:
        order = np.argsort(tiebreak)
    else:
        saliency = np.asarray(saliency, np.float32)
        if saliency.ndim != 2 or saliency.size == 0:
            raise ValueError(f"saliency must be a non-empty (h, w) map, got {saliency.shape}")
        if saliency.shape != (height, width):
            saliency = cv2.resize(saliency, (width, height), interpolation=cv2.INTER_LINEAR)
        order = np.lexsort((tiebreak, -np.nan_to_num(saliency).ravel()))
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * height * width).astype(np.int64)
    grey = np.broadcast_to(np.asarray(fill, np.float32).reshape(-1, 1), (3, height * width))
    batch = np.repeat(crop.reshape(1, 3, -1), steps + 1, axis=0)
    for n, count in enumerate(counts):
        removed = order[:count]
        batch[n][:, removed] = grey[:, removed]
    probabilities = _run_batched(predict, batch.reshape(-1, 3, height, width), batch_size)[:, class_index]
    auc = float(np.sum((probabilities[1:] + probabilities[:-1]) * np.diff(fractions)) / 2.0)  # trapezoid
    return DeletionCurve(fractions, probabilities.astype(np.float32), auc)

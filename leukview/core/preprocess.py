"""The one preprocessing contract shared by the app and the training package.

A model never sees pixels that did not come through :func:`crop_cell` and
:func:`normalize`: training caches the uint8 crops that :func:`crop_cell`
returns (and augments them), the app calls :func:`preprocess_cells`, which
is the same two functions in a row. The crop rule and the normalisation are
read from the model's sidecar, so nothing here is model specific.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .cells import Cell

BACKGROUNDS = ("keep", "black")


@dataclass(frozen=True)
class CropRule:
    """How a cell is cut out of its image.

    Attributes
    ----------
    scale : float
        Side of the square crop as a multiple of the cell's equivalent
        diameter, so a crop holds the cell and a ring of context at any
        magnification.
    min_side : int
        Smallest crop side in image pixels (platelets and debris would
        otherwise be blown up to the input size).
    background : {'keep', 'black'}
        ``keep`` leaves the surrounding smear; ``black`` paints everything
        outside the cell contour black, as in C-NMC's segmented cells.
    """

    scale: float = 1.5
    min_side: int = 16
    background: str = "keep"

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"crop scale must be positive, got {self.scale}")
        if not self.min_side >= 1:
            raise ValueError(f"crop min_side must be at least 1 pixel, got {self.min_side}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"crop background must be one of {BACKGROUNDS}, got {self.background!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CropRule:
        kinds = {"scale": float, "min_side": int, "background": str}
        return cls(**{k: kinds[k](data[k]) for k in kinds if k in data})


def crop_box(cell: Cell, rule: CropRule) -> tuple[int, int, int, int]:
    """Square crop window of a cell in image coordinates.

    Parameters
    ----------
    cell : Cell
        Its centroid and equivalent diameter set the window.
    rule : CropRule

    Returns
    -------
    box : tuple of int
        (x0, y0, x1, y1), half-open; may extend past the image border.
    """
    side = max(int(round(cell.diameter * rule.scale)), rule.min_side)
    cx, cy = cell.centroid
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    return x0, y0, x0 + side, y0 + side


def crop_cell(image: np.ndarray, cell: Cell, rule: CropRule, size: int) -> np.ndarray:
    """Cut one cell out of an image as the model's square input crop.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB image the cell was found in.
    cell : Cell
        The cell; its contour is used when ``rule.background == 'black'``
        (its bounding box when the contour is empty).
    rule : CropRule
    size : int
        Side of the returned crop (the model's input size).

    Returns
    -------
    crop : ndarray of uint8, shape (size, size, 3)
        The window of :func:`crop_box`, mirrored at the image border
        (so stain statistics stay those of the smear), resized with area
        interpolation when shrinking and bilinear when enlarging.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    x0, y0, x1, y1 = crop_box(cell, rule)
    # visible part of the window; clipped so a negative bound never indexes from the end
    vx0, vx1 = min(max(x0, 0), width), min(max(x1, 0), width)
    vy0, vy1 = min(max(y0, 0), height), min(max(y1, 0), height)
    region = image[vy0:vy1, vx0:vx1]
    if rule.background == "black":
        source = np.zeros_like(region)
        mask = np.zeros(source.shape[:2], np.uint8)
        contour = np.asarray(cell.contour, np.int32).reshape(-1, 2)
        if len(contour) == 0:  # a cell known only by its box (e.g. an annotation)
            bx0, by0, bx1, by1 = cell.bbox
            contour = np.array([[bx0, by0], [bx1 - 1, by0], [bx1 - 1, by1 - 1], [bx0, by1 - 1]], np.int32)
        contour = contour.reshape(-1, 1, 2) - np.array([vx0, vy0], np.int32)
        if mask.size:
            cv2.drawContours(mask, [contour], -1, 255, thickness=cv2.FILLED)
        source[mask > 0] = region[mask > 0]
        border = cv2.BORDER_CONSTANT
    else:
        source = region
        border = cv2.BORDER_REFLECT_101
    pads = (vy0 - y0, y1 - vy1, vx0 - x0, x1 - vx1)
    if source.size == 0:  # the window lies wholly outside the image
        source = np.zeros((1, 1, 3), np.uint8)
        pads = (0, y1 - y0 - 1, 0, x1 - x0 - 1)
        border = cv2.BORDER_CONSTANT
    if any(pads):
        # reflection needs a source larger than the pad; fall back to replication
        if border == cv2.BORDER_REFLECT_101 and (
            max(pads[:2]) >= source.shape[0] or max(pads[2:]) >= source.shape[1]
        ):
            border = cv2.BORDER_REPLICATE
        source = cv2.copyMakeBorder(source, *pads, border, value=(0, 0, 0))
    side = source.shape[0]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(source, (size, size), interpolation=interpolation)


def normalize(crops: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Scale uint8 RGB crops to the model's normalised NCHW float input.

    Parameters
    ----------
    crops : ndarray of uint8, shape (N, S, S, 3) or (S, S, 3)
    mean, std : sequence of 3 floats
        Per channel, on the [0, 1] scale (timm's convention).

    Returns
    -------
    batch : ndarray of float32, shape (N, 3, S, S)
        ``(crops / 255 - mean) / std``, channels first.
    """
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    std_arr = np.asarray(std, np.float32)
    # one fused multiply-add per channel, written straight into NCHW: 10x faster than
    # transposing, converting and broadcasting the whole batch in three passes
    scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
    offset = (-np.asarray(mean, np.float32) / std_arr).astype(np.float32)
    batch = np.empty((crops.shape[0], 3, crops.shape[1], crops.shape[2]), np.float32)
    for channel in range(3):
        np.multiply(crops[..., channel], scale[channel], out=batch[:, channel], dtype=np.float32)
        batch[:, channel] += offset[channel]
    return batch


def preprocess_cells(
    image: np.ndarray,
    cells: Sequence[Cell],
    rule: CropRule,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """Model input for a list of cells: :func:`crop_cell` then :func:`normalize`.

    Returns
    -------
    batch : ndarray of float32, shape (len(cells), 3, size, size)
    """
    if not cells:
        return np.zeros((0, 3, size, size), np.float32)
    crops = np.stack([crop_cell(image, cell, rule, size) for cell in cells])
    return normalize(crops, mean, std)

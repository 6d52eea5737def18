"""The context of an edit: the image's pixels, its red-cell diameter, its stain levels, its models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import LeukViewError
from ..measure import fill_holes
from ..segment import SegmentationParams, estimate_rbc_diameter
from ..segment._image import _as_rgb, _resize
from ..segment._morphology import _disk, _fill_small_holes
from ..segment._stain import _background, _channels

if TYPE_CHECKING:
    from ..models import Classifier
    from ..runs import ModelRun

RegionReader = Callable[[int, int, int, int], np.ndarray]
"""``read(x, y, w, h)``: the RGB uint8 pixels (h, w, 3) of a rectangle inside the image."""


class EditError(LeukViewError):
    """A correction that cannot be made as asked; nothing was changed."""


@dataclass(frozen=True)
class StainLevels:
    """The field's glass colour and stain cuts, as the pipeline found them.

    Attributes
    ----------
    background : (r, g, b)
        The glass's colour (median of the per-tile background).
    cell_threshold : float
        Total optical density above which a pixel is a cell.
    nucleus_threshold : float
        Blue minus green above the glass's (0-255) from which a pixel is nuclear stain.
    nuclear_offset : float
        The glass's own blue minus green.
    black : bool
        Cells cut out on black (C-NMC): every lit pixel is a cell.
    """

    background: tuple[float, float, float]
    cell_threshold: float
    nucleus_threshold: float
    nuclear_offset: float
    black: bool = False

    @classmethod
    def measure(cls, image: np.ndarray, rbc_diameter: float, params: SegmentationParams | None = None) -> StainLevels:
        """The levels of a field, computed as :func:`~leukview.core.segment.segment` computes them.

        Parameters
        ----------
        image : ndarray of uint8, shape (H, W, 3)
            The analysed field.
        rbc_diameter : float
            Red-cell diameter in image pixels.
        params : SegmentationParams, optional
        """
        params = params or SegmentationParams()
        rgb = _as_rgb(image)
        scale = min(1.0, params.work_rbc_diameter / max(rbc_diameter, 1.0))
        small = _resize(rgb, scale)
        ds = rbc_diameter * scale
        ch = _channels(small, params, tile=3.0 * ds)
        black = bool(ch.black.any())
        if black:
            background = (255.0, 255.0, 255.0)
        else:
            f: np.ndarray = small.astype(np.float32)
            if params.smoothing > 0:
                f = cv2.GaussianBlur(f, (0, 0), params.smoothing)
            bg = _background(f, 3.0 * ds).reshape(-1, 3)
            background = tuple(float(v) for v in np.median(bg, axis=0))  # type: ignore[assignment]
        return cls(background, float(ch.cell_threshold), float(ch.nucleus_threshold), float(ch.nuclear_offset), black)


@dataclass
class EditContext:
    """What an edit needs of the image: its pixels, scale, stain levels and models.

    Attributes
    ----------
    read : callable(x, y, w, h) -> ndarray
        The image's pixels (a whole array, or a large image's tiles).
    width, height : int
        The image's size.
    rbc_diameter : float
        Red-cell diameter in image pixels (every size of an edit is a multiple of it).
    levels : StainLevels
    params : SegmentationParams
        Those the analysis used.
    classifiers : sequence of Classifier
        Loaded models; a model of the analysis re-classifies new cells when
        one of the same name and version is here.
    """

    read: RegionReader
    width: int
    height: int
    rbc_diameter: float
    levels: StainLevels
    params: SegmentationParams = field(default_factory=SegmentationParams)
    classifiers: Sequence[Classifier] = ()

    @classmethod
    def from_image(
        cls,
        image: np.ndarray,
        *,
        rbc_diameter: float | None = None,
        params: SegmentationParams | None = None,
        classifiers: Sequence[Classifier] = (),
        field: tuple[int, int, int, int] | None = None,
    ) -> EditContext:
        """The context of an image held in memory.

        Parameters
        ----------
        image : ndarray of uint8, shape (H, W, 3)
        rbc_diameter : float, optional
            The analysis's (``Analysis.rbc_diameter_px``); estimated from the field when None.
        params : SegmentationParams, optional
        classifiers : sequence of Classifier
        field : (x, y, w, h), optional
            The analysed field, whose stain levels are taken (the whole image when None).
        """
        rgb = _as_rgb(image)
        height, width = rgb.shape[:2]

        def read(x: int, y: int, w: int, h: int) -> np.ndarray:
            return rgb[y : y + h, x : x + w]

        return cls.from_reader(
            read, (width, height), rbc_diameter=rbc_diameter, params=params, classifiers=classifiers, field=field
        )

    @classmethod
    def from_reader(
        cls,
        read: RegionReader,
        size: tuple[int, int],
        *,
        rbc_diameter: float | None = None,
        params: SegmentationParams | None = None,
        classifiers: Sequence[Classifier] = (),
        field: tuple[int, int, int, int] | None = None,
    ) -> EditContext:
        """The context of an image read by regions (a large image's tiles); see :meth:`from_image`.

        ``size`` is (width, height); the stain levels are measured on ``field``
        (the whole image when None), read once.
        """
        params = params or SegmentationParams()
        width, height = int(size[0]), int(size[1])
        x, y, w, h = field if field is not None else (0, 0, width, height)
        sample = _as_rgb(np.ascontiguousarray(read(int(x), int(y), int(w), int(h))))
        if not rbc_diameter or rbc_diameter <= 0:
            rbc_diameter = params.rbc_diameter or estimate_rbc_diameter(sample, params)
        levels = StainLevels.measure(sample, float(rbc_diameter), params)
        return cls(read, width, height, float(rbc_diameter), levels, params, tuple(classifiers))

    # -- sizes --------------------------------------------------------------

    @property
    def rbc_area(self) -> float:
        return float(np.pi * self.rbc_diameter**2 / 4.0)

    @property
    def smoothing(self) -> float:
        """The Gaussian sigma of the pipeline's full-resolution redraw (image pixels)."""
        if self.params.smoothing <= 0:
            return 0.0
        scale = min(1.0, self.params.work_rbc_diameter / self.rbc_diameter)
        return max(self.params.smoothing, 0.5 / scale)

    # -- pixels -------------------------------------------------------------

    def window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, int, int]:
        """The pixels of a box (clipped to the image) and its top-left corner.

        Raises
        ------
        EditError
            When the box lies outside the image.
        """
        ix0, iy0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        ix1, iy1 = min(int(np.ceil(x1)), self.width), min(int(np.ceil(y1)), self.height)
        if ix1 - ix0 < 2 or iy1 - iy0 < 2:
            raise EditError("that is outside the image")
        pixels = _as_rgb(np.ascontiguousarray(self.read(ix0, iy0, ix1 - ix0, iy1 - iy0)))
        return pixels, ix0, iy0

    def _smoothed(self, pixels: np.ndarray) -> np.ndarray:
        f: np.ndarray = pixels.astype(np.float32)
        sigma = self.smoothing
        return cv2.GaussianBlur(f, (0, 0), sigma) if sigma > 0 else f

    def _lit(self, f: np.ndarray) -> np.ndarray:
        if not self.levels.black:
            return np.ones(f.shape[:2], bool)
        return f.max(axis=2) >= self.params.black_background_level

    def nucleus(self, pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The pipeline's nucleus of a cell: nuclear stain above the field's cut, in ``mask``, holes filled.

        Parameters
        ----------
        pixels : ndarray of uint8, shape (h, w, 3)
        mask : ndarray of bool, shape (h, w)

        Returns
        -------
        ndarray of bool, shape (h, w)
        """
        f = self._smoothed(pixels)
        nm = ((f[..., 2] - f[..., 1]) - self.levels.nuclear_offset > self.levels.nucleus_threshold) & mask
        nm &= self._lit(f)
        radius = 0.03 * self.rbc_diameter
        if radius >= 1.0:
            nm = cv2.morphologyEx(nm.astype(np.uint8), cv2.MORPH_OPEN, _disk(radius)) > 0
        return fill_holes(nm) & mask

    def stain_masks(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells (total stain over the glass) and nuclear stain of a window, at full resolution.

        Returns
        -------
        cells, nuclear : ndarray of bool, shape (h, w)
        """
        f = self._smoothed(pixels)
        lit = self._lit(f)
        bg = np.asarray(self.levels.background, np.float32)
        density = np.log(np.maximum(bg, 1.0) / np.maximum(f, 1.0)).sum(axis=2)
        cells = lit if self.levels.black else (density > self.levels.cell_threshold) & lit
        cells = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, _disk(1))
        cells = cv2.morphologyEx(cells, cv2.MORPH_CLOSE, _disk(1)) > 0
        cells = _fill_small_holes(cells, 0.5 * self.rbc_area)
        nuc = ((f[..., 2] - f[..., 1]) - self.levels.nuclear_offset > self.levels.nucleus_threshold) & lit
        nuc = cv2.morphologyEx(nuc.astype(np.uint8), cv2.MORPH_OPEN, _disk(max(1.0, 0.03 * self.rbc_diameter))) > 0
        nuc = _fill_small_holes(nuc, 0.1 * self.rbc_area)
        return cells, nuc

    def classifier(self, run: ModelRun) -> Classifier | None:
        """The loaded classifier of a model run (same name and version), or None."""
        for classifier in self.classifiers:
            if classifier.spec.name == run.name and str(classifier.spec.version) == str(run.version):
                return classifier
        return None

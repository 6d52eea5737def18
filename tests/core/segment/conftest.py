"""Fixtures for the segmentation tests: the bundled fields, drawn smears, a consistency check.

The four bundled fields (resources/samples, BCCD, MIT) come with what BCCD's
annotation says about them (white-cell box and type, platelet boxes), so the
tests need nothing from ../shared/data. Drawn smears have cells of known size
and position: red discs with a pale centre, white cells with a lilac cytoplasm
and a purple nucleus, purple platelet specks, on a cream glass.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from leukview.core.cells import CELL_KINDS
from leukview.core.segment import Segmentation

SAMPLES = Path(__file__).resolve().parents[3] / "resources" / "samples"

Box = tuple[int, int, int, int]  # x0, y0, x1, y1


@dataclass(frozen=True)
class Sample:
    """A bundled field and its BCCD annotation (Annotations/<name>.xml, wbc_types.csv)."""

    name: str
    rgb: np.ndarray  # uint8, shape (480, 640, 3)
    wbc_box: Box
    wbc_type: str
    platelet_boxes: tuple[Box, ...]


#: From BCCD's annotation: one white cell per field, its type, and the boxed platelets.
ANNOTATION = {
    "BloodImage_00056": ((274, 236, 410, 355), "eosinophil", ()),
    "BloodImage_00214": ((365, 64, 564, 232), "neutrophil", ((253, 47, 294, 94),)),
    "BloodImage_00262": ((170, 268, 454, 480), "monocyte", ()),
    "BloodImage_00305": ((190, 244, 309, 370), "lymphocyte", ((1, 28, 26, 70),)),
}


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def read_rgb() -> Callable[[Path], np.ndarray]:
    """``read_rgb(path)``: an image file as RGB uint8, shape (H, W, 3)."""
    return _read_rgb


@pytest.fixture(scope="session")
def samples() -> dict[str, Sample]:
    """The four bundled fields by name (without extension)."""
    out = {}
    for name, (box, kind, platelets) in ANNOTATION.items():
        rgb = _read_rgb(SAMPLES / f"{name}.jpg")
        rgb.setflags(write=False)  # shared by the session: a test must not draw on it
        out[name] = Sample(name, rgb, box, kind, platelets)
    return out


@pytest.fixture(params=sorted(ANNOTATION))
def sample(request: pytest.FixtureRequest, samples: dict[str, Sample]) -> Sample:
    """Each bundled field in turn (a test taking it runs once per field)."""
    return samples[request.param]


def _check_consistent(seg: Segmentation, shape: tuple[int, int]) -> None:
    """Ids 1..n, labels and cells agree, every measurement is a finite float."""
    assert seg.labels.shape == shape and seg.labels.dtype == np.int32
    assert seg.nucleus_mask.shape == shape and seg.nucleus_mask.dtype == bool
    assert [c.id for c in seg.cells] == list(range(1, len(seg.cells) + 1))
    present = set(np.unique(seg.labels)) - {0}
    assert present == {c.id for c in seg.cells}
    for cell in seg.cells:
        assert cell.kind in CELL_KINDS
        x0, y0, x1, y1 = cell.bbox
        assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]
        assert cell.contour.ndim == 2 and cell.contour.shape[1] == 2
        assert cell.contour.dtype == np.int32
        cx, cy = cell.centroid
        assert x0 - 1 <= cx <= x1 and y0 - 1 <= cy <= y1
        for key in (
            "area", "perimeter", "circularity", "equivalent_diameter", "nucleus_area",
            "nc_ratio", "lobe_count",
        ):
            assert key in cell.measurements
        assert all(np.isfinite(v) and type(v) is float for v in cell.measurements.values())
        if cell.kind == "wbc":
            assert cell.nucleus_contour is not None and len(cell.nucleus_contour) >= 3
            assert cell.measurements["nucleus_area"] > 0
            for key in ("nucleus_mean_rgb_r", "nucleus_mean_rgb_g", "nucleus_mean_rgb_b"):
                assert key in cell.measurements
    # Nuclei lie inside white cells.
    wbc_ids = [c.id for c in seg.cells if c.kind == "wbc"]
    assert not (seg.nucleus_mask & ~np.isin(seg.labels, wbc_ids)).any()
    json.dumps([c.to_dict() for c in seg.cells])


@pytest.fixture(scope="session")
def consistent() -> Callable[[Segmentation, tuple[int, int]], None]:
    """``consistent(seg, (H, W))`` asserts that a Segmentation is well formed."""
    return _check_consistent


Disc = tuple[float, float, float]  # centre x, centre y, diameter (px)


class Smear:
    """Draws synthetic smear fields whose cells have known size and position.

    Colours are RGB, roughly those of a Giemsa-stained BCCD field.
    """

    GLASS = (232, 226, 218)
    RED = (205, 120, 130)
    PALLOR = (222, 170, 172)
    CYTOPLASM = (200, 180, 215)
    NUCLEUS = (95, 45, 150)
    PLATELET = (150, 100, 175)

    @staticmethod
    def disc(img: np.ndarray, x: float, y: float, diameter: float, colour: Sequence[int]) -> None:
        """Draw a filled anti-aliased disc on ``img`` (in place)."""
        cv2.circle(
            img, (int(round(x)), int(round(y))), int(round(diameter / 2)), tuple(colour), -1,
            lineType=cv2.LINE_AA,
        )

    def field(
        self,
        shape: tuple[int, int],
        red: Sequence[Disc] = (),
        white: Sequence[tuple[float, float, float, Sequence[Disc]]] = (),
        platelets: Sequence[Disc] = (),
        *,
        seed: int = 0,
    ) -> np.ndarray:
        """An RGB uint8 field of ``shape`` (H, W).

        ``red`` and ``platelets`` are discs; ``white`` are (x, y, cell diameter,
        nucleus discs with centres relative to the cell's). Drawn in that order
        (a white cell covers the red cells it overlaps), blurred a little and
        given a little camera noise.
        """
        h, w = shape
        img = np.empty((h, w, 3), np.uint8)
        img[:] = self.GLASS
        for x, y, d in red:
            self.disc(img, x, y, d, self.RED)
            self.disc(img, x, y, 0.4 * d, self.PALLOR)
        for x, y, d, nuclei in white:
            self.disc(img, x, y, d, self.CYTOPLASM)
            for nx, ny, nd in nuclei:
                self.disc(img, x + nx, y + ny, nd, self.NUCLEUS)
        for x, y, d in platelets:
            self.disc(img, x, y, d, self.PLATELET)
        img = cv2.GaussianBlur(img, (0, 0), 1.0)
        noise = np.random.default_rng(seed).normal(0.0, 2.0, img.shape)
        return np.clip(img + noise, 0, 255).astype(np.uint8)

    @staticmethod
    def grid(d: float, shape: tuple[int, int], gap: float = 1.5) -> list[Disc]:
        """Red cells of diameter ``d`` on a square grid, centres ``gap`` x d apart."""
        h, w = shape
        return [
            (float(x), float(y), d)
            for y in np.arange(0.8 * d, h - 0.6 * d, gap * d)
            for x in np.arange(0.8 * d, w - 0.6 * d, gap * d)
        ]

    @staticmethod
    def away(discs: Sequence[Disc], x: float, y: float, radius: float) -> list[Disc]:
        """The discs whose centres are farther than ``radius`` from (x, y)."""
        return [c for c in discs if np.hypot(c[0] - x, c[1] - y) > radius]

    @staticmethod
    def disc_mask(shape: tuple[int, int], x: float, y: float, diameter: float) -> np.ndarray:
        """Bool mask of shape ``shape`` of a disc (no anti-aliasing)."""
        m = np.zeros(shape, np.uint8)
        cv2.circle(m, (int(round(x)), int(round(y))), int(round(diameter / 2)), 1, -1)
        return m > 0


@pytest.fixture(scope="session")
def smear() -> Smear:
    """The synthetic smear painter (see :class:`Smear`)."""
    return Smear()

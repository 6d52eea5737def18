"""The cell record: one object per detected cell, as in QuPath's PathObject.

A cell carries everything the app knows about it: where it is (contour,
bounding box, centroid, all in pixel coordinates of the original image),
what kind of object it is (``wbc``, ``rbc``, ``platelet``), its measurements,
the predictions of each model and the pathologist's review state. Which class
the cell *is* (its call) is not stored here: :func:`leukview.core.calls.call_cell`
decides it from the predictions and the review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CELL_KINDS = ("wbc", "rbc", "platelet")


@dataclass
class Prediction:
    """One model's output for one cell.

    Attributes
    ----------
    label : str
        Class with the highest probability.
    probabilities : dict of str to float
        Probability per class, summing to 1.
    cam : ndarray of float32, shape (h, w), optional
        Class-activation map of ``label`` on the model's feature grid,
        scaled to [0, 1]. It covers the model's input crop, whose square in
        image coordinates is ``cam_box`` (x0, y0, x1, y1). Not serialised.
    atypicality : float, optional
        The model's open-set score of the cell as a multiple of its threshold
        (sidecar ``openset``): above 1 the cell is unlike the model's training
        cells and is flagged ``atypical``. None when the model has no open-set score.
    """

    label: str
    probabilities: dict[str, float]
    cam: np.ndarray | None = None
    cam_box: tuple[float, float, float, float] | None = None
    atypicality: float | None = None

    @property
    def confidence(self) -> float:
        return float(self.probabilities.get(self.label, 0.0))

    @property
    def atypical(self) -> bool:
        """Whether the open-set score is over the model's threshold."""
        return self.atypicality is not None and self.atypicality > 1.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
        }
        if self.atypicality is not None:
            data["atypicality"] = round(float(self.atypicality), 4)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        score = data.get("atypicality")
        return cls(
            label=str(data["label"]),
            probabilities={k: float(v) for k, v in data["probabilities"].items()},
            atypicality=None if score is None or isinstance(score, bool) else float(score),
        )


@dataclass
class ReviewState:
    """What the reviewer decided about a cell.

    ``label`` is None until a person confirms or corrects the cell; the
    history of changes lives in the session's audit log, not here.
    """

    label: str | None = None
    reviewer: str | None = None
    time: str | None = None

    @property
    def reviewed(self) -> bool:
        return self.label is not None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "reviewer": self.reviewer, "time": self.time}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ReviewState:
        data = data or {}
        return cls(label=data.get("label"), reviewer=data.get("reviewer"), time=data.get("time"))


@dataclass
class Cell:
    """One detected cell.

    Attributes
    ----------
    id : int
        Unique within an image, starting at 1.
    kind : {'wbc', 'rbc', 'platelet'}
        Object class from segmentation (erythroblasts are ``wbc``: nucleated).
    contour : ndarray of int32, shape (N, 2)
        Outer boundary as (x, y) points in image pixels.
    bbox : tuple of int
        (x0, y0, x1, y1), half-open, in image pixels.
    centroid : tuple of float
        (x, y) in image pixels.
    nucleus_contour : ndarray of int32, shape (M, 2), optional
        Boundary of the nucleus (largest part) for nucleated cells.
    measurements : dict of str to float
        In pixels only (see :func:`leukview.core.measure.measure_cell`); µm
        figures are derived from the image's
        :class:`~leukview.core.calibration.Calibration` when shown or written.
    predictions : dict of str to Prediction
        Keyed by model name.
    review : ReviewState

    Notes
    -----
    A cell has no class of its own: its call (the reviewer's label, else a
    model's) is decided in one place, :func:`leukview.core.calls.call_cell`.
    """

    id: int
    kind: str
    contour: np.ndarray
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    nucleus_contour: np.ndarray | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, Prediction] = field(default_factory=dict)
    review: ReviewState = field(default_factory=ReviewState)

    @property
    def diameter(self) -> float:
        """Equivalent diameter in pixels (from the area when measured, else the bbox)."""
        area = self.measurements.get("area")
        if area:
            return float(np.sqrt(4.0 * area / np.pi))
        x0, y0, x1, y1 = self.bbox
        return float(max(x1 - x0, y1 - y0))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": int(self.id),
            "kind": self.kind,
            "bbox": [int(v) for v in self.bbox],
            "centroid": [round(float(v), 2) for v in self.centroid],
            "contour": np.asarray(self.contour, dtype=int).tolist(),
            "measurements": {k: _round(v) for k, v in self.measurements.items()},
            "predictions": {name: p.to_dict() for name, p in self.predictions.items()},
            "review": self.review.to_dict(),
        }
        if self.nucleus_contour is not None:
            data["nucleus_contour"] = np.asarray(self.nucleus_contour, dtype=int).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        nucleus = data.get("nucleus_contour")
        return cls(
            id=int(data["id"]),
            kind=str(data["kind"]),
            contour=np.asarray(data.get("contour", []), dtype=np.int32).reshape(-1, 2),
            bbox=tuple(int(v) for v in data["bbox"]),  # type: ignore[arg-type]
            centroid=tuple(float(v) for v in data["centroid"]),  # type: ignore[arg-type]
            nucleus_contour=None if nucleus is None else np.asarray(nucleus, dtype=np.int32).reshape(-1, 2),
            measurements={k: float(v) for k, v in data.get("measurements", {}).items() if v is not None},
            predictions={k: Prediction.from_dict(v) for k, v in data.get("predictions", {}).items()},
            review=ReviewState.from_dict(data.get("review")),
        )


def _round(value: float) -> float | int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return round(float(value), 4)


def offset_cells(cells: Sequence[Cell], dx: int, dy: int, *, keep_maps: bool = True) -> None:
    """Move cells found in a field or tile by (dx, dy) into the whole image's coordinates (in place).

    ``keep_maps`` moves each prediction's class-activation box with the cell;
    False drops the maps instead (a slide's tiles keep no maps, to bound memory).
    """
    if not dx and not dy and keep_maps:
        return
    shift = np.array([dx, dy], np.int32)
    for cell in cells:
        cell.contour = np.asarray(cell.contour, np.int32) + shift
        if cell.nucleus_contour is not None:
            cell.nucleus_contour = np.asarray(cell.nucleus_contour, np.int32) + shift
        x0, y0, x1, y1 = cell.bbox
        cell.bbox = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
        cell.centroid = (cell.centroid[0] + dx, cell.centroid[1] + dy)
        for pred in cell.predictions.values():
            if not keep_maps:
                pred.cam, pred.cam_box = None, None
            elif pred.cam_box is not None:
                bx0, by0, bx1, by1 = pred.cam_box
                pred.cam_box = (bx0 + dx, by0 + dy, bx1 + dx, by1 + dy)

"""One image in, every cell segmented, measured, classified and explained.

The CLI and the GUI both call :func:`analyze_image`; neither has a pipeline
of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration import Calibration
from .cells import CELL_KINDS, Cell
from .errors import LeukViewError
from .progress import AnalysisCancelled, ProgressCallback

if TYPE_CHECKING:  # imported lazily: onnxruntime is slow to import
    from .models import Classifier
    from .segment import SegmentationParams

RESULT_SCHEMA_VERSION = 1

@dataclass
class ModelRun:
    """Which model ran on an image, and where."""

    name: str
    version: str
    provider: str
    classes: list[str] = field(default_factory=list)
    positive_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "provider": self.provider,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRun:
        return cls(
            name=data["name"],
            version=str(data.get("version", "")),
            provider=str(data.get("provider", "")),
            classes=list(data.get("classes", [])),
            positive_class=data.get("positive_class"),
        )


@dataclass
class Analysis:
    """The result of analysing one image."""

    width: int
    height: int
    cells: list[Cell]
    models: list[ModelRun] = field(default_factory=list)
    image: str | None = None
    calibration: Calibration = field(default_factory=Calibration.unknown)
    rbc_diameter_px: float | None = None

    @property
    def pixel_size_um(self) -> float | None:
        """µm per pixel of :attr:`calibration` (read-only: change the calibration instead)."""
        return self.calibration.pixel_size_um

    @pixel_size_um.setter
    def pixel_size_um(self, value: float | None) -> None:  # deprecated: set ``calibration``
        self.calibration = Calibration.from_user(value)

    def counts_by_kind(self) -> dict[str, int]:
        found = Counter(c.kind for c in self.cells)
        return {kind: found.get(kind, 0) for kind in CELL_KINDS}

    def counts_by_class(self, model: str) -> dict[str, int]:
        """White cells per class of one model, reviewer corrections included."""
        run = next((m for m in self.models if m.name == model), None)
        classes = run.classes if run else []
        found = Counter(c.label(model) for c in self.cells if c.kind == "wbc" and model in c.predictions)
        return {name: found.get(name, 0) for name in classes}

    def positive_fraction(self, model: str) -> float | None:
        """Fraction of classified white cells in the model's positive class (blasts)."""
        run = next((m for m in self.models if m.name == model), None)
        if run is None or run.positive_class is None:
            return None
        counts = self.counts_by_class(model)
        total = sum(counts.values())
        return counts.get(run.positive_class, 0) / total if total else None

    def to_dict(self) -> dict[str, Any]:
        """The documented ``cells.json`` document (schema_version 1)."""
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "pixel_size_um": self.pixel_size_um,
            "pixel_size_source": self.calibration.source,
            "rbc_diameter_px": None if self.rbc_diameter_px is None else round(float(self.rbc_diameter_px), 2),
            "models": [m.to_dict() for m in self.models],
            "cells": [c.to_dict() for c in self.cells],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        if data.get("schema_version") != RESULT_SCHEMA_VERSION:
            raise LeukViewError(f"unsupported result schema_version {data.get('schema_version')!r}")
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            cells=[Cell.from_dict(c) for c in data["cells"]],
            models=[ModelRun.from_dict(m) for m in data.get("models", [])],
            image=data.get("image"),
            calibration=Calibration.from_dict(
                {"pixel_size_um": data.get("pixel_size_um"), "source": data.get("pixel_size_source")}
            ),
            rbc_diameter_px=data.get("rbc_diameter_px"),
        )


def analyze_image(
    image: np.ndarray,
    classifiers: Sequence[Classifier] = (),
    params: SegmentationParams | None = None,
    *,
    pixel_size_um: float | None = None,
    calibration: Calibration | None = None,
    image_name: str | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Analysis:
    """Segment, measure, classify and explain every cell of an image.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB field.
    classifiers : sequence of Classifier
        Models to run; each runs on the cell kinds its sidecar names.
    params : SegmentationParams, optional
        Defaults when None.
    pixel_size_um : float, optional
        Adds areas in µm² to the measurements when known.
    progress : callable(fraction, message), optional
    should_cancel : callable() -> bool, optional
        Polled between stages; a True answer raises :class:`AnalysisCancelled`.

    Returns
    -------
    Analysis
    """
    from .segment import segment

    def report(fraction: float, message: str) -> None:
        if should_cancel is not None and should_cancel():
            raise AnalysisCancelled()
        if progress is not None:
            progress(fraction, message)

    report(0.0, "segmenting")
    if calibration is not None:
        pixel_size_um = calibration.pixel_size_um
    result = segment(image, params, pixel_size_um=pixel_size_um)
    cells = result.cells
    runs: list[ModelRun] = []
    for index, classifier in enumerate(classifiers):
        spec = classifier.spec
        report(0.3 + 0.7 * index / max(len(classifiers), 1), f"classifying with {spec.name}")
        targets = [c for c in cells if c.kind in spec.applies_to]
        predictions = classifier.predict(image, targets, should_cancel=should_cancel)
        for cell, prediction in zip(targets, predictions, strict=True):
            cell.predictions[spec.name] = prediction
        runs.append(
            ModelRun(spec.name, spec.version, classifier.provider, list(spec.classes), spec.positive_class)
        )
    report(1.0, "done")
    height, width = image.shape[:2]
    return Analysis(
        width=width,
        height=height,
        cells=cells,
        models=runs,
        image=image_name,
        calibration=calibration if calibration is not None else Calibration.from_user(pixel_size_um),
        rbc_diameter_px=result.rbc_diameter,
    )

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
from .calls import DEFAULT_CONFIDENCE_THRESHOLD, call_cell
from .cells import CELL_KINDS, Cell
from .domain import DEFAULT_EXPECTED_FRACTION, DomainCheck, domain_check
from .errors import LeukViewError
from .progress import AnalysisCancelled, ProgressCallback, scaled
from .runs import ModelRun

if TYPE_CHECKING:  # imported lazily: onnxruntime is slow to import
    from .models import Classifier
    from .segment import SegmentationParams

RESULT_SCHEMA_VERSION = 2
#: The part of an analysis's progress that segmentation takes when models run after it.
SEGMENTATION_SHARE = 0.35
#: cells.json versions :meth:`Analysis.from_dict` reads (1: before calls, flags and calibration source).
READABLE_SCHEMA_VERSIONS = (1, 2)


def is_physical_key(key: str) -> bool:
    """Whether a measurement key is a µm figure (``area_um2``, ``perimeter_um``, ...).

    Such figures are derived from the calibration when written and never kept
    on a cell, so a document's stored values are dropped on reading.
    """
    return key.endswith(("_um", "_um2"))


@dataclass
class Analysis:
    """The result of analysing one image.

    Attributes
    ----------
    width, height : int
        Size of the analysed image in pixels.
    cells : list of Cell
        Measurements in pixels only; see :attr:`calibration` for µm.
    models : list of ModelRun
        In the order they ran (the call rule depends on it).
    image : str, optional
        The image's path as given.
    calibration : Calibration
        The pixel size and its source; every µm figure is derived from it.
    rbc_diameter_px : float, optional
        Median red-cell diameter found by segmentation.
    confidence_threshold : float
        The threshold the cells' ``low-confidence`` flags in cells.json are computed with.
    domain : DomainCheck, optional
        How unlike the training data the image's white cells are
        (:mod:`leukview.core.domain`); None when no model with an open-set
        score ran (and for files written before it existed).
    """

    width: int
    height: int
    cells: list[Cell]
    models: list[ModelRun] = field(default_factory=list)
    image: str | None = None
    calibration: Calibration = field(default_factory=Calibration.unknown)
    rbc_diameter_px: float | None = None
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    domain: DomainCheck | None = None

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

    def to_dict(self, threshold: float | None = None) -> dict[str, Any]:
        """The documented ``cells.json`` document (schema_version 2).

        Each cell gains its ``call`` and ``flags`` (from
        :func:`~leukview.core.calls.call_cell` with ``threshold``, else
        :attr:`confidence_threshold`) and the µm measurements derived from
        :attr:`calibration`.
        """
        threshold = self.confidence_threshold if threshold is None else float(threshold)
        cells = []
        for cell in self.cells:
            data = cell.to_dict()
            derived = self.calibration.derived_measurements(cell.measurements)
            data["measurements"].update({k: round(v, 4) for k, v in derived.items()})
            call = call_cell(cell, self.models, threshold)
            data["call"] = call.to_dict()
            data["flags"] = list(call.flags)
            cells.append(data)
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "pixel_size_um": self.calibration.pixel_size_um,
            "pixel_size_source": self.calibration.source,
            "confidence_threshold": threshold,
            "rbc_diameter_px": None if self.rbc_diameter_px is None else round(float(self.rbc_diameter_px), 2),
            "models": [m.to_dict() for m in self.models],
            "domain": None if self.domain is None else self.domain.to_dict(),
            "cells": cells,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        """Read a cells.json document of schema_version 1 or 2.

        Calls and flags are not read back: they follow from the predictions
        and reviews (:func:`~leukview.core.calls.call_cell`). Stored µm
        measurements are dropped (they derive from the calibration). A
        version 1 document has no calibration source: a pixel size in it is
        taken as the user's.

        Raises
        ------
        LeukViewError
            A version this LeukView does not read, or an unusable pixel size or threshold.
        """
        version = data.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > RESULT_SCHEMA_VERSION:
            raise LeukViewError(
                f"result schema_version {version} is newer than this LeukView reads "
                f"(versions {READABLE_SCHEMA_VERSIONS[0]} to {RESULT_SCHEMA_VERSION}); update LeukView"
            )
        if version not in READABLE_SCHEMA_VERSIONS or isinstance(version, bool):
            raise LeukViewError(f"unsupported result schema_version {version!r}")
        cells = [Cell.from_dict(c) for c in data["cells"]]
        for cell in cells:
            cell.measurements = {k: v for k, v in cell.measurements.items() if not is_physical_key(k)}
        threshold = data.get("confidence_threshold", DEFAULT_CONFIDENCE_THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise LeukViewError(f"confidence_threshold {threshold!r} is not a number in [0, 1]")
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            cells=cells,
            models=[ModelRun.from_dict(m) for m in data.get("models", [])],
            image=data.get("image"),
            calibration=Calibration.from_dict(
                {"pixel_size_um": data.get("pixel_size_um"), "source": data.get("pixel_size_source")}
            ),
            rbc_diameter_px=data.get("rbc_diameter_px"),
            confidence_threshold=float(threshold),
            domain=DomainCheck.from_dict(data["domain"]) if isinstance(data.get("domain"), dict) else None,
        )


def analyze_image(
    image: np.ndarray,
    classifiers: Sequence[Classifier] = (),
    params: SegmentationParams | None = None,
    *,
    pixel_size_um: float | None = None,
    calibration: Calibration | None = None,
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
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
        Deprecated: pass ``calibration``. Taken as the user's pixel size when
        ``calibration`` is None.
    calibration : Calibration, optional
        The image's pixel size and its source, recorded on the result (µm
        figures are derived from it; the cells' measurements stay in pixels).
    confidence_threshold : float
        Recorded on the result for the cells' ``low-confidence`` flags.
    progress : callable(fraction, message), optional
        Told within every stage: each step of the segmentation, then each
        batch of cells of each model (:func:`~leukview.core.progress.scaled`
        shares), and 1.0 at the end.
    should_cancel : callable() -> bool, optional
        Polled between stages and batches; a True answer raises :class:`AnalysisCancelled`.

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

    if calibration is None:
        calibration = Calibration.from_user(pixel_size_um)
    # Segmentation's share of the progress bar: all of it without models.
    share = SEGMENTATION_SHARE if classifiers else 1.0
    # No pixel size to segment: measurements stay in pixels, µm derive from the calibration.
    result = segment(image, params, progress=scaled(progress, 0.0, share), should_cancel=should_cancel)
    cells = result.cells
    runs: list[ModelRun] = []
    for index, classifier in enumerate(classifiers):
        spec = classifier.spec
        start = share + (1.0 - share) * index / len(classifiers)
        stop = share + (1.0 - share) * (index + 1) / len(classifiers)
        report(start, f"classifying with {spec.name}")
        targets = [c for c in cells if c.kind in spec.applies_to]
        predictions = classifier.predict(
            image, targets, should_cancel=should_cancel, progress=scaled(progress, start, stop)
        )
        for cell, prediction in zip(targets, predictions, strict=True):
            cell.predictions[spec.name] = prediction
        runs.append(ModelRun.of(classifier))
    report(1.0, "done")
    height, width = image.shape[:2]
    expected = [
        float(c.spec.openset.get("flagged_fraction_heldout") or DEFAULT_EXPECTED_FRACTION)
        for c in classifiers
        if c.spec.openset
    ]
    # the most permissive held-out rate of the models that score cells
    domain = domain_check(cells, min(max(max(expected), 1e-3), 0.5)) if expected else None
    return Analysis(
        width=width,
        height=height,
        cells=cells,
        models=runs,
        image=image_name,
        calibration=calibration,
        rbc_diameter_px=result.rbc_diameter,
        confidence_threshold=float(confidence_threshold),
        domain=domain,
    )

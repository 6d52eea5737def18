"""Small cells and model runs for tests of calls, exports, overlays and reports.

Import it from a test as ``from cell_factory import TYPE, BLAST, make_cell``
(pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import numpy as np

from leukview.core.analysis import ModelRun
from leukview.core.cells import Cell, Prediction

TYPE = ModelRun("wbc-type", "1.0.0", "CPUExecutionProvider", ["basophil", "lymphocyte", "neutrophil", "platelet"])
BLAST = ModelRun("all-blast", "1.0.0", "CPUExecutionProvider", ["blast", "normal"], positive_class="blast")
RUNS = {TYPE.name: TYPE, BLAST.name: BLAST}


def prediction(run: ModelRun, label: str, confidence: float) -> Prediction:
    """``label`` at ``confidence``, the rest shared equally by the other classes."""
    rest = (1.0 - confidence) / (len(run.classes) - 1)
    return Prediction(label, {c: (confidence if c == label else rest) for c in run.classes})


def make_cell(
    cell_id: int,
    kind: str = "wbc",
    *,
    x: float = 50.0,
    y: float = 50.0,
    half: float = 10.0,
    measurements: dict[str, float] | None = None,
    **preds: tuple[str, float],
) -> Cell:
    """A square cell centred on (x, y); ``preds`` maps model name (``_`` for ``-``) to (label, confidence)."""
    contour = np.array(
        [[x - half, y - half], [x + half, y - half], [x + half, y + half], [x - half, y + half]], np.int32
    )
    predictions = {}
    for key, (label, conf) in preds.items():
        run = RUNS[key.replace("_", "-")]
        predictions[run.name] = prediction(run, label, conf)
    return Cell(
        id=cell_id,
        kind=kind,
        contour=contour,
        bbox=(int(x - half), int(y - half), int(x + half + 1), int(y + half + 1)),
        centroid=(x, y),
        measurements=dict(measurements or {"area": 400.0, "circularity": 0.8}),
        predictions=predictions,
    )

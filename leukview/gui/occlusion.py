"""The occlusion map of the selected cell, as a heatmap beside the class-activation map.

Chosen in the Layers panel (Map: class activation / occlusion) or with
Shift+H. An occlusion map needs only the model's scores: a grey patch slides
over the cell's crop and the called class's probability drop is recorded
(:func:`leukview.core.explain.occlusion_map`, a few tens of inferences in
one batch). It is computed on demand for the selected cell, off the UI
thread, cached per cell and model, and drawn like the CAM (smooth,
attenuated away from the cell), in the CAM's place while chosen.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene

from leukview.core.calls import primary_model
from leukview.core.cells import Cell
from leukview.core.errors import LeukViewError
from leukview.core.explain import SaliencyMap, cell_heat_mask, occlusion_map, smooth_cam
from leukview.core.similar import cell_region

from .overlays import HEAT_SIZE, Z_HEAT, heat_rgba
from .tiles import to_qimage_rgba

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument

    from .overlays import CellOverlay
    from .similar import ExplainModels
    from .tiles import TileSource

__all__ = ["MAP_KINDS", "OcclusionLayer", "occlusion_of_cell"]

#: The heatmap's kinds, as the Layers panel names them.
MAP_KINDS = {"cam": "Class activation (CAM)", "occlusion": "Occlusion (selected cell, on demand)"}
_CACHE = 64


def _key(cell: Cell, model: str) -> tuple[Any, ...]:
    return (cell.id, tuple(cell.bbox), tuple(round(v, 2) for v in cell.centroid), round(cell.diameter, 3), model)


def occlusion_of_cell(
    classifier: Any, read: Callable[[int, int, int, int], Any], size: tuple[int, int], cell: Cell, label: str | None
) -> SaliencyMap:
    """The occlusion map of a cell of an image of any size, in image coordinates.

    ``label`` is the class explained when the model has it (the call), else the model's own top class.
    """
    region, shifted = cell_region(read, size, cell, classifier.spec.crop)
    classes = list(classifier.spec.classes)
    index = classes.index(label) if label in classes else None
    found = occlusion_map(classifier, region, shifted, index)
    dx, dy = cell.centroid[0] - shifted.centroid[0], cell.centroid[1] - shifted.centroid[1]
    x0, y0, x1, y1 = found.box
    return SaliencyMap(found.kind, found.grid, (x0 + dx, y0 + dy, x1 + dx, y1 + dy), found.class_index,
                       found.label, found.probability, found.raw)  # fmt: skip


def _edge_fade(side: int, share: float = 0.12) -> np.ndarray:
    """1 inside, falling smoothly to 0 over the outer ``share`` of a square: no hard edge at the crop's border."""
    t = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / max(share * side, 1.0), 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * t)
    return np.outer(ramp, ramp).astype(np.float32)


class _Signals(QObject):
    done = Signal(object, object, float, str)  # key, SaliencyMap or None, seconds, error


class _Task(QRunnable):
    def __init__(self, key: tuple[Any, ...], job: Callable[[], SaliencyMap], signals: _Signals) -> None:
        super().__init__()
        self.key, self.job, self.signals = key, job, signals

    def run(self) -> None:
        start = time.perf_counter()
        try:
            found = self.job()
        except (LeukViewError, ValueError) as exc:
            self.signals.done.emit(self.key, None, 0.0, str(getattr(exc, "reason", exc)))
            return
        except Exception as exc:  # a bug must reach the user as a message, not kill the window
            self.signals.done.emit(self.key, None, 0.0, f"{type(exc).__name__}: {exc}")
            return
        self.signals.done.emit(self.key, found, time.perf_counter() - start, "")


class OcclusionLayer(QObject):
    """Draws the selected cell's occlusion map while the Layers panel's map kind is occlusion.

    Parameters
    ----------
    scene : QGraphicsScene
    overlay : CellOverlay
        Its options give the mode (off / selected / all) and the opacity; which
        model explains a cell is its :meth:`CellOverlay.heat_model_for`.
    document : ReviewDocument
    models : ExplainModels
    source : callable
        The window's image (``TileSource``) or None.
    message : callable
        Shows a status line.
    """

    computed = Signal(object)  # the SaliencyMap shown

    def __init__(
        self,
        scene: QGraphicsScene,
        overlay: CellOverlay,
        document: ReviewDocument,
        models: ExplainModels,
        source: Callable[[], TileSource | None],
        message: Callable[[str], None] = lambda _text: None,
    ) -> None:
        super().__init__()
        self.scene, self.overlay, self.document, self.models = scene, overlay, document, models
        self.source, self.message = source, message
        self.active = False
        self.mode = "selected"
        self.shown: SaliencyMap | None = None
        self.seconds: float | None = None
        self._cache: OrderedDict[tuple[Any, ...], SaliencyMap] = OrderedDict()
        self._running: set[tuple[Any, ...]] = set()
        self._item: QGraphicsPixmapItem | None = None
        self._signals = _Signals()
        self._signals.done.connect(self._done)
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(1)
        models.ready.connect(self.update)

    # -- what the Layers panel says -----------------------------------------

    def set_active(self, active: bool) -> None:
        self.active = active
        self.update()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.update()

    def set_opacity(self, opacity: float) -> None:
        if self._item is not None:
            self._item.setOpacity(opacity)

    def clear(self) -> None:
        """Forget every map (another image, or the cells changed)."""
        self._cache.clear()
        self._hide()

    # -- drawing ------------------------------------------------------------

    def _hide(self) -> None:
        if self._item is not None:
            self.scene.removeItem(self._item)
            self._item = None
        self.shown = None

    def _target(self) -> tuple[Cell, str] | None:
        cell_id = self.overlay.selected
        if not self.active or self.mode == "off" or cell_id is None or self.document.session is None:
            return None
        try:
            cell = self.document.cell(cell_id)
        except KeyError:
            return None
        model = self.overlay.heat_model_for(cell)
        if model is None:
            primary = primary_model(self.document.models)
            model = None if primary is None else primary.name
        return None if model is None else (cell, model)

    def update(self) -> None:
        """Show the selected cell's map (computing it when new); hide it when not wanted."""
        target = self._target()
        if target is None:
            self._hide()
            return
        cell, model = target
        key = _key(cell, model)
        found = self._cache.get(key)
        if found is not None:
            self._show(cell, found)
            return
        self._hide()
        if not self.models.ensure():
            self.message("Occlusion map: loading the model…")
            return
        classifier = self.models.classifiers.get(model)
        source = self.source()
        if classifier is None or source is None:
            self.message(f"Occlusion map: model {model} is not loaded")
            return
        if key in self._running:
            return
        self._running.add(key)
        label = self.document.call(cell).label
        size = (source.width, source.height)

        def read(x: int, y: int, w: int, h: int) -> Any:
            return source.read_level(0, x, y, w, h)

        self.message(f"Occlusion map of cell {cell.id} ({model}): computing…")
        self._pool.start(_Task(key, lambda: occlusion_of_cell(classifier, read, size, cell, label), self._signals))

    @Slot(object, object, float, str)
    def _done(self, key: tuple[Any, ...], found: SaliencyMap | None, seconds: float, error: str) -> None:
        self._running.discard(key)
        if found is None:
            self.message(f"Occlusion map: {error}")
            return
        self._cache[key] = found
        while len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        self.seconds = seconds
        target = self._target()
        if target is not None and _key(*target) == key:
            self._show(target[0], found)
            self.message(f"Occlusion map of cell {target[0].id}: {found.label} "
                         f"{found.probability:.0%}, {seconds:.2f} s (where greying out lowers the call most)")  # fmt: skip

    def _show(self, cell: Cell, found: SaliencyMap) -> None:
        self._hide()
        x0, y0, x1, y1 = found.box
        size = (HEAT_SIZE, HEAT_SIZE)
        heat = smooth_cam(found.grid, size) * cell_heat_mask(cell, found.box, size) * _edge_fade(HEAT_SIZE)
        item = QGraphicsPixmapItem(QPixmap.fromImage(to_qimage_rgba(heat_rgba(heat))))
        item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        item.setPos(QPointF(x0, y0))
        item.setScale((x1 - x0) / HEAT_SIZE)
        item.setZValue(Z_HEAT)
        item.setOpacity(self.overlay.options.heat_opacity)
        item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.scene.addItem(item)
        self._item = item
        self.shown = found
        self.computed.emit(found)

    def wait(self, msecs: int = 30000) -> bool:
        """Wait for the running maps (screenshots, tests); True when none is left."""
        from PySide6.QtWidgets import QApplication

        deadline = time.monotonic() + msecs / 1000
        while (self._running or not self.models.loaded) and time.monotonic() < deadline:
            self._pool.waitForDone(20)
            QApplication.processEvents()
        return not self._running

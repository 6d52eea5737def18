"""Correcting the segmentation on the slide: the drawing and clicking tools of the Segmentation menu.

A tool is started by its key or menu item (``A`` add by a click, ``Shift+A``
draw an outline, ``S`` split by a line, ``Shift+S`` split by seeds, ``R``
redraw the selected cell); while it is active the view hands it the mouse
(:attr:`SlideView.tool`), the status bar says what it expects, Enter or a
double-click finishes and Esc cancels. ``Delete`` deletes the selected cell
at once. Every edit is the document's (:class:`~leukview.core.document.ReviewDocument`:
undoable, audited, re-measured and re-classified); its ``cells_replaced``
event puts the result on screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsView

from leukview.core.calls import display_name
from leukview.core.cells import Cell
from leukview.core.edit import EditContext, EditError, cells_crossed
from leukview.core.errors import LeukViewError

if TYPE_CHECKING:
    from PySide6.QtWidgets import QGraphicsScene, QStatusBar

    from leukview.core.document import ReviewDocument

    from .settings import AppSettings
    from .tiles import TileSource
    from .viewer import SlideView
    from .worker import AnalysisRunner, ModelCache


class EditHost(Protocol):
    """What the tools need of the main window."""

    document: ReviewDocument
    view: SlideView
    scene: QGraphicsScene
    source: TileSource | None
    settings: AppSettings
    model_cache: ModelCache
    runner: AnalysisRunner
    selected: int | None

    def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt's name

    def select_cell(self, cell_id: int | None, centre: bool = True) -> None: ...

    def error(self, title: str, text: str) -> None: ...

__all__ = ["TOOLS", "EditHost", "EditTools", "Tool"]

Z_SKETCH = 8  # above every overlay
FREEHAND_STEP = 4.0  # screen pixels between the points a drag traces
KIND_NAMES = {"wbc": "white cell", "rbc": "red cell", "platelet": "platelet"}


@dataclass(frozen=True)
class Tool:
    """One tool: what it draws, how many points it needs, and what the status bar asks for."""

    command: str
    shape: str  # "click", "polygon" (closed), "line" (open) or "seeds"
    minimum: int
    prompt: str
    on_selection: bool = False  # acts on the selected cell


TOOLS: dict[str, Tool] = {
    tool.command: tool
    for tool in (
        Tool("add_cell_click", "click", 1, "Add a cell: click inside the cell the segmentation missed"),
        Tool("add_cell_outline", "polygon", 3, "Add a cell: click or drag along its edge"),
        Tool("split_cell", "line", 2, "Split: draw a line across the merged cell, edge to edge"),
        Tool("split_cell_seeds", "seeds", 2, "Split: click once inside each cell of the merge"),
        Tool("redraw_cell", "polygon", 3, "Redraw cell {cell}: click or drag along its new edge", True),
    )
}


class EditTools:
    """The segmentation edit tools of a main window, on its slide view.

    Parameters
    ----------
    window : EditHost
        The main window: its document, view, scene, status bar, selection, image source and models.
    """

    def __init__(self, window: EditHost) -> None:
        self.window = window
        self.document = window.document
        self.view = window.view
        self.active: Tool | None = None
        self.points: list[QPointF] = []  # scene coordinates
        self.target: int | None = None
        self.changed: list[Callable[[], None]] = []  # told when a tool starts or ends
        self._hover: QPointF | None = None
        self._tracing = False
        self._context: EditContext | None = None
        # White on a dark halo: unlike any class colour or a flagged cell's dashes.
        self.sketch = QGraphicsPathItem()
        self._halo = QGraphicsPathItem()
        for item, colour, width in ((self._halo, QColor(0, 0, 0, 200), 4.5), (self.sketch, QColor(255, 255, 255), 2.0)):
            pen = QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(Z_SKETCH)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            item.setVisible(False)
            window.scene.addItem(item)
        self.document.events.analysis_changed.connect(self.reset)
        self.document.events.image_changed.connect(self.reset)

    # ------------------------------------------------------------ state

    @property
    def drawing(self) -> bool:
        """A tool is active (the view's mouse goes to it)."""
        return self.active is not None

    def reset(self) -> None:
        """Another image or analysis: end any tool and forget the pixels and models."""
        self.cancel(quiet=True)
        self._context = None

    def context(self) -> EditContext:
        """The document's edit context, built once per analysis (the image's pixels, the models)."""
        if self._context is None:
            window = self.window
            source = window.source
            if source is None:
                raise EditError("open an image first")
            classifiers: list = []
            if window.settings.use_models and self.document.models:
                window.statusBar().showMessage("Loading the models…")
                classifiers = list(window.model_cache.load(window.settings.model_names or None).classifiers)

            def read(x: int, y: int, w: int, h: int) -> np.ndarray:
                return np.ascontiguousarray(source.read_level(0, x, y, w, h))

            self._context = self.document.edit_context(read, classifiers)
        return self._context

    # ------------------------------------------------------------ starting and ending

    def start(self, command: str) -> bool:
        """Start a tool (its key again, or another tool's, ends the one active). False when it cannot start."""
        tool = TOOLS[command]
        if self.active is tool:
            self.cancel()
            return False
        self.cancel(quiet=True)
        if self.document.session is None:
            self._say("Analyse the image first (Ctrl+R): there are no cells to correct.")
            return False
        if self.window.runner.busy:
            self._say("Wait for the analysis to finish.")
            return False
        target = self.window.selected
        if tool.on_selection and target is None:
            self._say("Select the cell first (click it, or N), then press R.")
            return False
        self.active, self.target, self.points = tool, target, []
        self.view.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.view.viewport().setCursor(Qt.CursorShape.CrossCursor)
        self.view.setFocus()
        self._prompt()
        self._notify()
        return True

    def cancel(self, quiet: bool = False) -> bool:
        """End the active tool without an edit (Esc); False when none was active."""
        if self.active is None:
            return False
        self._end()
        if not quiet:
            self._say("Drawing cancelled; nothing was changed.", 4000)
        return True

    def finish(self) -> bool:
        """Make the edit the points describe (Enter, double-click); False when it needs more points."""
        tool = self.active
        if tool is None:
            return False
        if len(self.points) < tool.minimum:
            noun = "seeds" if tool.shape == "seeds" else "points"
            self._say(f"{tool.minimum} {noun} are needed, {len(self.points)} placed. Esc cancels.")
            return False
        points = [(p.x() - 0.5, p.y() - 0.5) for p in self.points]  # scene -> pixel-centre coordinates
        target = self.target
        self._end()
        self._apply(tool, points, target)
        return True

    def delete_selected(self) -> bool:
        """Delete the selected cell (Delete): it is not a cell. Undoable."""
        if self.document.session is None:
            return False
        cell_id = self.window.selected
        if cell_id is None:
            self._say("Select the cell to delete first (click it, or N).", 4000)
            return False
        self.cancel(quiet=True)
        call = self.document.call(cell_id).label
        what = display_name(call) if call else KIND_NAMES.get(self.document.cell(cell_id).kind, "cell")
        self.document.delete_cells([cell_id])
        self._say(f"Deleted cell {cell_id} ({what}) · Ctrl+Z undoes", 6000)
        return True

    # ------------------------------------------------------------ the mouse (from SlideView)

    def mouse(self, kind: str, point: QPointF, event: QMouseEvent) -> bool:
        """A mouse event in the view while a tool is active (``press``, ``move``, ``release``, ``double``)."""
        tool = self.active
        if tool is None:
            return False
        left = event.button() == Qt.MouseButton.LeftButton
        if kind == "press" and left:
            if tool.shape == "click":
                self.points = [point]
                return self.finish() or True
            self.points.append(point)
            self._tracing = tool.shape in ("polygon", "line")
        elif kind == "move":
            self._hover = point
            if self._tracing and event.buttons() & Qt.MouseButton.LeftButton and self.points:
                step = FREEHAND_STEP / max(self.view.scale_factor, 1e-6)
                last = self.points[-1]
                if (point.x() - last.x()) ** 2 + (point.y() - last.y()) ** 2 >= step * step:
                    self.points.append(point)
        elif kind == "release" and left:
            self._tracing = False
        elif kind == "double" and left:
            self._tracing = False
            # the double-click's own press placed its point, unless none came before it
            if tool.shape != "click" and not self._near_last(point):
                self.points.append(point)
            self.finish()
            return True
        elif kind == "press" and event.button() == Qt.MouseButton.RightButton:
            return False  # the cell menu still works
        else:
            return kind != "release"
        self._draw_sketch()
        if kind in ("press", "release"):
            self._prompt()
        return True

    # ------------------------------------------------------------ internals

    def _near_last(self, point: QPointF) -> bool:
        if not self.points:
            return False
        last, slop = self.points[-1], 3.0 / max(self.view.scale_factor, 1e-6)
        return abs(point.x() - last.x()) <= slop and abs(point.y() - last.y()) <= slop

    def _apply(self, tool: Tool, points: list[tuple[float, float]], target: int | None) -> None:
        document = self.document
        try:
            context = self.context()
            if tool.command == "add_cell_click":
                added = [document.add_cell(context, point=points[0])]
            elif tool.command == "add_cell_outline":
                added = [document.add_cell(context, outline=points)]
            elif tool.command == "redraw_cell":
                assert target is not None
                added = [document.redraw_cell(context, target, points)]
            else:
                where = points if tool.shape == "line" else points[:1]
                chosen = target if target in {c.id for c in cells_crossed(document.cells, where)} else None
                if tool.shape == "line":
                    added = document.split_cell(context, chosen, line=points)
                else:
                    added = document.split_cell(context, chosen, seeds=points)
        except EditError as exc:
            self._say(f"{exc.reason} (nothing was changed)", 8000)
            return
        except LeukViewError as exc:
            self.window.error("Cannot correct the segmentation", exc.reason)
            return
        self.window.select_cell(added[0].id, centre=False)
        self._say(self._done_text(tool, added), 8000)

    def _done_text(self, tool: Tool, added: list[Cell]) -> str:
        entry = self.document.session.audit[-1] if self.document.session is not None else None
        detail: dict[str, Any] = dict(entry.detail) if entry is not None and entry.detail else {}
        removed: list[int] = list(detail.get("cells_before", []))
        names = ", ".join(f"{c.id} ({self._describe(c)})" for c in added)
        if tool.command.startswith("add"):
            text = f"Added cell {names}"
            if removed:
                text += f"; it replaces {', '.join(str(i) for i in removed)}"
        elif tool.command == "redraw_cell":
            text = f"Redrew cell {removed[0] if removed else ''}: now {names}"
        else:
            text = f"Split cell {removed[0] if removed else ''} into {names}"
        missing: list[str] = list(detail.get("unclassified", []))
        if missing:
            text += f" · not classified by {', '.join(missing)} (model not loaded)"
        return text + " · Ctrl+Z undoes"

    def _describe(self, cell: Cell) -> str:
        call = self.document.call(cell)
        if call.label is None:
            return KIND_NAMES.get(cell.kind, cell.kind)
        text = display_name(call.label)
        return f"{text} {call.confidence:.0%}" if call.confidence is not None else text

    def _end(self) -> None:
        self.active, self.target, self.points, self._hover, self._tracing = None, None, [], None, False
        for item in (self.sketch, self._halo):
            item.setVisible(False)
            item.setPath(QPainterPath())
        self.view.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.window.statusBar().clearMessage()
        self._notify()

    def _notify(self) -> None:
        for callback in self.changed:
            callback()

    def _say(self, text: str, timeout: int = 0) -> None:
        self.window.statusBar().showMessage(text, timeout)

    def _prompt(self) -> None:
        tool = self.active
        if tool is None:
            return
        text = tool.prompt.format(cell=self.target)
        if tool.shape != "click":
            noun = "seed" if tool.shape == "seeds" else "point"
            count = len(self.points)
            text += f" · {count} {noun}{'' if count == 1 else 's'}"
            text += " · Enter or double-click finishes" if count >= tool.minimum else ""
        self._say(f"{text} · Esc cancels")

    def _draw_sketch(self) -> None:
        tool = self.active
        if tool is None or not self.points:
            self.sketch.setVisible(False)
            self._halo.setVisible(False)
            return
        path = QPainterPath()
        radius = 4.0 / max(self.view.scale_factor, 1e-6)  # marks of a constant screen size
        if tool.shape == "seeds":
            for p in self.points:
                path.addEllipse(QRectF(p.x() - radius, p.y() - radius, 2 * radius, 2 * radius))
                path.moveTo(p.x() - 2 * radius, p.y())
                path.lineTo(p.x() + 2 * radius, p.y())
                path.moveTo(p.x(), p.y() - 2 * radius)
                path.lineTo(p.x(), p.y() + 2 * radius)
        else:
            line = list(self.points)
            if self._hover is not None and not self._tracing:
                line.append(self._hover)  # the next point follows the cursor
            path.addPolygon(QPolygonF(line))
            if tool.shape == "polygon" and len(line) >= 3:
                path.closeSubpath()
            first = self.points[0]
            path.addEllipse(QRectF(first.x() - radius, first.y() - radius, 2 * radius, 2 * radius))
        for item in (self._halo, self.sketch):
            item.setPath(path)
            item.setVisible(True)

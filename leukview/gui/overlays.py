"""Cell overlays on the slide: contours by class, labels, class-activation heatmaps.

Labels keep their screen size and are laid out again whenever the view moves
or zooms (:meth:`CellOverlay.layout_labels`, with
:func:`leukview.core.labels.place_labels`): no two overlap, none is cut at the
view's edge, and when cells are small on screen the text gives way to a marker
(the class's abbreviation), which gives way in turn where even markers would
crowd. Heatmaps are each cell's map upsampled smoothly and attenuated away from
the cell (:func:`leukview.core.explain.cell_heat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from leukview.core.cells import Cell
from leukview.core.classes import abbreviation
from leukview.core.explain import cell_heat, smooth_cam
from leukview.core.labels import LabelRequest, place_labels

from .cellinfo import FLAG_COLOUR, KIND_COLOURS, call_text, class_colour, marker_text, tooltip_html
from .tiles import to_qimage_rgba

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument

Z_CELL, Z_WBC, Z_HEAT, Z_SELECTION, Z_LABEL, Z_PREVIEW = 1, 2, 3, 4, 5, 7
HEAT_SIZE = 96
#: A cell this many screen pixels across or more gets its full label; smaller ones a marker.
TEXT_MIN_PX = 36.0
LABEL_GAP = 3.0
HEAT_MODES = ("off", "selected", "all")


def contour_path(contour: np.ndarray) -> QPainterPath:
    """A closed path through an (N, 2) xy contour (pixel centres)."""
    path = QPainterPath()
    points = np.asarray(contour, np.float64).reshape(-1, 2) + 0.5
    if len(points) >= 2:
        path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in points]))
        path.closeSubpath()
    return path


def heat_rgba(cam: np.ndarray, size: int = HEAT_SIZE) -> np.ndarray:
    """A class-activation map as a straight-alpha RGBA image (jet colours, alpha grows with heat).

    Parameters
    ----------
    cam : ndarray of float, shape (h, w)
        Values in [0, 1]: a coarse map (upsampled smoothly here, bicubic and a
        Gaussian: no hard squares) or one already ``size`` a side (used as is).
    size : int
        Side of the returned image.

    Returns
    -------
    rgba : ndarray of uint8, shape (size, size, 4)
    """
    cam = np.asarray(cam, np.float32)
    heat = cam if cam.shape == (size, size) else smooth_cam(cam, (size, size))
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    colour = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    rgba = np.empty((size, size, 4), np.uint8)
    rgba[..., :3] = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    # cold areas stay see-through, so the cell itself remains visible under the map
    rgba[..., 3] = np.round(np.clip(heat * 1.25, 0.0, 1.0) * 235).astype(np.uint8)
    return rgba


class LabelItem(QGraphicsItem):
    """A readable tag (white on dark, class-coloured stripe) that keeps its screen size.

    Two forms: the full text (``12 neutrophil 87%``, ``⚑ all-blast 69%`` after it
    when another model is unsure) and a marker (the class's abbreviation, ``?``
    when flagged, ``✓`` when reviewed) for cells small on screen. Until the
    overlay lays labels out for a view, a label sits above its cell's box.
    """

    FULL, MARKER = 0, 1

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(Z_LABEL)
        self._text = ""
        self._marker = ""
        self._code = ""
        self._colour = QColor("white")
        self._flagged = False
        self._reviewed = False
        self._font = QFont()
        self._font.setPointSizeF(9.0)
        self._font.setBold(True)
        self._small = QFont(self._font)
        self._small.setPointSizeF(8.0)
        self.form = self.FULL
        self.wanted = True  # its layer and class are shown; the layout decides where, and whether it fits
        self.placed = False
        self._sizes: list[tuple[float, float]] = [(0.0, 0.0), (0.0, 0.0)]
        self._rect = QRectF()

    def set_content(
        self, text: str, colour: QColor, flagged: bool, marker: str = "", code: str = "", reviewed: bool = False
    ) -> None:
        self.prepareGeometryChange()
        self._text, self._colour, self._flagged = text, colour, flagged
        self._marker, self._code, self._reviewed = marker, code or text.split(" ")[0], reviewed
        metrics = QFontMetricsF(self._font)
        small = QFontMetricsF(self._small)
        full = metrics.horizontalAdvance(text) + 14
        if marker:
            full += small.horizontalAdvance(marker) + 8
        self._sizes = [
            (full, metrics.height() + 4),
            (small.horizontalAdvance(self.marker_text()) + 12, small.height() + 3),
        ]
        self._update_rect()
        self.update()

    def marker_text(self) -> str:
        """The marker's text: the abbreviation, ``?`` before it when flagged, ``✓`` after it when reviewed."""
        return ("? " if self._flagged else "") + self._code + (" ✓" if self._reviewed else "")

    def sizes(self) -> list[tuple[float, float]]:
        """(width, height) in screen pixels of the full label, then of the marker."""
        return list(self._sizes)

    def set_form(self, form: int, placed: bool = True) -> None:
        """Show the full text or the marker; ``placed``: its position is its top-left corner."""
        if (form, placed) != (self.form, self.placed):
            self.prepareGeometryChange()
            self.form, self.placed = form, placed
            self._update_rect()
            self.update()

    def _update_rect(self) -> None:
        width, height = self._sizes[self.form]
        self._rect = QRectF(0, 0 if self.placed else -height, width, height)

    def screen_rect(self) -> QRectF:
        """The tag in its own (screen-pixel) coordinates."""
        return QRectF(self._rect)

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-1, -1, 1, 1)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(FLAG_COLOUR), 1.5) if self._flagged else Qt.PenStyle.NoPen)
        painter.setBrush(QColor(15, 15, 20, 210))
        painter.drawRoundedRect(self._rect, 3, 3)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._colour)
        stripe = 4.0 if self.form == self.FULL else 3.0
        painter.drawRect(QRectF(self._rect.left() + 2, self._rect.top() + 3, stripe, self._rect.height() - 6))
        text_colour = QColor(FLAG_COLOUR) if self._flagged else QColor("white")
        if self.form == self.MARKER:
            painter.setFont(self._small)
            painter.setPen(text_colour)
            painter.drawText(self._rect.adjusted(8, 0, -2, 0), Qt.AlignmentFlag.AlignVCenter, self.marker_text())
            return
        painter.setFont(self._font)
        painter.setPen(text_colour)
        text_rect = self._rect.adjusted(10, 0, -2, 0)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignVCenter, self._text)
        if self._marker:  # another model is unsure: why the cell is flagged, on screen
            advance = QFontMetricsF(self._font).horizontalAdvance(self._text) + 6
            painter.setFont(self._small)
            painter.setPen(QColor(FLAG_COLOUR))
            painter.drawText(text_rect.adjusted(advance, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, self._marker)


class SelectionItem(QGraphicsPathItem):
    """The selected cell: corner brackets around it, so its class-coloured contour stays visible."""

    PAD = 8.0  # screen pixels between the cell and the brackets

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        scale = painter.worldTransform().m11() or 1.0
        pad = self.PAD / abs(scale)
        rect = self.path().boundingRect().adjusted(-pad, -pad, pad, pad)
        arm = min(rect.width(), rect.height()) * 0.3
        corners = QPainterPath()
        for x, y, dx, dy in (
            (rect.left(), rect.top(), 1, 1),
            (rect.right(), rect.top(), -1, 1),
            (rect.left(), rect.bottom(), 1, -1),
            (rect.right(), rect.bottom(), -1, -1),
        ):
            corners.moveTo(x + dx * arm, y)
            corners.lineTo(x, y)
            corners.lineTo(x, y + dy * arm)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for colour, width in ((QColor(0, 0, 0, 180), 6.0), (QColor(255, 255, 255), 3.0)):
            pen = QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap, Qt.PenJoinStyle.MiterJoin)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawPath(corners)

    def boundingRect(self) -> QRectF:
        # generous: the padding is in screen pixels, so it is largest when zoomed out
        rect = self.path().boundingRect()
        grow = max(rect.width(), rect.height()) + 64
        return rect.adjusted(-grow, -grow, grow, grow)

    def shape(self) -> QPainterPath:
        return QPainterPath()  # never hit by clicks or tooltips


class CellItem(QGraphicsPathItem):
    """One cell's contour; carries the cell id for hit tests."""

    def __init__(self, cell: Cell) -> None:
        super().__init__(contour_path(cell.contour))
        self.cell_id = cell.id
        self.kind = cell.kind
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(Z_WBC if cell.kind == "wbc" else Z_CELL)
        self.label_item: LabelItem | None = None
        self.nucleus_item: QGraphicsPathItem | None = None
        if cell.nucleus_contour is not None and len(cell.nucleus_contour) >= 3:
            self.nucleus_item = QGraphicsPathItem(contour_path(cell.nucleus_contour), self)
            pen = QPen(QColor(255, 255, 255, 170), 1.0, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            self.nucleus_item.setPen(pen)
            self.nucleus_item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            self.nucleus_item.setVisible(False)


@dataclass
class OverlayOptions:
    """What the overlays show (the Layers panel edits these)."""

    wbc: bool = True
    rbc: bool = True
    platelets: bool = True
    labels: bool = True
    nuclei: bool = False
    heat_mode: str = "selected"
    heat_opacity: float = 0.5
    heat_model: str | None = None  # None: the model behind each cell's call
    hidden_classes: set[str] = field(default_factory=set)


class CellOverlay:
    """All overlay items of one image, kept in step with the cells and the options.

    Calls, the threshold, the models and the calibration are read from the
    document at every refresh, so the overlay never holds a copy of them.
    """

    def __init__(self, scene: QGraphicsScene, document: ReviewDocument) -> None:
        self.scene = scene
        self.document = document
        self.options = OverlayOptions()
        self.cells: dict[int, Cell] = {}
        self.selected: int | None = None
        self._items: dict[int, CellItem] = {}
        self._heat: dict[tuple[int, str], QGraphicsPixmapItem] = {}
        self._selection = SelectionItem()
        self._selection.setZValue(Z_SELECTION)
        self._selection.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._selection.setVisible(False)
        scene.addItem(self._selection)
        self._preview: list[QGraphicsPathItem] = []
        self._layout_timer = QTimer()
        self._layout_timer.setSingleShot(True)
        self._layout_timer.setInterval(0)
        self._layout_timer.timeout.connect(self.layout_labels)
        for view in scene.views():  # labels are laid out again whenever the view moves or zooms
            changed = getattr(view, "view_changed", None)
            if changed is not None:
                changed.connect(lambda _rect: self.layout_labels())

    # -- building -----------------------------------------------------------

    def clear(self) -> None:
        for item in self._items.values():
            if item.label_item is not None:
                self.scene.removeItem(item.label_item)
            self.scene.removeItem(item)
        for item in self._heat.values():
            self.scene.removeItem(item)
        self._items.clear()
        self._heat.clear()
        self.cells.clear()
        self.selected = None
        self._selection.setVisible(False)
        self.clear_preview()

    def set_cells(self, cells: Sequence[Cell]) -> None:
        self.clear()
        self.add_cells(cells)

    def add_cells(self, cells: Sequence[Cell]) -> None:
        """Put cells on the slide (all of an analysis, or those a segmentation edit made)."""
        for cell in cells:
            if len(cell.contour) < 3:
                continue
            self.cells[cell.id] = cell
            item = CellItem(cell)
            self.scene.addItem(item)
            self._items[cell.id] = item
            if cell.kind == "wbc" or cell.review.label is not None:
                label = LabelItem()
                label.setPos(QPointF(cell.bbox[0], cell.bbox[1]))
                self.scene.addItem(label)
                item.label_item = label
            self.refresh_cell(cell.id)
        self.apply_options()

    def remove_cells(self, cell_ids: Sequence[int]) -> None:
        """Take cells off the slide (a segmentation edit removed them), with their labels and maps."""
        for cell_id in cell_ids:
            item = self._items.pop(cell_id, None)
            self.cells.pop(cell_id, None)
            if item is not None:
                if item.label_item is not None:
                    self.scene.removeItem(item.label_item)
                self.scene.removeItem(item)
            for key in [k for k in self._heat if k[0] == cell_id]:
                self.scene.removeItem(self._heat.pop(key))
            if self.selected == cell_id:
                self.select(None)

    def refresh_cell(self, cell_id: int) -> None:
        """Colour, label and tooltip of one cell after its call changed."""
        item = self._items.get(cell_id)
        cell = self.cells.get(cell_id)
        if item is None or cell is None:
            return
        call = self.document.call(cell)
        flagged = call.needs_review
        if cell.kind == "wbc" or call.reviewed:
            colour = class_colour(call.label)
            pen = QPen(colour, 2.5 if call.reviewed else 2.0)
            if flagged:
                pen.setStyle(Qt.PenStyle.DashLine)
        else:
            pen = QPen(KIND_COLOURS.get(cell.kind, QColor("white")), 1.0)
        pen.setCosmetic(True)
        item.setPen(pen)
        document = self.document
        item.setToolTip(tooltip_html(cell, call, document.models, document.calibration, document.threshold))
        if item.label_item is None and call.reviewed:
            item.label_item = LabelItem()
            item.label_item.setPos(QPointF(cell.bbox[0], cell.bbox[1]))
            self.scene.addItem(item.label_item)
        if item.label_item is not None:
            item.label_item.set_content(
                call_text(cell, call), class_colour(call.label), flagged,
                marker=marker_text(cell, call, document.models, document.threshold),
                code=abbreviation(call.label) if call.label else str(cell.id), reviewed=call.reviewed,
            )  # fmt: skip
            item.label_item.setToolTip(item.toolTip())
        self.schedule_layout()
        self._apply_item(item)
        if self.selected == cell_id:
            self._update_heat()

    def refresh_all(self) -> None:
        for cell_id in self._items:
            self.refresh_cell(cell_id)
        self._update_heat()

    # -- visibility ---------------------------------------------------------

    def _class_of(self, cell: Cell) -> str | None:
        return self.document.call(cell).label

    def _apply_item(self, item: CellItem) -> None:
        cell = self.cells[item.cell_id]
        opts = self.options
        if cell.kind == "wbc" or cell.review.label is not None:
            visible = opts.wbc and (self._class_of(cell) or "unclassified") not in opts.hidden_classes
        elif cell.kind == "rbc":
            visible = opts.rbc
        else:
            visible = opts.platelets
        item.setVisible(visible)
        if item.nucleus_item is not None:
            item.nucleus_item.setVisible(opts.nuclei)
        if item.label_item is not None:
            item.label_item.wanted = visible and opts.labels
            item.label_item.setVisible(item.label_item.wanted and (self._view() is None or item.label_item.placed))
        self.schedule_layout()

    def apply_options(self) -> None:
        for item in self._items.values():
            self._apply_item(item)
        self._update_heat()

    # -- label layout -------------------------------------------------------

    def _view(self) -> QGraphicsView | None:
        views = self.scene.views()
        return views[0] if views else None

    def schedule_layout(self) -> None:
        """Lay the labels out once the current batch of changes is done."""
        if self._view() is not None:
            self._layout_timer.start()

    def layout_labels(self) -> None:
        """Place every label in view: none overlaps another, none leaves the view, markers when cells are small.

        The selected cell's label goes first, then the flagged cells', then the
        rest; a label that fits nowhere is hidden until the view changes.
        """
        self._layout_timer.stop()
        view = self._view()
        if view is None:
            return
        viewport = view.viewport().rect()
        to_view = view.viewportTransform()
        from_view, _ok = to_view.inverted()
        scale = max(abs(to_view.m11()), 1e-9)
        shown = from_view.mapRect(QRectF(viewport))
        requests: list[LabelRequest] = []
        labels: dict[int, tuple[LabelItem, list[int]]] = {}  # the label, and which form each size is
        for cell_id, item in self._items.items():
            label = item.label_item
            if label is None:
                continue
            label.setVisible(False)
            cell = self.cells.get(cell_id)
            if cell is None or not label.wanted:
                continue
            x0, y0, x1, y1 = cell.bbox
            if x1 < shown.left() or x0 > shown.right() or y1 < shown.top() or y0 > shown.bottom():
                continue
            top_left = to_view.map(QPointF(x0, y0))
            bottom_right = to_view.map(QPointF(x1, y1))
            anchor = (top_left.x(), top_left.y(), bottom_right.x(), bottom_right.y())
            sizes = label.sizes()
            forms = [LabelItem.FULL, LabelItem.MARKER] if cell.diameter * scale >= TEXT_MIN_PX else [LabelItem.MARKER]
            rank = 0.0 if cell_id == self.selected else (1.0 if label._flagged else 2.0)
            requests.append(LabelRequest(cell_id, anchor, [sizes[f] for f in forms], rank + cell_id * 1e-7))
            labels[cell_id] = (label, forms)
        bounds = (0.0, 0.0, float(viewport.width()), float(viewport.height()))
        for placed in place_labels(requests, bounds, gap=LABEL_GAP):
            label, forms = labels[placed.key]
            label.set_form(forms[placed.form])
            label.setPos(from_view.map(QPointF(placed.rect[0], placed.rect[1])))
            label.setVisible(True)

    def label_rects(self) -> dict[int, QRectF]:
        """The visible labels' rectangles in the view's pixels, by cell id (what the reviewer sees)."""
        view = self._view()
        if view is None:
            return {}
        to_view = view.viewportTransform()
        rects = {}
        for cell_id, item in self._items.items():
            label = item.label_item
            if label is not None and label.isVisible():
                rects[cell_id] = label.screen_rect().translated(to_view.map(label.pos()))
        return rects

    # -- selection and heatmaps ---------------------------------------------

    def select(self, cell_id: int | None) -> None:
        self.selected = cell_id if cell_id in self._items else None
        if self.selected is None:
            self._selection.setVisible(False)
        else:
            self._selection.setPath(self._items[self.selected].path())
            self._selection.setVisible(True)
        self._update_heat()

    def heat_model_for(self, cell: Cell) -> str | None:
        """The model whose map explains this cell: the chosen one, else the one behind its call."""
        if self.options.heat_model:
            return self.options.heat_model if self.options.heat_model in cell.predictions else None
        call = self.document.call(cell)
        if call.model:
            return call.model
        # reviewed or unclassified: the first model with a map
        return next((name for name, p in cell.predictions.items() if p.cam is not None), None)

    def _heat_item(self, cell: Cell, model: str) -> QGraphicsPixmapItem | None:
        key = (cell.id, model)
        if key in self._heat:
            return self._heat[key]
        pred = cell.predictions.get(model)
        if pred is None or pred.cam is None or pred.cam_box is None:
            return None
        x0, y0, x1, y1 = pred.cam_box
        heat = cell_heat(cell, model, (HEAT_SIZE, HEAT_SIZE))  # smooth, attenuated away from the cell
        assert heat is not None
        item = QGraphicsPixmapItem(QPixmap.fromImage(to_qimage_rgba(heat_rgba(heat))))
        item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        item.setPos(QPointF(x0, y0))
        item.setScale((x1 - x0) / HEAT_SIZE)
        item.setZValue(Z_HEAT)
        item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.scene.addItem(item)
        self._heat[key] = item
        return item

    def _update_heat(self) -> None:
        wanted: set[tuple[int, str]] = set()
        mode = self.options.heat_mode
        if mode == "all":
            targets = [c for c in self.cells.values() if self._items[c.id].isVisible()]
        elif mode == "selected" and self.selected is not None:
            targets = [self.cells[self.selected]]
        else:
            targets = []
        for cell in targets:
            model = self.heat_model_for(cell)
            if model is not None and self._heat_item(cell, model) is not None:
                wanted.add((cell.id, model))
        for key, item in self._heat.items():
            item.setVisible(key in wanted)
            item.setOpacity(self.options.heat_opacity)

    def has_heatmaps(self) -> bool:
        return any(p.cam is not None for c in self.cells.values() for p in c.predictions.values())

    # -- hit tests ----------------------------------------------------------

    def cell_at(self, point: QPointF) -> int | None:
        """The visible cell under a scene point (white cells win over red cells)."""
        best: CellItem | None = None
        for item in self.scene.items(point):
            if (
                isinstance(item, CellItem)
                and item.isVisible()
                and item.path().contains(point)
                and (best is None or item.zValue() > best.zValue())
            ):
                best = item
        return None if best is None else best.cell_id

    def item(self, cell_id: int) -> CellItem | None:
        return self._items.get(cell_id)

    # -- segmentation preview -----------------------------------------------

    def clear_preview(self) -> None:
        for item in self._preview:
            self.scene.removeItem(item)
        self._preview = []

    def set_preview(self, cells: Sequence[Cell]) -> None:
        """Dashed contours of a trial segmentation (settings' live preview)."""
        self.clear_preview()
        for cell in cells:
            if len(cell.contour) < 3:
                continue
            item = QGraphicsPathItem(contour_path(cell.contour))
            colour = {"wbc": QColor(0, 255, 255), "rbc": QColor(255, 255, 255, 200)}.get(
                cell.kind, QColor(255, 0, 255)
            )
            pen = QPen(colour, 2.0 if cell.kind == "wbc" else 1.2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setBrush(QBrush(Qt.BrushStyle.NoBrush))
            item.setZValue(Z_PREVIEW)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            self.scene.addItem(item)
            self._preview.append(item)

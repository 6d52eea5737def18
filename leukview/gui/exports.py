"""Files written from the window: the cells as CSV, a PNG of the view, the PDF report.

What they say is decided in the core (:meth:`ReviewDocument.export_csv`,
:meth:`ReviewDocument.report_content`); this mixin asks where to write and
renders what needs Qt. With a case open, the CSV and the PDF are the whole
case's (:class:`~leukview.core.document.CaseDocument`: its pooled cells),
whichever field is shown and whether or not that field is analysed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from leukview.core.errors import LeukViewError
from leukview.core.session import AuditAction

from .report import render_scene, reportable, save_png, write_pdf_report
from .tiles import ArrayTileSource

if TYPE_CHECKING:
    from PySide6.QtWidgets import QGraphicsScene, QStatusBar

    from leukview.core.case import Case
    from leukview.core.cells import Cell
    from leukview.core.document import ReviewDocument
    from leukview.core.report import ReportContent

    from .overlays import CellOverlay
    from .tiles import TiledImageItem, TileSource

__all__ = ["Exports", "qimage_rgb"]


def qimage_rgb(image: QImage) -> np.ndarray:
    """A QImage as an RGB ``uint8`` array of shape (H, W, 3) (a copy)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.array(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
    return rows[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3).copy()


class Exports:
    """Exports of the main window (a mixin of :class:`MainWindow`)."""

    document: ReviewDocument
    scene: QGraphicsScene
    overlay: CellOverlay
    image_item: TiledImageItem | None
    source: TileSource | None

    if TYPE_CHECKING:  # provided by MainWindow (stubs here would hide QMainWindow's)

        def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt's name

        def error(self, title: str, text: str) -> None: ...

        def crop_for(self, cell: Cell) -> np.ndarray | None: ...

    @property
    def has_report(self) -> bool:
        """Whether the CSV and the PDF have something to say (the image's review, or a case's)."""
        return reportable(self.document)

    def _case(self) -> Case | None:
        """The open case (reported whole), or None."""
        from leukview.core.document import CaseDocument

        return self.document.case if isinstance(self.document, CaseDocument) else None

    def default_export_path(self, suffix: str, *, whole_case: bool = True) -> Path:
        """Where an export goes unless the user says otherwise: beside the image, or the case's file."""
        from leukview.core.document import CaseDocument

        document = self.document
        if whole_case and isinstance(document, CaseDocument) and document.case is not None:
            file = document.case_file or document.default_case_file()
            assert file is not None
            return file.with_name(document.case.name + suffix)
        assert document.path is not None
        return document.path.with_name(document.path.stem + suffix)

    def _export_path(self, title: str, suffix: str, filter_text: str, *, whole_case: bool = True) -> Path | None:
        default = self.default_export_path(suffix, whole_case=whole_case)
        path, _ = QFileDialog.getSaveFileName(self, title, str(default), filter_text)  # type: ignore[call-overload]
        return Path(path) if path else None

    def _written(self, path: Path) -> Path:
        self.statusBar().showMessage(f"Written {path}", 6000)
        return path

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write every cell (position, call, flags, review, models, measurements) as CSV (a case's pooled)."""
        if not self.has_report:
            return None
        target = Path(path) if path else self._export_path("Export cells as CSV", ".cells.csv", "CSV (*.csv)")
        if target is None:
            return None
        try:
            written = self.document.export_csv(target)
        except OSError as exc:
            self.error("Export failed", f"{target}: {exc.strerror or exc}")
            return None
        except LeukViewError as exc:
            self.error("Export failed", exc.reason)
            return None
        return self._written(written)

    def snapshot(self, max_side: int = 4096) -> QImage | None:
        """The whole image with the overlays as shown (selection and previews hidden)."""
        if self.image_item is None:
            return None
        selected = self.overlay.selected
        self.overlay.select(None)  # no selection ring, no selected-cell heatmap in an export
        self.overlay.clear_preview()
        self.image_item.synchronous = True
        try:
            return render_scene(self.scene, self.image_item.boundingRect(), max_side)
        finally:
            self.image_item.synchronous = False
            self.overlay.select(selected)

    def export_png(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        if self.image_item is None:
            return None
        target = Path(path) if path else self._export_path(
            "Export PNG snapshot", ".overlay.png", "PNG (*.png)", whole_case=False)  # the field shown
        if target is None:
            return None
        image = self.snapshot()
        assert image is not None
        try:
            written = save_png(image, target)
        except LeukViewError as exc:
            self.error("Export failed", str(exc))
            return None
        self.document.log_export(AuditAction.EXPORT_PNG, written)
        return self._written(written)

    def report_content(self, heatmap: bool = False) -> ReportContent:
        """What the PDF report says (the document's, as ``leukview report`` makes it).

        The snapshot is drawn for the page by the core (no view state in it: the
        heatmap only when chosen for this report). A large image is not in memory
        whole: the analysed field is read reduced, the cell images at full resolution.
        A case's is the whole case's (its fields' contact sheet, its pooled cells).
        """
        if self._case() is not None:
            return self.document.report_content(None, heatmap=heatmap)
        if isinstance(self.source, ArrayTileSource):
            return self.document.report_content(self.source.image, heatmap=heatmap)
        image, region = self.report_image()
        return self.document.report_content(image, heatmap=heatmap, region=region, crop=self.crop_for)

    def report_image(self, side: int = 2400) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None]:
        """The analysed field (the whole image when none) read from the finest level that fits ``side``."""
        source = self.source
        if source is None:
            return None, None
        field = self.document.settings.analysed_field or (0, 0, source.width, source.height)
        x, y, w, h = field
        level = next(
            (i for i in range(len(source.levels)) if max(w, h) / source.downsample(i) <= side),
            len(source.levels) - 1,
        )
        scale = source.downsample(level)
        lw, lh = source.levels[level]
        x0, y0 = int(x / scale), int(y / scale)
        x1, y1 = min(lw, int(np.ceil((x + w) / scale))), min(lh, int(np.ceil((y + h) / scale)))
        try:
            image = source.read_level(level, x0, y0, max(1, x1 - x0), max(1, y1 - y0))
        except LeukViewError:
            return None, None
        return image, (int(x0 * scale), int(y0 * scale), int((x1 - x0) * scale), int((y1 - y0) * scale))

    def export_pdf(self, path: str | os.PathLike[str] | None = None, heatmap: bool = False) -> Path | None:
        """The PDF report: case, differential, snapshot, models, corrections, sign-off, cell images.

        ``heatmap``: the class-activation maps in this report's snapshot (never carried over from the view).
        A case's report covers the whole case and is named after it.
        """
        if not self.has_report:
            return None
        target = Path(path) if path else self._export_path("Export PDF report", ".report.pdf", "PDF (*.pdf)")
        if target is None:
            return None
        try:
            written = write_pdf_report(target, self.report_content(heatmap))
        except LeukViewError as exc:
            self.error("Export failed", str(exc))
            return None
        self.document.log_export(AuditAction.EXPORT_PDF, written)
        return self._written(written)

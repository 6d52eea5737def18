"""A case in the viewer: many fields of one specimen reviewed as one.

The window's document is a :class:`~leukview.core.document.CaseDocument`;
this mixin of :class:`~leukview.gui.mainwindow.MainWindow` adds the **Case**
dock (the fields as a thumbnail strip with their state, *Analyse case* with
progress per field and cancel, and one gallery across the case), the
next/previous field keys, the next cell across fields, and jumping from a
gallery cell to its field, centred on it. The per-field views (overlays,
Review table, edit tools) show the current field; the differential, the
report and the session are the case's (the document pools them).
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from leukview.core.calls import review_cells
from leukview.core.case import CellRef
from leukview.core.document import CaseDocument, is_analysed, new_case
from leukview.core.errors import LeukViewError
from leukview.core.preprocess import crop_box

from .analysis_ui import segmentation_params, wait_while
from .cellinfo import class_colour
from .gallery import thumbnail_pixmap
from .slide_view import run_controls
from .tiles import ArrayTileSource, RegionTileSource, TiledImageItem, TileSource, to_qimage

if TYPE_CHECKING:
    from .worker import ModelCache

__all__ = ["CASE_IMAGE_SUFFIXES", "CaseGallery", "CaseJob", "CasePanel", "CaseUi", "case_paths"]

CASE_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
REF_ROLE = Qt.ItemDataRole.UserRole + 2
FIELD_ROLE = Qt.ItemDataRole.UserRole + 3
FIELD_THUMB = 72


def case_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The images a command line or a selection names: files as given, a folder's images sorted by name."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CASE_IMAGE_SUFFIXES
                              and not p.name.startswith(".")))
        else:
            out.append(path)
    return out


class CaseJob(QObject):
    """Analyses the pending fields of a case one after the other in a QThread; cancel() stops between fields.

    Signals
    -------
    field_done(image_id, Analysis)
    progress(done, total, image_id)
    ended(cancelled: bool, errors: list of str)
    """

    field_done = Signal(str, object)
    progress = Signal(int, int, str)
    ended = Signal(bool, object)

    def __init__(self, fields: Sequence[tuple[str, str]], models: ModelCache, names: list[str] | None,
                 use_models: bool, params: Any) -> None:
        super().__init__()
        self.fields = list(fields)
        self.models, self.names, self.use_models, self.params = models, names, use_models, params
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        from leukview.core.document import analyse_field
        from leukview.core.io import read_image

        from .worker import LoadedModels

        errors: list[str] = []
        try:
            loaded = self.models.load(self.names) if self.use_models else LoadedModels()
            total = len(self.fields)
            for k, (image_id, path) in enumerate(self.fields):
                if self._cancel.is_set():
                    break
                self.progress.emit(k, total, image_id)
                try:
                    analysis = analyse_field(read_image(path), loaded.classifiers, self.params, image_name=path,
                                             should_cancel=self._cancel.is_set)
                except LeukViewError as exc:
                    if self._cancel.is_set():
                        break
                    errors.append(f"{image_id}: {exc.reason}")
                    continue
                self.field_done.emit(image_id, analysis)
            self.progress.emit(total if not self._cancel.is_set() else k, total, "")
        except Exception as exc:  # a bug must reach the user as a message
            traceback.print_exc()
            errors.append(f"unexpected error: {type(exc).__name__}: {exc}")
        self.ended.emit(self._cancel.is_set(), errors)


class CaseGallery(QListWidget):
    """One gallery across the case: the counted cells by call, each a (field, cell) reference."""

    ref_activated = Signal(object)  # CellRef

    def __init__(self, document: CaseDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.thumb = 64
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(self.thumb, self.thumb))
        self.setSpacing(3)
        self._pixels: dict[str, np.ndarray | None] = {}
        self._items: dict[CellRef, QListWidgetItem] = {}
        self.itemActivated.connect(self._activated)
        self.itemClicked.connect(self._activated)

    def _activated(self, item: QListWidgetItem) -> None:
        ref = item.data(REF_ROLE)
        if ref is not None:
            self.ref_activated.emit(CellRef(*ref))

    def field_pixels(self, image_id: str) -> np.ndarray | None:
        if image_id not in self._pixels:
            try:
                self._pixels[image_id] = self.document.read_pixels(image_id)
            except (LeukViewError, OSError):
                self._pixels[image_id] = None
        return self._pixels[image_id]

    def forget_pixels(self) -> None:
        self._pixels.clear()

    def refs(self) -> list[CellRef]:
        return list(self._items)

    def item_of(self, ref: CellRef) -> QListWidgetItem | None:
        return self._items.get(ref)

    def rebuild(self) -> None:
        """Lay the case's cells out again, by call, in review order (after an analysis or a decision)."""
        from leukview.core.calls import display_name
        from leukview.core.classes import abbreviation

        from .review_ui import GALLERY_RULE

        self.blockSignals(True)
        self.clear()
        self._items.clear()
        groups = self.document.gallery()
        classes = self.document.classes()
        names = [c for c in classes if c in groups] + [c for c in groups if c not in classes and c is not None]
        if None in groups:
            names.append(None)  # type: ignore[arg-type]
        for name in names:
            refs = groups[name]
            header = QListWidgetItem(f"{abbreviation(name) if name else '—'} · {display_name(name)}  ({len(refs)})")
            header.setFlags(Qt.ItemFlag.NoItemFlags)
            header.setSizeHint(QSize(max(200, self.viewport().width() - 12), 22))
            self.addItem(header)
            for ref in refs:
                pixels = self.field_pixels(ref.image)
                cell = self.document.case.cell(ref) if self.document.case is not None else None
                if pixels is None or cell is None:
                    continue
                x0, y0, x1, y1 = crop_box(cell, GALLERY_RULE)
                h, w = pixels.shape[:2]
                crop = pixels[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
                if crop.size == 0:
                    continue
                call = self.document.call_ref(ref)
                icon = QIcon(thumbnail_pixmap(np.ascontiguousarray(crop), class_colour(call.label),
                                              call.needs_review, call.reviewed, self.thumb))
                item = QListWidgetItem(icon, f"{ref.image}\n#{ref.cell}")
                item.setData(REF_ROLE, tuple(ref))
                item.setToolTip(f"{ref.image}, cell {ref.cell}: {display_name(call.label)}"
                                + (" (reviewed)" if call.reviewed else ""))
                item.setSizeHint(QSize(self.thumb + 24, self.thumb + 34))
                item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
                self.addItem(item)
                self._items[ref] = item
        self.blockSignals(False)

    def select_ref(self, ref: CellRef | None) -> None:
        item = self._items.get(ref) if ref is not None else None
        self.blockSignals(True)
        if item is None:
            self.clearSelection()
        else:
            self.setCurrentItem(item)
            self.scrollToItem(item)
        self.blockSignals(False)


class CasePanel(QWidget):
    """The Case dock: the fields as a strip of thumbnails, Analyse case with progress and cancel, the gallery."""

    field_chosen = Signal(str)

    def __init__(self, document: CaseDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.title = QLabel("No case open (File ▸ Open case…)")
        self.title.setWordWrap(True)
        self.fields = QListWidget()
        self.fields.setViewMode(QListView.ViewMode.IconMode)
        self.fields.setFlow(QListView.Flow.LeftToRight)
        self.fields.setWrapping(False)
        self.fields.setIconSize(QSize(FIELD_THUMB, FIELD_THUMB * 3 // 4))
        self.fields.setFixedHeight(FIELD_THUMB + 44)
        self.fields.setMovement(QListView.Movement.Static)
        self.fields.currentItemChanged.connect(
            lambda item, _prev: item is not None and self.field_chosen.emit(str(item.data(FIELD_ROLE)))
        )
        self.analyse_button, self.cancel_button, self.progress, row = run_controls(
            "Analyse case", "Analyse every field not analysed yet, in the background (Ctrl+Shift+R)"
        )
        self.gallery = CaseGallery(document)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.fields)
        layout.addLayout(row)
        layout.addWidget(QLabel("Gallery of the case (click a cell: its field, centred on it)"))
        layout.addWidget(self.gallery, 1)
        self._items: dict[str, QListWidgetItem] = {}

    def set_case(self) -> None:
        """Fill the strip from the document's case (or empty it)."""
        self.fields.blockSignals(True)
        self.fields.clear()
        self._items.clear()
        self.gallery.forget_pixels()
        case = self.document.case
        for image in case.images if case is not None else []:
            item = QListWidgetItem(image.id)
            item.setData(FIELD_ROLE, image.id)
            item.setSizeHint(QSize(FIELD_THUMB + 16, FIELD_THUMB + 30))
            pixels = self.gallery.field_pixels(image.id)
            if pixels is not None:
                step = max(1, max(pixels.shape[:2]) // FIELD_THUMB)
                small = np.ascontiguousarray(pixels[::step, ::step, :3])
                item.setIcon(QIcon(QPixmap.fromImage(to_qimage(small))))
            self.fields.addItem(item)
            self._items[image.id] = item
        self.fields.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        """The fields' states, the title's totals, the gallery."""
        case = self.document.case
        if case is None:
            self.title.setText("No case open (File ▸ Open case…)")
            self.gallery.clear()
            return
        pending = set(self.document.pending())
        for image in case.images:
            item = self._items.get(image.id)
            if item is None:
                continue
            counted = image.counted(review_cells(image.analysis.cells)) if is_analysed(image) else []
            cells, reviewed = len(counted), sum(1 for c in counted if c.review.reviewed)
            state = "not analysed" if image.id in pending else f"{reviewed}/{cells} reviewed"
            item.setText(f"{image.id}\n{state}")
            item.setToolTip(f"{image.name}: {state}")
        diff = self.document.differential()
        self.title.setText(
            f"<b>Case {case.name}</b>: {len(case.images)} fields, {len(pending)} not analysed; "
            f"{diff.leukocytes} white cells counted over the case"
        )
        self.gallery.rebuild()
        self.select_field(self.document.current)

    def select_field(self, image_id: str | None) -> None:
        item = self._items.get(image_id) if image_id is not None else None
        self.fields.blockSignals(True)
        if item is not None:
            self.fields.setCurrentItem(item)
            self.fields.scrollToItem(item)
        self.fields.blockSignals(False)


class CaseUi:
    """A case in the main window (a mixin of :class:`MainWindow`; see the module docstring)."""

    document: CaseDocument
    source: TileSource | None
    image_item: TiledImageItem | None
    selected: int | None

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    def _build_case(self) -> None:
        self.case_panel = CasePanel(self.document)
        self.case_panel.field_chosen.connect(self.show_field)
        self.case_panel.gallery.ref_activated.connect(self.jump_to)
        self.case_panel.analyse_button.clicked.connect(self.analyse_case)
        self.case_panel.cancel_button.clicked.connect(self.cancel_case_analysis)
        self.case_dock = self._dock("Case", self.case_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.case_dock.setVisible(False)
        self._case_job: CaseJob | None = None
        self._case_thread: QThread | None = None
        self._case_retired: list[tuple[CaseJob | None, QThread]] = []
        self._case_refresh = QTimer(self)  # pooled views redrawn once per burst of changes
        self._case_refresh.setSingleShot(True)
        self._case_refresh.setInterval(50)
        self._case_refresh.timeout.connect(self.case_panel.refresh)
        self._case_refresh.timeout.connect(self._update_differential)  # another field's analysis: pooled counts, warning
        self._case_refresh.timeout.connect(self._update_enabled)  # the case's exports once any field is analysed
        self.document.switch_field = self.show_field
        self.document.events.case_changed.connect(self._case_refresh.start)
        self.document.events.cell_changed.connect(lambda _id: self.document.is_case and self._case_refresh.start())

    # ------------------------------------------------------------ opening

    def open_case_dialog(self) -> None:
        """File ▸ Open case…: several images, or a case file."""
        start = str(self.path.parent) if self.path else str(Path.home())
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Open case: choose the fields (or a case file)", start,  # type: ignore[arg-type]
            "Images and cases (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.case.leukview.json);;All files (*)",
        )
        if paths:
            self.open_case(paths)

    def open_case(self, paths: Sequence[str | os.PathLike[str]], name: str | None = None,
                  analyse: bool | None = None) -> bool:
        """Open a case: a case file, a folder of fields, or several images (False with an error when none reads)."""
        from leukview.core.case import CASE_SUFFIX

        raw = [Path(p) for p in paths]
        if len(raw) == 1 and raw[0].name.endswith(CASE_SUFFIX):
            return self.open_case_file(raw[0])
        images = case_paths(raw)
        if not images:
            self.error("Cannot open case", "No image in " + ", ".join(str(p) for p in raw))
            return False
        if len(raw) == 1 and raw[0].is_dir():
            from leukview.core.case import case_path

            saved = case_path(raw[0], name or raw[0].name)
            if saved.is_file():  # the folder's case, reviewed before
                return self.open_case_file(saved)
        case_name = name or (raw[0].name if raw[0].is_dir() else images[0].parent.name or "case")
        try:
            case = new_case(case_name, images, settings=self._preferred_settings())
        except LeukViewError as exc:
            self.error("Cannot open case", exc.reason)
            return False
        if not self.maybe_save():
            return False
        self.close_image()
        self.document.open_case(case)  # shows the first field through show_field
        self._case_opened()
        if self.settings.analyse_on_open if analyse is None else analyse:
            self.analyse_case()
        return True

    def open_case_file(self, path: str | os.PathLike[str]) -> bool:
        """A case file; a slide's case opens through the slide's lazy source (never read whole)."""
        from leukview.core.case import load_case

        from .slide_ui import is_slide_case

        try:
            case = load_case(path)
        except LeukViewError as exc:
            self.error("Cannot open case", f"{Path(path).name}\n\n{exc.reason}")
            return False
        if is_slide_case(case) and Path(case.images[0].path).is_file():  # a missing slide: its review still opens
            return bool(self.open_slide_case(case, path))
        if not self.maybe_save():
            return False
        self.close_image()
        self.document.open_case(case, path)
        self._case_opened()
        return True

    def _case_opened(self) -> None:
        self.case_dock.setVisible(True)
        self.case_dock.raise_()
        self.case_panel.set_case()
        if self.source is None and self.document.current is not None:
            self.show_field(self.document.current)
        self._update_enabled()

    # ------------------------------------------------------------ fields

    def show_field(self, image_id: str) -> bool:
        """Bring a field of the case on screen (its image, its cells); the review stays the case's."""
        case = self.document.case
        if case is None:
            return False
        if image_id == self.document.current and self.source is not None:
            return True
        from leukview.core import io as core_io

        image = case.image(image_id)
        path = Path(image.path)
        try:
            info = core_io.image_info(path)
            if self.document.is_large(info.width, info.height) and "TIFF" in str(info.format).upper():
                source: TileSource = RegionTileSource(path, info)
            else:
                source = ArrayTileSource(core_io.read_image(path))
            item = TiledImageItem(source)
        except (LeukViewError, OSError, MemoryError) as exc:
            self.error("Cannot open field", f"{path.name}\n\n{getattr(exc, 'reason', exc)}")
            return False
        self.overlay.clear()
        if self.image_item is not None:
            self.scene.removeItem(self.image_item)
            self.image_item.close()
        self.source, self.image_item = source, item
        self.scene.addItem(item)
        self.view.set_image_rect(item.boundingRect())
        self.overview.set_image(item.thumbnail, source.width, source.height)
        self.stack.setCurrentWidget(self.view)
        self.selected = None
        self.document.show_field(image_id, info)
        self.view.fit()
        self._show_calibration()
        self._update_enabled()
        self._update_banner()
        self.case_panel.select_field(image_id)
        k = case.index(image_id) + 1
        self.setWindowTitle(f"{case.name} · {image_id} ({k}/{len(case.images)})[*] — LeukView")
        self.statusBar().showMessage(f"Field {k} of {len(case.images)}: {image.name}", 4000)
        return True

    def next_field(self) -> None:
        self.document.step_field(1)

    def previous_field(self) -> None:
        self.document.step_field(-1)

    def jump_to(self, ref: CellRef) -> None:
        """A gallery cell: its field on screen, centred on the cell, selected."""
        if self.document.current != ref.image and not self.show_field(ref.image):
            return
        self.select_cell(ref.cell, centre=True)
        self.case_panel.gallery.select_ref(ref)

    def go_next(self) -> None:
        """Next unreviewed cell: in the field shown, then in the next fields (a case), else the table's."""
        if not self.document.is_case:
            super().go_next()  # type: ignore[misc]
            return
        current = self.document.current
        after = CellRef(current, self.selected) if current is not None and self.selected is not None else None
        ref = self.document.next_unreviewed(after)
        if ref is None:
            self.statusBar().showMessage("Every cell of the case is reviewed.", 5000)
            return
        self.jump_to(ref)

    # ------------------------------------------------------------ analysis

    @property
    def case_busy(self) -> bool:
        return self._case_thread is not None and self._case_thread.isRunning()

    def analyse_case(self) -> None:
        """Analyse the fields not analysed yet in the background, one after the other (cancel: Esc)."""
        if not self.document.is_case or self.case_busy:
            return
        case = self.document.case
        assert case is not None
        fields = [(i, case.image(i).path) for i in self.document.pending()]
        if not fields:
            self.statusBar().showMessage("Every field of the case is analysed.", 4000)
            return
        params = segmentation_params(self.settings.segmentation)
        job = CaseJob(fields, self.model_cache, self.settings.model_names or None, self.settings.use_models, params)
        thread = QThread()
        job.moveToThread(thread)
        thread.started.connect(job.run)
        job.field_done.connect(self._case_field_done)
        job.progress.connect(self._case_progress)
        job.ended.connect(self._case_ended)
        job.ended.connect(thread.quit)
        self._case_job, self._case_thread = job, thread
        panel = self.case_panel
        panel.progress.setRange(0, len(fields))
        panel.progress.setValue(0)
        panel.progress.setVisible(True)
        panel.cancel_button.setVisible(True)
        panel.analyse_button.setEnabled(False)
        thread.start()

    def cancel_analysis(self) -> None:
        """Esc: the case's analysis when it runs, else the field's."""
        if not self.cancel_case_analysis():
            super().cancel_analysis()  # type: ignore[misc]

    def stop_case_analysis(self, wait_ms: int = 30000) -> None:
        """Cancel the case's analysis and wait for its thread (the window closes)."""
        thread = self._case_thread
        if self._case_job is not None:
            self._case_job.cancel()
        if thread is not None:
            thread.quit()
            thread.wait(wait_ms)

    def cancel_case_analysis(self) -> bool:
        if self._case_job is not None and self.case_busy:
            self._case_job.cancel()
            self.statusBar().showMessage("Cancelling the case's analysis (after this field)…")
            return True
        return False

    def _case_field_done(self, image_id: str, analysis: object) -> None:
        if self.document.case is None or image_id not in self.document.case.ids():
            return  # the case was closed meanwhile
        self.document.set_field_analysis(image_id, analysis)  # type: ignore[arg-type]

    def _case_progress(self, done: int, total: int, image_id: str) -> None:
        bar = self.case_panel.progress
        bar.setValue(done)
        bar.setFormat(f"{done}/{total} fields" + (f" · {image_id}" if image_id else ""))

    def _case_ended(self, cancelled: bool, errors: object) -> None:
        panel = self.case_panel
        panel.progress.setVisible(False)
        panel.cancel_button.setVisible(False)
        panel.analyse_button.setEnabled(True)
        thread = self._case_thread
        if thread is not None:
            thread.quit()  # thread-safe; its loop ends once run() has returned
            if not thread.wait(10000):
                self._case_retired.append((self._case_job, thread))  # never destroyed while it runs
        self._case_job = self._case_thread = None
        left = len(self.document.pending())
        if cancelled:
            self.statusBar().showMessage(f"Case analysis cancelled: {left} field(s) left (Analyse case resumes)", 8000)
        else:
            self.statusBar().showMessage("Case analysed" + (f"; {left} field(s) failed" if left else ""), 8000)
        if errors:
            self.warn("Case analysis", "\n".join(str(e) for e in errors))  # type: ignore[attr-defined]
        self.case_panel.refresh()

    def wait_for_case(self, timeout_ms: int = 120000) -> bool:
        """Process events until the case's analysis ends (tests, screenshots)."""
        return wait_while(lambda: self.case_busy or self._case_job is not None, timeout_ms)

"""LeukView's main window: wiring and presentation of a :class:`~leukview.core.document.ReviewDocument`.

The window holds no review state and decides no rule: the document owns the
image, its analysis, the review with undo and redo, the calibration, the
threshold and the session files, and emits events that the widgets follow.
The window's parts live beside it: the commands and menus (``actions``, from
the one keymap), the layers panel (``layers``), analysis and settings
(``analysis_ui``), session messages (``session_ui``), exports (``exports``),
whole slides (``slide_ui``) and small dialogs (``dialogs``); what is left here
(the wiring of them all, opening and closing) is just over 600 lines.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPointF, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QGraphicsScene,
    QMainWindow,
    QMenu,
    QMessageBox,
)

from leukview.core.analysis import Analysis, ModelRun
from leukview.core.calibration import Calibration
from leukview.core.cells import Cell
from leukview.core.classes import class_list_problem
from leukview.core.document import CaseDocument, image_for
from leukview.core.errors import LeukViewError
from leukview.core.session import AuditEntry, Session, SessionSettings

from .actions import Actions
from .analysis_ui import AnalysisUi
from .case_ui import CaseUi
from .cellinfo import provider_text
from .dialogs import PixelSizeDialog, about_html, shortcuts_html
from .differential import document_domain
from .docks import Docks
from .edit_tools import TOOLS, EditTools
from .explain_ui import ExplainUi
from .exports import Exports
from .layers import HEAT_MODE_NAMES
from .overlays import CellOverlay
from .report import report_dialog
from .review_ui import GALLERY_RULE, ReviewUi
from .session_ui import SessionUi, sessions_folder
from .settings import AppSettings
from .slide_ui import SlideUi
from .tiles import ArrayTileSource, RegionTileSource, TiledImageItem, TileSource
from .viewer import SlideView
from .worker import AnalysisRunner, ModelCache, SegmentationPreview, installed_models

__all__ = ["GALLERY_RULE", "IMAGE_FILTER", "MainWindow", "default_sample", "sessions_folder"]

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.ome.tif *.ome.tiff);;Slides (*.svs *.ndpi *.mrxs *.scn *.bif *.vms *.vmu *.svslide *.dcm *.tif *.tiff);;Sessions (*.leukview.json);;All files (*)"


class MainWindow(Docks, SlideUi, CaseUi, ReviewUi, SessionUi, AnalysisUi, Exports, ExplainUi, QMainWindow):
    """The viewer.

    Parameters
    ----------
    settings : AppSettings, optional
        Defaults to the user's QSettings; tests pass an isolated store.
    models_dir : path, optional
        Folder of installed models (default: the shipped ``models/``).
    read_only : bool
        Never write sessions (screenshot mode).
    interactive : bool
        Show dialogs for errors; when False they go to stderr (screenshot mode).
    """

    def __init__(
        self,
        settings: AppSettings | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        interactive: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.models_dir = None if models_dir is None else os.fspath(models_dir)
        self.model_cache = ModelCache(self.models_dir)
        self.read_only = read_only
        self.interactive = interactive
        self.document = CaseDocument(  # a plain document until a case is opened
            self._preferred_settings(),
            sessions_folder=sessions_folder(),
            read_only=read_only,
            autosave=self.settings.autosave,
        )
        self.source: TileSource | None = None
        self.image_item: TiledImageItem | None = None
        self.selected: int | None = None
        self.last_error: str | None = None
        self.notices: list[str] = []
        self._settings_dialog = None

        self.setWindowTitle("LeukView")
        self.setAcceptDrops(True)
        self.runner = AnalysisRunner(self)
        self.preview = SegmentationPreview(self)
        self.preview.ready.connect(self._preview_ready)
        self.scene = QGraphicsScene(self)
        self.view = SlideView(self.scene)
        self.overlay = CellOverlay(self.scene, self.document)
        self.overlay.options.heat_mode = self.settings.heat_mode
        self.overlay.options.heat_opacity = self.settings.heat_opacity
        self.view.cell_at = self.overlay.cell_at
        self.edit_tools = EditTools(self)
        self.view.tool = self.edit_tools
        self.view.cell_clicked.connect(lambda cell_id: cell_id >= 0 and self.select_cell(cell_id, centre=False))
        self.view.cell_menu.connect(self._show_cell_menu)
        self.view.files_dropped.connect(lambda paths: paths and self.open_image(paths[0]))
        self.view.zoom_changed.connect(lambda scale: self.zoom_label.setText(f"{scale * 100:.0f} %"))
        self.view.cursor_moved.connect(self._cursor_moved)

        self._build_central()
        self._build_docks()
        self._build_case()
        self._build_slide()
        self._build_explain()
        self._build_status()
        self.actions = Actions(self, self._slots())
        self.menus = self.actions.build_menus(
            [self.overview_dock, self.layers_dock, self.review_dock, self.differential_dock, self.similar_dock,
             self.audit_dock, self.slide_dock],
            self._fill_recent,
        )
        self.menus["review"].aboutToShow.connect(self._fill_review_menu)
        self._fill_review_menu()
        self.toolbar = self.actions.build_toolbar()
        self.edit_toolbar = self.actions.build_edit_toolbar(tuple(TOOLS))
        self.edit_tools.changed.append(self._edit_tool_changed)
        self.act_analyse, self.act_zoom_out = self.actions["analyse"], self.actions["zoom_out"]
        self.act_actual, self.act_fit = self.actions["actual_size"], self.actions["fit"]

        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(1500)
        self._autosave_timer.timeout.connect(self.autosave)
        self._connect_document()
        self.actions.update_undo("", "")
        self._update_models_label()
        self._update_enabled()
        self.resize(1440, 900)

    # ------------------------------------------------------------------ building

    def _preferred_settings(self) -> SessionSettings:
        """The user's preferences, for an image without a session."""
        prefs = self.settings
        return SessionSettings(
            confidence_threshold=prefs.confidence_threshold,
            target=prefs.target,
            heat_mode=prefs.heat_mode,
            heat_opacity=prefs.heat_opacity,
        )

    def _slots(self) -> dict[str, Callable[..., object]]:
        """What each keymap command does."""
        view = self.view
        return {
            "open": self.open_dialog, "open_sample": self.open_sample, "save": self.save_now,
            "export_csv": lambda: self.export_csv(), "export_png": lambda: self.export_png(),
            "export_pdf": lambda: report_dialog(self, self), "quit": self.close,
            "undo": self.document.undo, "redo": self.document.redo, "settings": self.settings_dialog,
            "zoom_in": lambda: view.zoom_by(1.25), "zoom_out": lambda: view.zoom_by(0.8),
            "fit": view.fit, "actual_size": view.actual_size,
            "heatmap": self.cycle_heatmap, "labels": lambda: self.layers.boxes["labels"].toggle(),
            "analyse": self.analyse, "analyse_slide": self.analyse_slide, "cancel": self._cancel, "pixel_size": self.pixel_size_dialog,
            **{command: lambda c=command: self.edit_tools.start(c) for command in TOOLS},
            "delete_cell": self.edit_tools.delete_selected,
            "next": self.go_next, "previous": self.go_previous, "accept": self._accept,
            "clear": self.clear_review, "classify_key": self.classify_key,
            "shortcuts": self.show_shortcuts, "about": self.show_about,
            "open_case": self.open_case_dialog, "next_field": self.next_field,
            "previous_field": self.previous_field, "analyse_case": self.analyse_case,
            "make_quiz": self.make_quiz, "teach": self.open_teaching, "open_quiz": self.open_quiz_file,
            "heat_kind": self.cycle_map_kind, "similar": self.show_similar,
        }  # fmt: skip

    def _connect_document(self) -> None:
        events = self.document.events
        events.analysis_changed.connect(self._show_analysis)
        events.cell_changed.connect(self._cell_changed)
        events.cells_replaced.connect(self._cells_replaced)
        events.calibration_changed.connect(lambda _cal: self._show_calibration())
        events.threshold_changed.connect(lambda _value: self._show_threshold())
        events.audit_appended.connect(self._audit_appended)
        events.dirty_changed.connect(lambda _dirty: self._update_title())
        events.modified.connect(self._schedule_autosave)
        events.undo_changed.connect(
            lambda: self.actions.update_undo(self.document.undo_stack.undo_text, self.document.undo_stack.redo_text)
        )

    def _fill_review_menu(self) -> None:
        self.actions.fill_review_menu(self.menus["review"], self.classes(), self.classify)

    def _fill_recent(self, menu: QMenu) -> None:
        menu.clear()
        recent = self.settings.recent
        for path in recent:
            menu.addAction(path).triggered.connect(lambda _=False, p=path: self.open_image(p))
        if not recent:
            menu.addAction("(none)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list").triggered.connect(self.settings.clear_recent)

    # ------------------------------------------------------------ the document, as seen by tests and scripts

    @property
    def session(self) -> Session | None:
        return self.document.session

    @property
    def analysis(self) -> Analysis | None:
        return self.document.analysis

    @property
    def models(self) -> list[ModelRun]:
        return self.document.models

    @property
    def path(self) -> Path | None:
        return self.document.path

    @property
    def dirty(self) -> bool:
        return self.document.dirty

    def classes(self) -> list[str]:
        return self.document.classes()

    def cells(self) -> list[Cell]:
        return self.document.cells

    def select_cell(self, cell_id: int | None, centre: bool = True) -> None:
        super().select_cell(cell_id, centre)
        self._explain_selection()  # the Similar cells panel and the occlusion map follow

    # ------------------------------------------------------------ messages

    def error(self, title: str, text: str) -> None:
        """Tell the user something failed; the window stays usable."""
        self.last_error = text
        self.statusBar().showMessage(f"{title}: {text}", 10000)
        if self.interactive:
            QMessageBox.critical(self, title, text)
        else:
            print(f"leukview: {title}: {text}", file=sys.stderr)

    def warn(self, title: str, text: str) -> None:
        self.statusBar().showMessage(text.split("\n")[0], 10000)
        if self.interactive:
            QMessageBox.warning(self, title, text)

    # ------------------------------------------------------------ presentation

    def _update_enabled(self) -> None:
        has_image, has_cells, busy = self.source is not None, self.session is not None, self.runner.busy
        enabled = {
            "analyse": has_image and not busy, "cancel": busy, "export_csv": self.has_report and not busy,
            "export_pdf": self.has_report and not busy, "save": has_cells and not busy, "export_png": has_image,
            "analyse_slide": self.slide_source is not None and not self.slide_busy, "pixel_size": has_image, "fit": has_image, "actual_size": has_image, "zoom_in": has_image,
            "zoom_out": has_image, "delete_cell": has_cells and not busy,
            **{command: has_cells and not busy for command in TOOLS},
        }  # fmt: skip
        enabled["cancel"] = busy or self.edit_tools.drawing
        for command, on in enabled.items():
            self.actions[command].setEnabled(on)

    def _update_title(self) -> None:
        name = self.path.name if self.path else ""
        self.setWindowTitle(f"{name}[*] — LeukView" if name else "LeukView")
        self.setWindowModified(self.dirty)

    def _update_models_label(self) -> None:
        if self.analysis is not None and self.analysis.models:
            runs = self.analysis.models
            names = ", ".join(f"{m.name} {m.version}" for m in runs)
            providers = sorted({provider_text(m.provider) for m in runs})
            self.models_label.setText(f"Models: {names} · {' / '.join(providers)}")
            self.models_label.setToolTip(
                "\n".join(f"{m.name} {m.version} on {m.provider}: {', '.join(m.classes)}" for m in runs)
            )
            return
        installed = [m for m in installed_models(self.models_dir) if m.spec is not None]
        if self.analysis is not None or not installed:
            self.models_label.setText("No model: segmentation only" if not installed else "Models: not used")
            self.models_label.setToolTip(f"Models folder: {self.model_cache.models_dir or 'default'}")
        else:
            names = ", ".join(f"{m.spec.name} {m.spec.version}" for m in installed if m.spec)
            self.models_label.setText(f"Models: {names} (loaded at analysis)")

    def _update_banner(self) -> None:
        messages = list(self.notices)
        problem = class_list_problem()  # a lab's class list that cannot be used is said, not silently replaced
        if problem:
            messages.append(f"<b>Class list</b>: {html.escape(problem)}")
        analysis = self.analysis
        if analysis is not None and not analysis.models:
            why = "Models are switched off in Settings" if not self.settings.use_models else "No classification model installed"
            messages.insert(
                0,
                f"<b>{why}</b>: cells are segmented and measured only. Classify white cells with the number "
                "keys (see the Review panel), or install or enable models and analyse again (Ctrl+R).",
            )
        field = self.document.settings.analysed_field if analysis is not None else None
        if analysis is not None and field is not None and (field[2] < analysis.width or field[3] < analysis.height):
            messages.append(
                f"Large image: the field at x={field[0]}, y={field[1]} ({field[2]}×{field[3]} px) was "
                "analysed. Move the view and press Ctrl+R to analyse another field."
            )
        self.banner.setText("<br>".join(messages))
        self.banner.setVisible(bool(messages))

    def _show_analysis(self) -> None:
        """Put the document's cells on screen: overlays, review, differential, audit (or clear them)."""
        cells = self.document.cells
        self.overlay.set_cells(cells)
        self.review.set_classes(self.classes())
        self.review.set_cells(cells)
        self.layers.set_classes(self.classes())
        self.layers.set_heat_models(self.models)
        self._update_differential()
        self.audit_list.clear()
        for entry in self.session.audit[-500:] if self.session is not None else []:
            self._audit_appended(entry, scroll=False)
        self.audit_list.scrollToBottom()
        self._update_models_label()
        self._update_banner()
        self._fill_review_menu()
        self._update_enabled()
        self._update_title()
        if self.session is not None:
            self.document.set_view_settings(
                target=self.differential.target_value(), heat_mode=self.layers.heat_mode,
                heat_opacity=self.overlay.options.heat_opacity,
            )  # fmt: skip
            order = self.review.visible_order()
            self.select_cell(order[0] if order else None, centre=False)
        else:
            self.selected = None

    def _update_differential(self) -> None:
        self.differential.update_counts(self.document.differential(), self.models, self.classes())
        self.differential.set_domain(*document_domain(self.document))

    def _cell_changed(self, cell_id: int) -> None:
        self.overlay.refresh_cell(cell_id)
        if self.review.model.row_of(cell_id) is None:
            self.review.set_cells(self.document.cells)  # a labelled red cell or platelet joins the list
        else:
            self.review.refresh_cell(cell_id)
        self.review.select_cell(self.selected)
        self._update_differential()

    def _cells_replaced(self, removed: list[int], added: list[int]) -> None:
        """A segmentation edit (or its undo): those cells went, these came; the counts follow."""
        self.overlay.remove_cells(removed)
        self.overlay.add_cells([c for c in self.document.cells if c.id in set(added)])
        self.review.set_cells(self.document.cells)
        self._update_differential()
        if self.selected in removed or self.selected is None:
            self.select_cell(added[0] if added else None, centre=False)
        else:
            self.review.select_cell(self.selected)

    # ------------------------------------------------------------ segmentation edit tools

    def _edit_tool_changed(self) -> None:
        active = self.edit_tools.active
        for command in TOOLS:
            self.actions[command].setChecked(active is not None and active.command == command)
        self._update_enabled()

    def _accept(self) -> None:
        """Enter: finish a drawing, else accept the call on the cell."""
        if self.edit_tools.drawing:
            self.edit_tools.finish()
        else:
            self.accept_call()

    def _cancel(self) -> None:
        """Esc: cancel a drawing, else the analysis."""
        if not self.edit_tools.cancel():
            self.cancel_analysis()

    def _audit_appended(self, entry: AuditEntry, scroll: bool = True) -> None:
        self.audit_list.addItem(f"{entry.time}  {entry.reviewer}  {entry.describe()}")
        if scroll:
            self.audit_list.scrollToBottom()

    def _show_threshold(self) -> None:
        self.overlay.refresh_all()
        self.review.resort()
        self._update_differential()

    def _show_calibration(self) -> None:
        calibration = self.document.calibration
        self.view.calibration = calibration
        self.view.viewport().update()
        self.overlay.refresh_all()
        self.review.calibration_changed()
        self.pixel_label.setText(
            "" if self.path is None
            else calibration.describe() if calibration.known
            else "Pixel size unknown (Image ▸ Set pixel size…)"
        )  # fmt: skip

    def _cursor_moved(self, point: QPointF) -> None:
        if self.source is None:
            return
        x, y = point.x(), point.y()
        if 0 <= x < self.source.width and 0 <= y < self.source.height:
            text = f"x {x:.0f}, y {y:.0f} px"
            um = self.document.calibration
            if um.known:
                text += f" ({um.length_um(x):.1f}, {um.length_um(y):.1f} µm)"
            self.cursor_label.setText(text)

    # ------------------------------------------------------------ opening and closing

    def open_dialog(self) -> None:
        start = str(self.path.parent) if self.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start, IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_sample(self) -> bool:
        return self.open_image(default_sample())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_image(paths[0])

    def open_image(self, path: str | os.PathLike[str], analyse: bool | None = None) -> bool:
        """Open an image (or a session file's image); restore its session or analyse it.

        Returns False, with an error dialog, when the file cannot be read; the
        image shown before stays open.
        """
        path = image_for(path)
        if self.opens_as_slide(path):  # shown at once, analysed tile by tile (slide_ui)
            return self.open_slide(path, analyse)
        from leukview.core import io as core_io

        try:
            info = core_io.image_info(path)
            if self.document.is_large(info.width, info.height) and "TIFF" in str(info.format).upper():
                source: TileSource = RegionTileSource(path, info)  # read tile by tile from disk
            else:
                source = ArrayTileSource(core_io.read_image(path))
            item = TiledImageItem(source)
        except LeukViewError as exc:
            self.error("Cannot open image", f"{path.name}\n\n{exc.reason}")
            return False
        except MemoryError:
            self.error("Cannot open image", f"{path.name}\n\nNot enough memory to open this image.")
            return False
        except OSError as exc:  # e.g. a folder or a device instead of a file
            self.error("Cannot open image", f"{path.name}\n\n{exc.strerror or exc}")
            return False
        if not self.maybe_save():
            item.close()
            return False
        self.close_image()
        self.source, self.image_item = source, item
        self.scene.addItem(item)
        self.view.set_image_rect(item.boundingRect())
        self.overview.set_image(item.thumbnail, source.width, source.height)
        item.thumbnail_changed.append(lambda image: self.overview.set_image(image, source.width, source.height))
        self.stack.setCurrentWidget(self.view)
        self.document.open(path, info)
        self.settings.add_recent(str(path.resolve()))
        QTimer.singleShot(0, self.view.fit)
        self.view.fit()
        self._update_title()
        self.statusBar().showMessage(f"Opened {path.name}: {source.width} × {source.height} px", 5000)
        outcome = self.document.restore()
        self.present_restore(outcome)
        if not outcome.restored and (self.settings.analyse_on_open if analyse is None else analyse):
            self.analyse()
        self._show_calibration()
        self._update_enabled()
        self._update_models_label()
        self._update_banner()
        return True

    def close_image(self) -> None:
        """Save and forget the current image (the window stays open)."""
        self.close_slide()
        self.runner.retire()
        self._set_busy(False)
        self._autosave_timer.stop()
        self.notices = []
        self.document.close()  # saves first when autosave is on; its events clear the views
        self.overlay.clear()
        if self.image_item is not None:
            self.scene.removeItem(self.image_item)
            self.image_item.close()
        self.image_item = None
        self.source = None
        self.selected = None
        self.overview.clear()
        self.stack.setCurrentWidget(self.welcome)
        self._show_calibration()
        self._update_banner()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.maybe_save():
            event.ignore()
            return
        self.runner.stop()
        self.stop_case_analysis()
        self.stop_slide_analysis()
        self.preview.wait(2000)
        if self.image_item is not None:
            self.image_item.close()
        self.settings.store.setValue("window/geometry", self.saveGeometry())
        self.settings.store.setValue("window/state", self.saveState())
        self.settings.sync()
        super().closeEvent(event)

    def restore_layout(self) -> None:
        geometry = self.settings.store.value("window/geometry")
        state = self.settings.store.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # ------------------------------------------------------------ view settings

    def _heat_mode_changed(self, mode: str) -> None:
        self.settings.heat_mode = mode
        self.document.defaults.heat_mode = mode
        self.document.set_view_settings(heat_mode=mode)

    def _heat_opacity_changed(self, opacity: float) -> None:
        self.settings.heat_opacity = opacity
        self.document.defaults.heat_opacity = opacity
        self.document.set_view_settings(heat_opacity=opacity)

    def set_heat_mode(self, mode: str) -> None:
        self.layers.set_heat_mode(mode)

    def cycle_heatmap(self) -> None:
        mode = self.layers.cycle_heat_mode()
        self.statusBar().showMessage(f"Heatmap: {HEAT_MODE_NAMES[mode]}", 3000)

    def _target_changed(self, value: int) -> None:
        self.settings.target = value
        self.document.defaults.target = value
        self.document.set_view_settings(target=value)
        self._update_differential()

    def pixel_size_dialog(self) -> None:
        rbc = self.analysis.rbc_diameter_px if self.analysis else None
        dialog = PixelSizeDialog(self.document.calibration, rbc, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            try:
                self.set_calibration(dialog.calibration())
            except LeukViewError as exc:
                self.error("Pixel size", exc.reason)

    def set_calibration(self, calibration: Calibration) -> None:
        """Set the pixel size (audited and saved; every µm figure shown follows)."""
        self.document.set_calibration(calibration)

    # ------------------------------------------------------------ help

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", shortcuts_html(self.classes()))

    def show_about(self) -> None:
        QMessageBox.about(self, "About LeukView", about_html())


def default_sample() -> Path:
    """The bundled sample (or the first image in resources/samples when it is not there)."""
    from leukview.core.paths import resources_dir, sample_image

    sample = sample_image()
    if sample.is_file():
        return sample
    folder = resources_dir() / "samples"
    found = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"))
    return found[0] if found else sample

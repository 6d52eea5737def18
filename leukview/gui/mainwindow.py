"""LeukView's main window: the slide, its overlays, review, differential, session, exports."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QStandardPaths, Qt, QTimer, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGraphicsScene,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSlider,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from leukview import __version__
from leukview.core.analysis import Analysis
from leukview.core.cells import Cell
from leukview.core.errors import LeukViewError, SessionError
from leukview.core.export import (
    cell_call,
    review_classes,
    write_cells_csv,
)
from leukview.core.preprocess import CropRule, crop_box
from leukview.core.session import (
    AuditAction,
    Session,
    SessionSettings,
    current_user,
    fallback_session_path,
    load_session,
    save_session,
    session_path,
)

from .cellinfo import class_colour, pretty, provider_text
from .commands import ReviewCommand
from .differential import DifferentialPanel
from .overlays import CellOverlay
from .report import ReportContent, render_scene, save_png, write_pdf_report
from .review import ReviewPanel, key_for
from .settings import AppSettings, SettingsDialog
from .tiles import ArrayTileSource, RegionTileSource, TiledImageItem, TileSource
from .viewer import Overview, SlideView
from .worker import (
    AnalysisJob,
    AnalysisOutcome,
    AnalysisRequest,
    AnalysisRunner,
    ModelCache,
    SegmentationPreview,
    installed_models,
)

#: Images with more pixels are shown tile by tile from disk and analysed one field at a time.
LARGE_IMAGE_PIXELS = 36_000_000
#: The largest field analysed at once in a large image (level-0 pixels a side).
MAX_FIELD_SIDE = 4096
#: A typical red-cell diameter, for estimating the pixel size from the image.
RBC_DIAMETER_UM = 7.5
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.ome.tif *.ome.tiff);;Sessions (*.leukview.json);;All files (*)"
GALLERY_RULE = CropRule(scale=1.4, min_side=24, background="keep")


class PixelSizeDialog(QDialog):
    """Set the pixel size by hand, or estimate it from the red cells."""

    def __init__(self, current: float | None, rbc_diameter_px: float | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Pixel size")
        self.estimated = False
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(4)
        self.spin.setRange(0.0, 100.0)
        self.spin.setSingleStep(0.01)
        self.spin.setSuffix(" µm/px")
        self.spin.setSpecialValueText("unknown")
        self.spin.setValue(current or 0.0)
        self.spin.valueChanged.connect(self._edited)
        form = QFormLayout()
        form.addRow("Micrometres per pixel", self.spin)
        estimate = QPushButton(f"Estimate from red cells ({RBC_DIAMETER_UM} µm)")
        estimate.setEnabled(bool(rbc_diameter_px))
        estimate.setToolTip(
            "Assumes the median red cell of this field is 7.5 µm across: a rough scale for a smear "
            "whose file does not say its pixel size."
        )
        estimate.clicked.connect(lambda: self._estimate(rbc_diameter_px))
        note = QLabel(
            "The scale bar, µm measurements and the report use this value. Calibrate with a stage "
            "micrometer for measurements you rely on."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(estimate)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def _estimate(self, rbc_diameter_px: float | None) -> None:
        if rbc_diameter_px:
            self.spin.blockSignals(True)
            self.spin.setValue(RBC_DIAMETER_UM / rbc_diameter_px)
            self.spin.blockSignals(False)
            self.estimated = True

    def _edited(self) -> None:
        self.estimated = False

    def value(self) -> float | None:
        return self.spin.value() or None


class MainWindow(QMainWindow):
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
        self.path: Path | None = None
        self.source: TileSource | None = None
        self.image_item: TiledImageItem | None = None
        self.session: Session | None = None
        self.session_file: Path | None = None
        self.pixel_size_um: float | None = None
        self.pixel_size_source = ""
        self.selected: int | None = None
        self.dirty = False
        self.last_error: str | None = None
        self.notices: list[str] = []
        self._field_rect: tuple[int, int, int, int] | None = None

        self.setWindowTitle("LeukView")
        self.setAcceptDrops(True)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.indexChanged.connect(self._review_changed_any)
        self.runner = AnalysisRunner(self)
        self.preview = SegmentationPreview(self)
        self.preview.ready.connect(self._preview_ready)
        self._settings_dialog: SettingsDialog | None = None

        self.scene = QGraphicsScene(self)
        self.view = SlideView(self.scene)
        self.overlay = CellOverlay(self.scene)
        self.overlay.threshold = self.settings.confidence_threshold
        self.overlay.options.heat_mode = self.settings.heat_mode
        self.overlay.options.heat_opacity = self.settings.heat_opacity
        self.view.cell_at = self.overlay.cell_at
        self.view.cell_clicked.connect(self._view_clicked)
        self.view.cell_menu.connect(self._show_cell_menu)
        self.view.files_dropped.connect(self._files_dropped)
        self.view.zoom_changed.connect(self._zoom_changed)
        self.view.cursor_moved.connect(self._cursor_moved)

        self._build_central()
        self._build_docks()
        self._build_status()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()

        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(1500)
        self._autosave_timer.timeout.connect(self.autosave)
        self._update_models_label()
        self._update_enabled()
        self.resize(1440, 900)

    # ------------------------------------------------------------------ UI

    def _build_central(self) -> None:
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel { background: #FFF4CE; color: #4A3B00; padding: 6px 10px; border-bottom: 1px solid #E0C060; }"
        )
        self.banner.setVisible(False)
        self.welcome = QLabel(
            "<div style='text-align:center'><h2>LeukView</h2>"
            "<p>Open a blood-smear image: <b>File ▸ Open</b> (Ctrl+O), drop a file here,<br>"
            "or <b>File ▸ Open sample</b>.</p>"
            "<p style='color:gray'>Decision support only: not a diagnosis.</p></div>"
        )
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.welcome.setStyleSheet("QLabel { background: #303034; color: #DDD; }")
        stack_host = QWidget()
        self.stack = QStackedLayout(stack_host)
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.view)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(stack_host, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.overview = Overview()
        self.overview.navigate.connect(lambda p: self.view.centre_on(p))
        self.view.view_changed.connect(self.overview.set_visible_rect)
        self.overview_dock = self._dock("Overview", self.overview, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.layers = self._build_layers()
        self.layers_dock = self._dock("Layers", self.layers, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.review = ReviewPanel()
        self.review.crop = self.crop_for
        self.review.cell_selected.connect(self._review_selected)
        self.review.next_requested.connect(self.go_next)
        self.review.table.customContextMenuRequested.connect(self._table_menu)
        self.review.gallery.customContextMenuRequested.connect(self._gallery_menu)
        self.review_dock = self._dock("Review", self.review, Qt.DockWidgetArea.RightDockWidgetArea)

        self.differential = DifferentialPanel()
        self.differential.set_target(self.settings.target)
        self.differential.target_changed.connect(self._target_changed)
        self.differential_dock = self._dock(
            "Differential count", self.differential, Qt.DockWidgetArea.RightDockWidgetArea
        )

        self.audit_list = QListWidget()
        self.audit_list.setAlternatingRowColors(True)
        self.audit_dock = self._dock("Audit log", self.audit_list, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.audit_dock.setVisible(False)

        self.splitDockWidget(self.review_dock, self.differential_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.review_dock], [470], Qt.Orientation.Horizontal)
        self.resizeDocks([self.overview_dock], [250], Qt.Orientation.Horizontal)
        self.resizeDocks([self.review_dock, self.differential_dock], [430, 470], Qt.Orientation.Vertical)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_").lower())
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_layers(self) -> QWidget:
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(6, 6, 6, 6)
        opts = self.overlay.options

        shown = QGroupBox("Show")
        shown_layout = QVBoxLayout(shown)
        self.layer_boxes: dict[str, QCheckBox] = {}
        for key, title in (
            ("wbc", "White cells"),
            ("labels", "Labels (class, confidence)"),
            ("rbc", "Red cells"),
            ("platelets", "Platelets"),
            ("nuclei", "Nuclei outlines"),
        ):
            box = QCheckBox(title)
            box.setChecked(getattr(opts, key))
            box.toggled.connect(lambda on, k=key: self._set_layer(k, on))
            shown_layout.addWidget(box)
            self.layer_boxes[key] = box
        layout.addWidget(shown)

        heat = QGroupBox("Heatmap (class activation)")
        heat_layout = QVBoxLayout(heat)
        self.heat_buttons = QButtonGroup(panel)
        for mode, title in (("off", "Off"), ("selected", "Selected cell"), ("all", "All cells (field)")):
            button = QRadioButton(title)
            button.setChecked(opts.heat_mode == mode)
            button.setProperty("mode", mode)
            self.heat_buttons.addButton(button)
            heat_layout.addWidget(button)
        self.heat_buttons.buttonToggled.connect(self._heat_mode_changed)
        self.heat_model = QComboBox()
        self.heat_model.addItem("Model behind each call", None)
        self.heat_model.currentIndexChanged.connect(self._heat_model_changed)
        heat_layout.addWidget(self.heat_model)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(opts.heat_opacity * 100))
        self.opacity.valueChanged.connect(self._opacity_changed)
        self.opacity.setToolTip("Heatmap opacity")
        opacity_row.addWidget(self.opacity, 1)
        heat_layout.addLayout(opacity_row)
        self.heat_note = QLabel("")
        self.heat_note.setWordWrap(True)
        self.heat_note.setStyleSheet("color: gray;")
        heat_layout.addWidget(self.heat_note)
        layout.addWidget(heat)

        self.class_group = QGroupBox("Classes")
        self.class_layout = QVBoxLayout(self.class_group)
        self.class_boxes: dict[str, QCheckBox] = {}
        layout.addWidget(self.class_group)
        layout.addStretch(1)
        return panel

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_analysis)
        self.cursor_label = QLabel("")
        self.zoom_label = QLabel("")
        self.pixel_label = QLabel("")
        self.pixel_label.setToolTip("Image ▸ Set pixel size… to change it")
        self.models_label = QLabel("")
        self.models_label.setObjectName("modelsLabel")
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.cursor_label)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.pixel_label)
        bar.addPermanentWidget(self.models_label)

    def _action(self, text: str, slot: Any, shortcuts: Any = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcuts is not None:
            if isinstance(shortcuts, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcuts])
            else:
                action.setShortcut(QKeySequence(shortcuts))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.act_open = a("&Open image…", self.open_dialog, QKeySequence.StandardKey.Open)
        self.act_sample = a("Open &sample", self.open_sample)
        self.act_save = a("&Save session", self.save_now, QKeySequence.StandardKey.Save)
        self.act_csv = a("Export cells as &CSV…", lambda: self.export_csv())
        self.act_png = a("Export &PNG snapshot…", lambda: self.export_png())
        self.act_pdf = a("Export PDF &report…", lambda: self.export_pdf(), "Ctrl+P")
        self.act_quit = a("&Quit", self.close, QKeySequence.StandardKey.Quit)

        self.act_undo = self.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts(_keys(["Ctrl+Z"], QKeySequence.StandardKey.Undo))
        self.act_redo = self.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts(_keys(["Ctrl+Shift+Z", "Ctrl+Y"], QKeySequence.StandardKey.Redo))
        for action in (self.act_undo, self.act_redo):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(action)

        self.act_zoom_in = a("Zoom &in", lambda: self.view.zoom_by(1.25), ["+", "=", "Ctrl++"])
        self.act_zoom_out = a("Zoom &out", lambda: self.view.zoom_by(0.8), ["-", "Ctrl+-"])
        self.act_fit = a("&Fit to window", self.view.fit, ["F", "Ctrl+0"])
        self.act_actual = a("&Actual size (1:1)", self.view.actual_size, ["Ctrl+1"])
        self.act_actual.setIconText("1:1")
        self.act_heat = a("Cycle &heatmap (off / cell / field)", self.cycle_heatmap, "H")
        self.act_heat.setIconText("Heatmap (H)")
        self.act_labels = a("Toggle &labels", lambda: self.layer_boxes["labels"].toggle(), "L")

        self.act_analyse = a("&Analyse", self.analyse, "Ctrl+R", "Segment and classify the image")
        self.act_cancel = a("&Cancel analysis", self.cancel_analysis, "Esc")
        self.act_pixel = a("Set &pixel size…", self.pixel_size_dialog)
        self.act_settings = a("&Settings…", self.settings_dialog, QKeySequence.StandardKey.Preferences)

        self.act_next = a("&Next cell", self.go_next, ["N", "Space"], "Next unreviewed cell in review order")
        self.act_prev = a("&Previous cell", self.go_previous, ["P", "Shift+Space"])
        self.act_accept = a("&Accept the call", self.accept_call, ["Return", "Enter"])
        self.act_clear = a("C&lear review", self.clear_review, ["Backspace", "Delete"])
        self.class_actions: list[QAction] = []
        for key in "1234567890":
            action = a(f"Class {key}", lambda _=False, k=key: self.classify_key(k), key)
            self.class_actions.append(action)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addAction(self.act_sample)
        file_menu.addSeparator()
        file_menu.addAction(self.act_save)
        file_menu.addSeparator()
        file_menu.addAction(self.act_csv)
        file_menu.addAction(self.act_png)
        file_menu.addAction(self.act_pdf)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)

        edit = bar.addMenu("&Edit")
        edit.addAction(self.act_undo)
        edit.addAction(self.act_redo)
        edit.addSeparator()
        edit.addAction(self.act_settings)

        view = bar.addMenu("&View")
        for action in (self.act_zoom_in, self.act_zoom_out, self.act_fit, self.act_actual):
            view.addAction(action)
        view.addSeparator()
        view.addAction(self.act_heat)
        view.addAction(self.act_labels)
        view.addSeparator()
        for dock in (self.overview_dock, self.layers_dock, self.review_dock, self.differential_dock, self.audit_dock):
            view.addAction(dock.toggleViewAction())

        image = bar.addMenu("&Image")
        image.addAction(self.act_analyse)
        image.addAction(self.act_cancel)
        image.addAction(self.act_pixel)

        self.review_menu = bar.addMenu("&Review")
        self.review_menu.aboutToShow.connect(self._fill_review_menu)
        self._fill_review_menu()

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", self.show_shortcuts, "F1"))
        help_menu.addAction(self._action("&About LeukView", self.show_about))

    def _build_toolbar(self) -> None:
        from PySide6.QtWidgets import QStyle, QToolBar

        bar = QToolBar("Main", self)
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        style = self.style()
        icons = {
            self.act_open: QStyle.StandardPixmap.SP_DialogOpenButton,
            self.act_analyse: QStyle.StandardPixmap.SP_MediaPlay,
            self.act_fit: QStyle.StandardPixmap.SP_TitleBarMaxButton,
            self.act_save: QStyle.StandardPixmap.SP_DialogSaveButton,
            self.act_pdf: QStyle.StandardPixmap.SP_FileDialogDetailedView,
        }
        for action, pixmap in icons.items():
            action.setIcon(style.standardIcon(pixmap))
        for action, text in ((self.act_open, "Open"), (self.act_analyse, "Analyse"), (self.act_fit, "Fit"),
                             (self.act_save, "Save"), (self.act_pdf, "PDF report")):  # fmt: skip
            action.setIconText(text)
        for action in (self.act_open, self.act_analyse, None, self.act_fit, self.act_actual, None,
                       self.act_heat, None, self.act_save, self.act_pdf):  # fmt: skip
            if action is None:
                bar.addSeparator()
            else:
                bar.addAction(action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar

    def _fill_review_menu(self) -> None:
        menu = self.review_menu
        menu.clear()
        for action in (self.act_next, self.act_prev, self.act_accept, self.act_clear):
            menu.addAction(action)
        menu.addSeparator()
        classes = self.classes()
        for index, name in enumerate(classes):
            key = key_for(index, len(classes))
            action = menu.addAction(f"Classify as {pretty(name)}" + (f"\t{key}" if key else ""))
            action.triggered.connect(lambda _=False, n=name: self.classify(n))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_image(p))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(self.settings.clear_recent)

    # ------------------------------------------------------------ helpers

    def error(self, title: str, text: str) -> None:
        """Tell the user something failed; the window stays usable."""
        self.last_error = text
        self.statusBar().showMessage(f"{title}: {text}", 10000)
        if self.interactive:
            QMessageBox.critical(self, title, text)
        else:
            import sys

            print(f"leukview: {title}: {text}", file=sys.stderr)

    def warn(self, title: str, text: str) -> None:
        self.statusBar().showMessage(text, 10000)
        if self.interactive:
            QMessageBox.warning(self, title, text)

    @property
    def analysis(self) -> Analysis | None:
        return self.session.analysis if self.session else None

    @property
    def models(self) -> list:
        return self.analysis.models if self.analysis else []

    def classes(self) -> list[str]:
        return review_classes(self.models)

    def cells(self) -> list[Cell]:
        return self.analysis.cells if self.analysis else []

    def _update_enabled(self) -> None:
        has_image = self.source is not None
        has_cells = self.session is not None
        busy = self.runner.busy
        self.act_analyse.setEnabled(has_image and not busy)
        self.act_cancel.setEnabled(busy)
        for action in (self.act_csv, self.act_pdf, self.act_save):
            action.setEnabled(has_cells and not busy)
        self.act_png.setEnabled(has_image)
        self.act_pixel.setEnabled(has_image)
        for action in (self.act_fit, self.act_actual, self.act_zoom_in, self.act_zoom_out):
            action.setEnabled(has_image)

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
        if self.analysis is not None and not self.analysis.models:
            why = (
                "Models are switched off in Settings"
                if not self.settings.use_models
                else "No classification model installed"
            )
            messages.insert(
                0,
                f"<b>{why}</b>: cells are segmented and measured only. "
                "Classify white cells with the number keys (see the Review panel), or install or "
                "enable models and analyse again (Ctrl+R).",
            )
        if self.session is not None and self.analysis is not None:
            field = self._field_rect
            if field is not None and (field[2] < self.analysis.width or field[3] < self.analysis.height):
                messages.append(
                    f"Large image: the field at x={field[0]}, y={field[1]} ({field[2]}×{field[3]} px) was "
                    "analysed. Move the view and press Ctrl+R to analyse another field."
                )
        self.banner.setText("<br>".join(messages))
        self.banner.setVisible(bool(messages))

    # ------------------------------------------------------------ opening

    def open_dialog(self) -> None:
        start = str(self.path.parent) if self.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start, IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_sample(self) -> bool:
        return self.open_image(default_sample())

    def _files_dropped(self, paths: list) -> None:
        if paths:
            self.open_image(paths[0])

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
        path = Path(path)
        if path.name.endswith(".leukview.json"):
            path = path.with_name(path.name[: -len(".leukview.json")])
        from leukview.core import io as core_io

        try:
            info = core_io.image_info(path)
            large = int(info.width) * int(info.height) > LARGE_IMAGE_PIXELS
            if large and "TIFF" in str(info.format).upper():
                # read tile by tile from disk; other formats cannot be read by region cheaply
                source: TileSource = RegionTileSource(path, info)
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
        self.path = path
        self.source = source
        self.image_item = item
        self.scene.addItem(item)
        self.view.set_image_rect(item.boundingRect())
        self.overview.set_image(item.thumbnail, source.width, source.height)
        item.thumbnail_changed.append(lambda image: self.overview.set_image(image, source.width, source.height))
        self.stack.setCurrentWidget(self.view)
        self.pixel_size_um = getattr(info, "pixel_size_um", None) or None
        self.pixel_size_source = "from the file" if self.pixel_size_um else ""
        self.settings.add_recent(str(path.resolve()))
        QTimer.singleShot(0, self.view.fit)
        self.view.fit()
        self._update_title()
        self.statusBar().showMessage(f"Opened {path.name}: {source.width} × {source.height} px", 5000)

        restored = self._restore_session()
        if not restored and (self.settings.analyse_on_open if analyse is None else analyse):
            self.analyse()
        self._apply_pixel_size()
        self._update_enabled()
        self._update_models_label()
        self._update_banner()
        return True

    def close_image(self) -> None:
        """Save and forget the current image (the window stays open)."""
        self.runner.retire()
        self._set_busy(False)
        if self.dirty and self.settings.autosave:
            self.autosave()
        self.undo_stack.clear()
        self.overlay.clear()
        if self.image_item is not None:
            self.scene.removeItem(self.image_item)
            self.image_item.close()
        self.image_item = None
        self.source = None
        self.session = None
        self.session_file = None
        self.selected = None
        self.dirty = False
        self.notices = []
        self._field_rect = None
        self.review.set_cells([], [], self.settings.confidence_threshold)
        self.differential.update_counts([], [])
        self.audit_list.clear()
        self.overview.clear()
        self.stack.setCurrentWidget(self.welcome)
        self._update_banner()

    def _session_candidates(self) -> list[Path]:
        assert self.path is not None
        return [session_path(self.path), fallback_session_path(self.path, sessions_folder())]

    def _restore_session(self) -> bool:
        assert self.path is not None and self.source is not None
        for candidate in self._session_candidates():
            if not candidate.is_file():
                continue
            try:
                session = load_session(candidate)
            except SessionError as exc:
                self.warn(
                    "Session not restored",
                    f"The saved session {candidate.name} could not be read: {exc.reason}\n\n"
                    "The image is analysed afresh; the damaged file is kept as "
                    f"{candidate.name}.damaged.",
                )
                if not self.read_only:
                    with contextlib.suppress(OSError):  # keep it where it is if it cannot move
                        os.replace(candidate, candidate.with_name(candidate.name + ".damaged"))
                return False
            problem = session.matches_image(self.path, self.source.width, self.source.height)
            if problem and "changed" not in problem:
                self.warn("Session not restored", f"{candidate.name} does not belong to this image: {problem}.")
                return False
            if problem:
                self.notices.append(f"Note: {problem}; the saved review was restored anyway.")
            self.session = session
            self.session_file = candidate
            calibration = session.analysis.calibration
            if calibration.known and not self.pixel_size_um:
                self.pixel_size_um = calibration.pixel_size_um
                self.pixel_size_source = calibration.describe().split("(", 1)[-1].rstrip(")")
            self._field_rect = session.settings.analysed_field
            self._show_analysis()
            reviewed = sum(1 for c in session.analysis.cells if c.review.reviewed)
            self.statusBar().showMessage(
                f"Session restored from {candidate.name}: {reviewed} reviewed cell(s), "
                f"{len(session.audit)} audit entries",
                8000,
            )
            return True
        return False

    # ------------------------------------------------------------ analysis

    def analyse(self) -> None:
        """Analyse the image (or, for a large image, the field in view) in a worker thread."""
        if self.source is None or self.path is None:
            return
        reviewed = sum(1 for c in self.cells() if c.review.reviewed)
        if reviewed and self.interactive:
            answer = QMessageBox.question(
                self,
                "Analyse again?",
                f"Analysing again replaces the current cells and their {reviewed} review(s). "
                "The audit log keeps what was done. Continue?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        from leukview.core.segment import SegmentationParams

        try:
            params = SegmentationParams.from_dict(self.settings.segmentation)
        except (LeukViewError, TypeError, ValueError) as exc:
            self.warn("Segmentation settings", f"Invalid segmentation settings ({exc}); using the defaults.")
            params = SegmentationParams()
        x, y, w, h = self._analysis_field()
        try:
            field = self._read_field(x, y, w, h)
        except LeukViewError as exc:
            self.error("Cannot analyse", exc.reason)
            return
        request = AnalysisRequest(
            image=field,
            params=params,
            pixel_size_um=self.pixel_size_um,
            image_name=str(self.path),
            model_names=self.settings.model_names or None,
            use_models=self.settings.use_models,
            offset=(x, y),
            full_size=(self.source.width, self.source.height),
        )
        job = AnalysisJob(request, self.model_cache)
        job.progress.connect(self._analysis_progress)
        job.succeeded.connect(self._analysis_done)
        job.failed.connect(self._analysis_failed)
        job.cancelled.connect(self._analysis_cancelled)
        self.runner.start(job)
        self._set_busy(True)

    def _analysis_field(self) -> tuple[int, int, int, int]:
        assert self.source is not None
        width, height = self.source.width, self.source.height
        if width * height <= LARGE_IMAGE_PIXELS:
            return 0, 0, width, height
        visible = self.view.visible_rect().intersected(QRectF(0, 0, width, height))
        centre = visible.center() if not visible.isEmpty() else QPointF(width / 2, height / 2)
        w = int(min(width, MAX_FIELD_SIDE, max(visible.width(), 512)))
        h = int(min(height, MAX_FIELD_SIDE, max(visible.height(), 512)))
        x = int(min(max(centre.x() - w / 2, 0), width - w))
        y = int(min(max(centre.y() - h / 2, 0), height - h))
        return x, y, w, h

    def _read_field(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        assert self.source is not None
        if isinstance(self.source, ArrayTileSource):
            return self.source.image[y : y + h, x : x + w]
        return np.ascontiguousarray(self.source.read_level(0, x, y, w, h))

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat("analysing…")
        self._update_enabled()

    def cancel_analysis(self) -> None:
        if self.runner.busy:
            self.runner.cancel()
            self.statusBar().showMessage("Cancelling…")

    @Slot(float, str)
    def _analysis_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(fraction * 100)))
        self.progress.setFormat(f"{message} %p%")

    @Slot(object)
    def _analysis_done(self, outcome: AnalysisOutcome) -> None:
        self._set_busy(False)
        self.runner.retire()  # the job is done; its thread ends on its own
        self._update_enabled()
        analysis = outcome.analysis
        if self.source is None or (analysis.width, analysis.height) != (self.source.width, self.source.height):
            return  # the image was closed meanwhile
        analysis.pixel_size_um = self.pixel_size_um
        self.notices = list(outcome.notices)
        params = outcome.request.params if outcome.request is not None else None
        field = outcome.field
        settings = SessionSettings(
            models=[m.name for m in analysis.models],
            segmentation=params.to_dict() if params is not None else {},
            confidence_threshold=self.settings.confidence_threshold,
            analysed_field=field,
            target=self.settings.target,
            heat_mode=self.settings.heat_mode,
            heat_opacity=self.settings.heat_opacity,
        )
        previous = self.session
        self.session = Session.new(analysis, self.path, settings=settings)
        if previous is not None:  # a re-analysis keeps the history of the image
            self.session.audit = previous.audit + self.session.audit
            self.session.created = previous.created
        self._field_rect = field
        self.undo_stack.clear()
        self._show_analysis()
        if outcome.notices:
            self.warn("Models", "\n".join(outcome.notices))
        counts = analysis.counts_by_kind()
        self.statusBar().showMessage(
            f"Analysed: {_plural(counts['wbc'], 'white cell')}, {_plural(counts['rbc'], 'red cell')}, "
            f"{_plural(counts['platelet'], 'platelet')}",
            8000,
        )
        self._mark_dirty()

    @Slot(str)
    def _analysis_failed(self, reason: str) -> None:
        self._set_busy(False)
        self.runner.retire()  # the job is done; its thread ends on its own
        self._update_enabled()
        self.error("Analysis failed", reason)

    @Slot()
    def _analysis_cancelled(self) -> None:
        self._set_busy(False)
        self.runner.retire()  # the job is done; its thread ends on its own
        self._update_enabled()
        self.statusBar().showMessage("Analysis cancelled; nothing was changed", 5000)

    def wait_for_analysis(self, timeout_ms: int = 120000) -> bool:
        """Process events until the running analysis ends (screenshots, tests)."""
        import time

        deadline = time.monotonic() + timeout_ms / 1000
        while self.runner.busy or self.progress.isVisible():
            QApplication.processEvents()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        QApplication.processEvents()
        return True

    def _show_analysis(self) -> None:
        """Put the session's cells on screen: overlays, review, differential, audit."""
        assert self.session is not None
        analysis = self.session.analysis
        threshold = self.settings.confidence_threshold
        self.overlay.threshold = threshold
        self.overlay.pixel_size_um = self.pixel_size_um
        self.overlay.set_cells(analysis.cells, analysis.models)
        self.review.set_classes(self.classes())
        self.review.set_pixel_size(self.pixel_size_um)
        self.review.set_cells(analysis.cells, analysis.models, threshold)
        self._rebuild_class_boxes()
        self._rebuild_heat_models()
        self.differential.update_counts(analysis.cells, analysis.models)
        self._refresh_audit()
        self._update_models_label()
        self._update_banner()
        self._fill_review_menu()
        self._update_enabled()
        order = self.review.visible_order()
        self.select_cell(order[0] if order else None, centre=False)

    def _rebuild_class_boxes(self) -> None:
        for box in self.class_boxes.values():
            self.class_layout.removeWidget(box)
            box.deleteLater()
        self.class_boxes = {}
        for name in [*self.classes(), "unclassified"]:
            box = QCheckBox(pretty(name))
            box.setChecked(name not in self.overlay.options.hidden_classes)
            colour = "#D0D0D0" if name == "unclassified" else class_colour(name).name()
            box.setStyleSheet(f"QCheckBox {{ color: palette(text); }} QCheckBox::indicator:checked {{ background: {colour}; border: 1px solid #555; }}")
            box.toggled.connect(lambda on, n=name: self._set_class_visible(n, on))
            self.class_layout.addWidget(box)
            self.class_boxes[name] = box

    def _rebuild_heat_models(self) -> None:
        self.heat_model.blockSignals(True)
        self.heat_model.clear()
        self.heat_model.addItem("Model behind each call", None)
        for run in self.models:
            self.heat_model.addItem(f"{run.name} {run.version}", run.name)
        self.heat_model.blockSignals(False)
        if not self.models:
            self.heat_note.setText("No model: no heatmap.")
        elif not self.overlay.has_heatmaps():
            self.heat_note.setText("These models give no class-activation maps.")
        else:
            self.heat_note.setText("Red: where the model looked for its call.")

    # ------------------------------------------------------------ overlays

    def _set_layer(self, key: str, on: bool) -> None:
        setattr(self.overlay.options, key, on)
        self.overlay.apply_options()

    def _set_class_visible(self, name: str, on: bool) -> None:
        hidden = self.overlay.options.hidden_classes
        if on:
            hidden.discard(name)
        else:
            hidden.add(name)
        self.overlay.apply_options()

    def _heat_mode_changed(self, button: QRadioButton, checked: bool) -> None:
        if checked:
            self.overlay.options.heat_mode = str(button.property("mode"))
            self.settings.heat_mode = self.overlay.options.heat_mode
            self.overlay.apply_options()

    def set_heat_mode(self, mode: str) -> None:
        for button in self.heat_buttons.buttons():
            if button.property("mode") == mode:
                button.setChecked(True)

    def cycle_heatmap(self) -> None:
        modes = ["off", "selected", "all"]
        current = self.overlay.options.heat_mode
        self.set_heat_mode(modes[(modes.index(current) + 1) % len(modes)])
        names = {"off": "off", "selected": "selected cell", "all": "all cells (field)"}
        self.statusBar().showMessage(f"Heatmap: {names[self.overlay.options.heat_mode]}", 3000)

    def _heat_model_changed(self, _index: int) -> None:
        self.overlay.options.heat_model = self.heat_model.currentData()
        self.overlay.apply_options()

    def _opacity_changed(self, value: int) -> None:
        self.overlay.options.heat_opacity = value / 100.0
        self.settings.heat_opacity = value / 100.0
        self.overlay.apply_options()

    # ------------------------------------------------------------ selection

    def select_cell(self, cell_id: int | None, centre: bool = True) -> None:
        """Select a cell everywhere (overlay, table, gallery) and centre the view on it."""
        self.selected = cell_id
        self.overlay.select(cell_id)
        self.review.select_cell(cell_id)
        if cell_id is None or self.session is None:
            return
        try:
            cell = self.session.cell(cell_id)
        except KeyError:
            return
        if centre:
            self.view.centre_on(QPointF(*cell.centroid), min_size=cell.diameter)
        call = cell_call(cell, self.models)
        text = f"Cell {cell.id}: {pretty(call.label)}"
        if call.reviewed:
            text += f" (reviewed by {cell.review.reviewer})"
        elif call.confidence is not None:
            text += f" ({call.confidence:.0%}, {call.model})"
        self.statusBar().showMessage(text, 6000)

    def _view_clicked(self, cell_id: int) -> None:
        if cell_id >= 0:
            self.select_cell(cell_id, centre=False)

    def _review_selected(self, cell_id: int) -> None:
        self.selected = cell_id
        self.overlay.select(cell_id)
        if self.session is not None:
            try:
                cell = self.session.cell(cell_id)
            except KeyError:
                return
            self.view.centre_on(QPointF(*cell.centroid), min_size=cell.diameter)

    def go_next(self) -> None:
        """Next unreviewed cell in the table's order (wrapping); the next cell when all are reviewed."""
        order = self.review.visible_order()
        if not order or self.session is None:
            return
        start = order.index(self.selected) + 1 if self.selected in order else 0
        rotated = order[start:] + order[:start]
        for cell_id in rotated:
            if not self.session.cell(cell_id).review.reviewed:
                self.select_cell(cell_id)
                return
        self.statusBar().showMessage("Every cell in the list is reviewed.", 5000)
        if self.selected not in order:
            self.select_cell(order[0])

    def go_previous(self) -> None:
        order = self.review.visible_order()
        if not order:
            return
        index = order.index(self.selected) if self.selected in order else 0
        self.select_cell(order[index - 1])

    # ------------------------------------------------------------ review

    def classify_key(self, key: str) -> None:
        classes = self.classes()
        for index, name in enumerate(classes):
            if key_for(index, len(classes)) == key:
                self.classify(name)
                return

    def classify(self, label: str | None, action: str = "reclassify", cell_id: int | None = None) -> None:
        """Give the selected (or given) cell the reviewer's label, undoably; then go on."""
        target = self.selected if cell_id is None else cell_id
        if self.session is None or target is None:
            self.statusBar().showMessage("Select a cell first (N goes to the next one).", 4000)
            return
        command = ReviewCommand(self.session, target, label, action, self._cell_changed)
        self.undo_stack.push(command)
        if self.settings.advance and label is not None and cell_id is None:
            self.go_next()

    def accept_call(self) -> None:
        if self.session is None or self.selected is None or _typing():
            return
        call = cell_call(self.session.cell(self.selected), self.models)
        if call.label is None:
            self.statusBar().showMessage("This cell has no call to accept: classify it with a number key.", 4000)
            return
        self.classify(call.label, action="confirm")

    def clear_review(self) -> None:
        if (
            self.session is not None
            and self.selected is not None
            and self.session.cell(self.selected).review.reviewed
        ):
            self.classify(None, action="clear")

    def _cell_changed(self, cell_id: int) -> None:
        self.overlay.refresh_cell(cell_id)
        if self.review.model.row_of(cell_id) is None and self.session is not None:
            # a red cell or platelet the reviewer labelled joins the review list
            self.review.set_cells(self.session.analysis.cells, self.models, self.settings.confidence_threshold)
        else:
            self.review.refresh_cell(cell_id)
        self.review.select_cell(self.selected)

    @Slot(int)
    def _review_changed_any(self, _index: int = 0) -> None:
        if self.session is None:
            return
        self.differential.update_counts(self.session.analysis.cells, self.models)
        self._refresh_audit()
        self._mark_dirty()

    def _show_cell_menu(self, cell_id: int, global_pos) -> None:  # noqa: ANN001 - QPoint
        if self.session is None:
            return
        self.select_cell(cell_id, centre=False)
        menu = QMenu(self)
        cell = self.session.cell(cell_id)
        call = cell_call(cell, self.models)
        title = menu.addAction(f"Cell {cell_id}: {pretty(call.label)}")
        title.setEnabled(False)
        menu.addSeparator()
        if call.label is not None:
            menu.addAction(f"Accept {pretty(call.label)}\tEnter").triggered.connect(self.accept_call)
        classes = self.classes()
        for index, name in enumerate(classes):
            key = key_for(index, len(classes))
            action = menu.addAction(f"{pretty(name)}" + (f"\t{key}" if key else ""))
            action.triggered.connect(lambda _=False, n=name: self.classify(n))
        if cell.review.reviewed:
            menu.addSeparator()
            menu.addAction("Clear review\tBackspace").triggered.connect(self.clear_review)
        self.exec_menu(menu, global_pos)

    def exec_menu(self, menu: QMenu, global_pos) -> None:  # noqa: ANN001 - QPoint
        """Show a context menu and wait for the choice (a seam for tests: menus are modal)."""
        menu.exec(global_pos)

    def _table_menu(self, pos) -> None:  # noqa: ANN001
        index = self.review.table.indexAt(pos)
        if index.isValid():
            cell_id = int(index.data(Qt.ItemDataRole.UserRole + 1))
            self._show_cell_menu(cell_id, self.review.table.viewport().mapToGlobal(pos))

    def _gallery_menu(self, pos) -> None:  # noqa: ANN001
        item = self.review.gallery.itemAt(pos)
        if item is not None and item.data(Qt.ItemDataRole.UserRole + 1) is not None:
            cell_id = int(item.data(Qt.ItemDataRole.UserRole + 1))
            self._show_cell_menu(cell_id, self.review.gallery.viewport().mapToGlobal(pos))

    def crop_for(self, cell: Cell) -> np.ndarray | None:
        """The gallery's crop of a cell, read from the image (any size)."""
        if self.source is None:
            return None
        x0, y0, x1, y1 = crop_box(cell, GALLERY_RULE)
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(self.source.width, x1), min(self.source.height, y1)
        if cx1 <= cx0 or cy1 <= cy0:
            return None
        try:
            region = self.source.read_level(0, cx0, cy0, cx1 - cx0, cy1 - cy0)
        except LeukViewError:
            return None
        canvas = np.full((y1 - y0, x1 - x0, 3), 255, np.uint8)  # white where the box leaves the image
        canvas[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = region
        return canvas

    def _refresh_audit(self) -> None:
        self.audit_list.clear()
        if self.session is None:
            return
        for entry in self.session.audit[-500:]:
            self.audit_list.addItem(f"{entry.when}  {entry.who}  {entry.describe()}")
        self.audit_list.scrollToBottom()

    # ------------------------------------------------------------ settings

    def _target_changed(self, value: int) -> None:
        self.settings.target = value
        if self.session is not None:
            self.differential.update_counts(self.session.analysis.cells, self.models)

    def settings_dialog(self) -> None:
        dialog = SettingsDialog(self.settings, installed_models(self.models_dir), self)
        self._settings_dialog = dialog
        dialog.preview_requested.connect(self._request_preview)
        dialog.preview_closed.connect(self.overlay.clear_preview)
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        self._settings_dialog = None
        self.overlay.clear_preview()
        if accepted:
            self.apply_settings(dialog.apply())

    def apply_settings(self, changed: dict[str, bool]) -> None:
        """React to stored settings that changed (threshold, models, segmentation)."""
        threshold = self.settings.confidence_threshold
        if changed.get("threshold") and self.session is not None:
            self.overlay.threshold = threshold
            self.overlay.refresh_all()
            self.review.model.threshold = threshold
            self.review.resort()
            self.session.settings.confidence_threshold = threshold
            self.session.log(AuditAction.SET_THRESHOLD, detail={"confidence_threshold": threshold})
            self._refresh_audit()
            self._mark_dirty()
        if changed.get("models"):
            self.model_cache.invalidate()
            self._update_models_label()
        if not (changed.get("models") or changed.get("segmentation")) or self.source is None:
            return
        if not self.interactive or (
            QMessageBox.question(self, "Analyse again?", "Settings changed. Analyse the image again now?")
            == QMessageBox.StandardButton.Yes
        ):
            self.analyse()

    def _request_preview(self, params: Any) -> None:
        if self.source is None:
            if self._settings_dialog is not None:
                self._settings_dialog.show_preview_result({}, "Open an image first.")
            return
        if self.source.width * self.source.height <= LARGE_IMAGE_PIXELS:
            x, y, w, h = 0, 0, self.source.width, self.source.height
        else:
            visible = self.view.visible_rect().intersected(QRectF(0, 0, self.source.width, self.source.height))
            x, y = int(visible.left()), int(visible.top())
            w, h = int(min(visible.width(), 2048)), int(min(visible.height(), 2048))
        try:
            field = self._read_field(x, y, w, h)
        except LeukViewError as exc:
            if self._settings_dialog is not None:
                self._settings_dialog.show_preview_result({}, exc.reason)
            return
        self.preview.request(field, params, (x, y))

    def _preview_ready(self, cells: object, error: str) -> None:
        if self._settings_dialog is None:
            return
        cells = list(cells)  # type: ignore[call-overload]
        self.overlay.set_preview(cells)
        counts: dict[str, int] = {}
        for cell in cells:
            counts[cell.kind] = counts.get(cell.kind, 0) + 1
        self._settings_dialog.show_preview_result(counts, error)

    def pixel_size_dialog(self) -> None:
        rbc = self.analysis.rbc_diameter_px if self.analysis else None
        dialog = PixelSizeDialog(self.pixel_size_um, rbc, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.set_pixel_size(dialog.value(), "estimated from red cells" if dialog.estimated else "set by the user")

    def set_pixel_size(self, value: float | None, source: str = "set by the user") -> None:
        """Set µm per pixel (None: unknown); logged, saved in the session, shown everywhere."""
        self.pixel_size_um = value
        self.pixel_size_source = source if value else ""
        if self.session is not None:
            self.session.analysis.pixel_size_um = value
            cal = self.session.analysis.calibration
            self.session.log(
                AuditAction.SET_CALIBRATION, detail={"pixel_size_um": cal.pixel_size_um, "source": cal.source}
            )
            self._refresh_audit()
            self._mark_dirty()
        self._apply_pixel_size()

    def _apply_pixel_size(self) -> None:
        self.view.pixel_size_um = self.pixel_size_um
        self.view.pixel_size_estimated = "estimated" in self.pixel_size_source
        self.view.viewport().update()
        self.overlay.pixel_size_um = self.pixel_size_um
        if self.session is not None:
            self.overlay.refresh_all()
            self.review.set_pixel_size(self.pixel_size_um)
        if self.source is None:
            self.pixel_label.setText("")
        elif self.pixel_size_um:
            self.pixel_label.setText(f"{self.pixel_size_um:.3g} µm/px ({self.pixel_size_source})")
        else:
            self.pixel_label.setText("Pixel size unknown (Image ▸ Set pixel size…)")

    # ------------------------------------------------------------ session

    def _mark_dirty(self) -> None:
        if self.session is None:
            return
        self.dirty = True
        self._update_title()
        if self.settings.autosave and not self.read_only:
            self._autosave_timer.start()

    def autosave(self, force: bool = False) -> None:
        if self.dirty and (self.settings.autosave or force) and not self.read_only:
            self.save_session_file()

    def save_now(self) -> None:
        if self.read_only:
            self.statusBar().showMessage("Read-only mode: the session is not saved.", 4000)
            return
        self.save_session_file()

    def save_session_file(self) -> Path | None:
        """Save the session beside the image (or in the user's folder when that is read-only)."""
        if self.session is None or self.path is None:
            return None
        self._autosave_timer.stop()
        target = self.session_file or session_path(self.path)
        try:
            saved = save_session(self.session, target)
        except SessionError as first:
            fallback = fallback_session_path(self.path, sessions_folder())
            try:
                saved = save_session(self.session, fallback)
            except SessionError as exc:
                self.error("Session not saved", f"{first.reason}\n{exc.reason}")
                return None
            self.statusBar().showMessage(f"Image folder is read-only: session saved to {saved}", 8000)
        else:
            self.statusBar().showMessage(f"Session saved: {saved.name}", 3000)
        self.session_file = saved
        self.dirty = False
        self._update_title()
        return saved

    def maybe_save(self) -> bool:
        """Before the review is left: save it (autosave) or ask. False when the user cancels."""
        if not self.dirty or self.read_only:
            return True
        if self.settings.autosave or not self.interactive:
            if self.save_session_file() is not None or not self.interactive:
                return True
            return (
                QMessageBox.question(self, "Review not saved", "The review could not be saved. Leave it anyway?")
                == QMessageBox.StandardButton.Yes
            )
        answer = QMessageBox.question(
            self,
            "Save the review?",
            "The review has unsaved changes. Save them beside the image?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Save:
            return self.save_session_file() is not None
        self.dirty = False  # discarded on purpose
        return True

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.maybe_save():
            event.ignore()
            return
        self.runner.stop()
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

    # ------------------------------------------------------------ exports

    def _export_path(self, title: str, suffix: str, filter_text: str) -> Path | None:
        assert self.path is not None
        default = self.path.with_name(self.path.stem + suffix)
        path, _ = QFileDialog.getSaveFileName(self, title, str(default), filter_text)
        return Path(path) if path else None

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write every cell (position, call, review, models, measurements) as CSV."""
        if self.session is None:
            return None
        target = Path(path) if path else self._export_path("Export cells as CSV", ".cells.csv", "CSV (*.csv)")
        if target is None:
            return None
        try:
            written = write_cells_csv(
                target, self.session.analysis.cells, self.models, self.settings.confidence_threshold
            )
        except OSError as exc:
            self.error("Export failed", f"{target}: {exc.strerror or exc}")
            return None
        self._log_export("export CSV", written)
        return written

    def snapshot(self, max_side: int = 4096) -> Any:
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
        target = Path(path) if path else self._export_path("Export PNG snapshot", ".overlay.png", "PNG (*.png)")
        if target is None:
            return None
        try:
            written = save_png(self.snapshot(), target)
        except LeukViewError as exc:
            self.error("Export failed", str(exc))
            return None
        self._log_export("export PNG", written)
        return written

    def report_content(self) -> ReportContent:
        assert self.session is not None and self.path is not None
        analysis = self.session.analysis
        return ReportContent(
            image_name=self.path.name,
            width=analysis.width,
            height=analysis.height,
            cells=analysis.cells,
            models=analysis.models,
            threshold=self.settings.confidence_threshold,
            pixel_size_um=self.pixel_size_um,
            pixel_size_source=self.pixel_size_source,
            analysed=self.session.created,
            audit=self.session.audit,
            snapshot=self.snapshot(2000),
            reviewer=current_user(),
        )

    def export_pdf(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """The PDF report: snapshot, differential, blast %, models, disclaimer, corrections."""
        if self.session is None:
            return None
        target = Path(path) if path else self._export_path("Export PDF report", ".report.pdf", "PDF (*.pdf)")
        if target is None:
            return None
        try:
            written = write_pdf_report(target, self.report_content())
        except LeukViewError as exc:
            self.error("Export failed", str(exc))
            return None
        self._log_export("export PDF report", written)
        return written

    def _log_export(self, action: str, path: Path) -> None:
        if self.session is not None:
            self.session.log(action, detail={"path": str(path)})
            self._refresh_audit()
            self._mark_dirty()
        self.statusBar().showMessage(f"Written {path}", 6000)

    # ------------------------------------------------------------ status

    def _zoom_changed(self, scale: float) -> None:
        self.zoom_label.setText(f"{scale * 100:.0f} %")

    def _cursor_moved(self, point: QPointF) -> None:
        if self.source is None:
            return
        x, y = point.x(), point.y()
        if 0 <= x < self.source.width and 0 <= y < self.source.height:
            text = f"x {x:.0f}, y {y:.0f} px"
            if self.pixel_size_um:
                text += f" ({x * self.pixel_size_um:.1f}, {y * self.pixel_size_um:.1f} µm)"
            self.cursor_label.setText(text)

    def show_shortcuts(self) -> None:
        classes = self.classes()
        keys = "".join(
            f"<tr><td><b>{key_for(i, len(classes)) or ''}</b></td><td>{pretty(n)}</td></tr>"
            for i, n in enumerate(classes)
        )
        text = (
            "<h3>Review</h3><table>"
            + keys
            + "<tr><td><b>Enter</b></td><td>accept the model's call</td></tr>"
            "<tr><td><b>N</b> / Space</td><td>next unreviewed cell (low confidence first)</td></tr>"
            "<tr><td><b>P</b> / Shift+Space</td><td>previous cell</td></tr>"
            "<tr><td><b>Backspace</b></td><td>clear the review of the cell</td></tr>"
            "<tr><td><b>Ctrl+Z</b> / <b>Ctrl+Shift+Z</b></td><td>undo / redo</td></tr></table>"
            "<h3>View</h3><table>"
            "<tr><td><b>+ / -</b>, wheel</td><td>zoom (the wheel zooms about the cursor)</td></tr>"
            "<tr><td><b>F</b> / Ctrl+0</td><td>fit the image</td></tr>"
            "<tr><td><b>Ctrl+1</b></td><td>actual size (1:1)</td></tr>"
            "<tr><td><b>Arrows</b></td><td>pan (Shift: a screen); drag also pans</td></tr>"
            "<tr><td><b>H</b></td><td>heatmap off / selected cell / all cells</td></tr>"
            "<tr><td><b>L</b></td><td>labels on / off</td></tr></table>"
        )
        QMessageBox.information(self, "Keyboard shortcuts", text)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About LeukView",
            f"<h3>LeukView {__version__}</h3><p>Offline blood-smear viewer: classical segmentation, "
            "ONNX white-cell classification with class-activation maps, review and report.</p>"
            "<p><b>Decision support only: not a diagnosis.</b></p>",
        )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _typing() -> bool:
    """True while the keyboard focus is in a text field (Enter there must not accept a cell)."""
    from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit, QTextEdit

    return isinstance(QApplication.focusWidget(), (QLineEdit, QAbstractSpinBox, QTextEdit))


def _keys(texts: list[str], standard: QKeySequence.StandardKey) -> list[QKeySequence]:
    """Explicit key sequences plus the platform's standard ones, without repeats."""
    keys = [QKeySequence(t) for t in texts]
    for extra in QKeySequence.keyBindings(standard):
        if extra not in keys:
            keys.append(extra)
    return keys


def default_sample() -> Path:
    """The bundled sample (or the first image in resources/samples when it is not there)."""
    from leukview.core.paths import resources_dir, sample_image

    sample = sample_image()
    if sample.is_file():
        return sample
    folder = resources_dir() / "samples"
    found = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"))
    return found[0] if found else sample


def sessions_folder() -> Path:
    """Where sessions go when an image's folder is read-only."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".leukview") / "sessions"


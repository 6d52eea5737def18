"""Per-user settings (QSettings) and the settings dialog: models, review, the class list, segmentation (live preview)."""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .worker import InstalledModel


def throwaway_store() -> QSettings:
    """Settings that start empty and are thrown away (screenshots, documentation runs).

    They live in a private temporary folder, never on ``os.devnull``: QSettings saves
    by writing a new file and renaming it over the old one, which as root replaces
    the ``/dev/null`` device with a plain file.
    """
    folder = tempfile.TemporaryDirectory(prefix="leukview-settings-")
    store = QSettings(str(Path(folder.name) / "settings.ini"), QSettings.Format.IniFormat)
    store.setProperty("leukview_folder", folder.name)
    _THROWAWAY_FOLDERS.append(folder)  # removed when the process exits
    return store


_THROWAWAY_FOLDERS: list[tempfile.TemporaryDirectory] = []

MAX_RECENT = 10


class AppSettings:
    """Typed access to the user's persistent settings."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("LeukView", "LeukView")
        self._heat_mode = "off"  # never read from the store: see heat_mode

    def _get(self, key: str, default: Any, kind: type) -> Any:
        value = self.store.value(key, default)
        try:
            if kind is bool:
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            return kind(value)
        except (TypeError, ValueError):
            return default

    @property
    def model_names(self) -> list[str]:
        """Chosen models; empty means every installed model."""
        raw = self.store.value("models/enabled", "[]")
        try:
            names = json.loads(raw) if isinstance(raw, str) else list(raw or [])
        except json.JSONDecodeError:
            names = []
        return [str(n) for n in names]

    @model_names.setter
    def model_names(self, names: Sequence[str]) -> None:
        self.store.setValue("models/enabled", json.dumps(list(names)))

    @property
    def use_models(self) -> bool:
        """False when the user unticked every model: segmentation and manual review only."""
        return self._get("models/use", True, bool)

    @use_models.setter
    def use_models(self, value: bool) -> None:
        self.store.setValue("models/use", bool(value))

    @property
    def segmentation(self) -> dict[str, Any]:
        raw = self.store.value("segmentation/params", "{}")
        try:
            data = json.loads(raw) if isinstance(raw, str) else {}
        except json.JSONDecodeError:
            data = {}
        return data if isinstance(data, dict) else {}

    @segmentation.setter
    def segmentation(self, values: dict[str, Any]) -> None:
        self.store.setValue("segmentation/params", json.dumps(values))

    @property
    def confidence_threshold(self) -> float:
        return min(1.0, max(0.0, self._get("review/confidence_threshold", 0.7, float)))

    @confidence_threshold.setter
    def confidence_threshold(self, value: float) -> None:
        self.store.setValue("review/confidence_threshold", float(value))

    @property
    def target(self) -> int:
        return self._get("review/target", 100, int)

    @target.setter
    def target(self, value: int) -> None:
        self.store.setValue("review/target", int(value))

    @property
    def advance(self) -> bool:
        """Go to the next cell after a classification key."""
        return self._get("review/advance", True, bool)

    @advance.setter
    def advance(self, value: bool) -> None:
        self.store.setValue("review/advance", bool(value))

    @property
    def autosave(self) -> bool:
        return self._get("session/autosave", True, bool)

    @autosave.setter
    def autosave(self, value: bool) -> None:
        self.store.setValue("session/autosave", bool(value))

    @property
    def analyse_on_open(self) -> bool:
        return self._get("session/analyse_on_open", True, bool)

    @analyse_on_open.setter
    def analyse_on_open(self, value: bool) -> None:
        self.store.setValue("session/analyse_on_open", bool(value))

    @property
    def heat_mode(self) -> str:
        """Class-activation heatmap: ``off``, ``selected`` or ``all``, for this run of the viewer only.

        Every launch starts with the heatmap off: a heatmap left on is not carried
        over unnoticed into the next session (nor into reports, which never take
        the view's heatmap). Older settings files that stored it are ignored.
        """
        return self._heat_mode

    @heat_mode.setter
    def heat_mode(self, mode: str) -> None:
        self._heat_mode = mode if mode in ("off", "selected", "all") else "off"

    @property
    def heat_opacity(self) -> float:
        return min(1.0, max(0.0, self._get("view/heat_opacity", 0.5, float)))

    @heat_opacity.setter
    def heat_opacity(self, value: float) -> None:
        self.store.setValue("view/heat_opacity", float(value))

    @property
    def thumb_size(self) -> int:
        """Side of the gallery's thumbnails in pixels (64-192), as the reviewer last set it."""
        return min(192, max(64, self._get("review/thumb_size", 96, int)))

    @thumb_size.setter
    def thumb_size(self, value: int) -> None:
        self.store.setValue("review/thumb_size", int(value))

    @property
    def recent(self) -> list[str]:
        raw = self.store.value("files/recent", "[]")
        try:
            items = json.loads(raw) if isinstance(raw, str) else []
        except json.JSONDecodeError:
            items = []
        return [str(p) for p in items][:MAX_RECENT]

    def add_recent(self, path: str) -> None:
        items = [path] + [p for p in self.recent if p != path]
        self.store.setValue("files/recent", json.dumps(items[:MAX_RECENT]))

    def clear_recent(self) -> None:
        self.store.setValue("files/recent", "[]")

    def sync(self) -> None:
        self.store.sync()


def _pretty_field(name: str) -> str:
    words = name.replace("_", " ").split()
    text = " ".join(w.upper() if w in ("rbc", "wbc") else w for w in words)
    return text[0].upper() + text[1:]


class SegmentationForm(QWidget):
    """One editor per SegmentationParams field, built from the dataclass (nothing hard-coded)."""

    changed = Signal()

    def __init__(self, values: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from leukview.core.segment import SegmentationParams

        self.params_class = SegmentationParams
        try:
            docs = SegmentationParams.describe()
        except Exception:  # the source may be unavailable in a frozen bundle
            docs = {}
        defaults = SegmentationParams()
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.editors: dict[str, tuple[QWidget, Callable[[], Any]]] = {}
        for item in fields(SegmentationParams):
            default = getattr(defaults, item.name)
            value = values.get(item.name, default)
            editor, getter = self._editor(item.name, default, value)
            editor.setToolTip(docs.get(item.name, ""))
            label = QLabel(_pretty_field(item.name))
            label.setToolTip(docs.get(item.name, ""))
            layout.addRow(label, editor)
            self.editors[item.name] = (editor, getter)

    def _editor(self, name: str, default: Any, value: Any) -> tuple[QWidget, Callable[[], Any]]:
        if isinstance(default, bool):
            box = QCheckBox()
            box.setChecked(bool(value))
            box.toggled.connect(self.changed)
            return box, box.isChecked
        if default is None:  # optional size: 0 means "estimate from the image"
            spin = QDoubleSpinBox()
            spin.setRange(0.0, 10000.0)
            spin.setDecimals(1)
            spin.setSpecialValueText("automatic")
            spin.setValue(float(value or 0.0))
            spin.valueChanged.connect(self.changed)
            return spin, lambda: (spin.value() or None)
        if isinstance(default, int):
            spin_i = QSpinBox()
            spin_i.setRange(0, 100000)
            spin_i.setValue(int(value))
            spin_i.valueChanged.connect(self.changed)
            return spin_i, spin_i.value
        spin_f = QDoubleSpinBox()
        spin_f.setRange(0.0, 10000.0)
        spin_f.setDecimals(3)
        spin_f.setSingleStep(max(0.001, abs(float(default)) * 0.05))
        spin_f.setValue(float(value))
        spin_f.valueChanged.connect(self.changed)
        return spin_f, spin_f.value

    def values(self) -> dict[str, Any]:
        return {name: getter() for name, (_, getter) in self.editors.items()}

    def params(self) -> Any:
        """The edited SegmentationParams (raises LeukViewError on an invalid mix)."""
        return self.params_class.from_dict(self.values())

    def reset(self) -> None:
        defaults = self.params_class().to_dict()
        for name, (editor, _) in self.editors.items():
            value = defaults[name]
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                editor.setValue(value or 0)


class ClassListBox(QGroupBox):
    """The class list in use (keys, codes, names, what counts), where it comes from, and a lab's file to use.

    A file chosen here is validated and installed in the configuration folder
    (:func:`leukview.core.classes.install_class_list`) when the dialog is
    accepted, so that the viewer and ``leukview report`` use the same list;
    ``$LEUKVIEW_CLASSES`` overrides it.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Class list (the laboratory's classes, keys and what counts)", parent)
        self.pending: Path | None = None  # a lab file to install
        self.reset = False  # go back to the built-in list
        self.source = QLabel()
        self.source.setWordWrap(True)
        self.source.setObjectName("classListSource")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Key", "Code", "Class", "In WBC total"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setDefaultSectionSize(18)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(150)
        self.choose = QPushButton("Use a lab's file…")
        self.choose.setToolTip("A TOML or JSON class list (see leukview.core.classes for the format)")
        self.choose.clicked.connect(self._choose)
        self.builtin = QPushButton("Built-in list")
        self.builtin.clicked.connect(self._use_builtin)
        self.save_copy = QPushButton("Save a copy…")
        self.save_copy.setToolTip("Write the list in use as JSON, to start a lab's own file from it")
        self.save_copy.clicked.connect(self._save_copy)
        buttons = QHBoxLayout()
        for button in (self.choose, self.builtin, self.save_copy):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.source)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.show_list()

    def shown_list(self) -> Any:
        """The list the dialog shows: the one chosen (not installed yet), else the one in use."""
        from leukview.core.classes import active_classes, default_class_list, load_class_list

        if self.pending is not None:
            return load_class_list(self.pending)
        return default_class_list() if self.reset else active_classes()

    def show_list(self, error: str = "") -> None:
        from leukview.core.classes import CLASSES_ENV, class_list_problem, class_list_source

        lab = self.shown_list()
        path, why = class_list_source()
        env = why == f"${CLASSES_ENV}"
        if self.pending is not None:
            where = f"{self.pending} (used once you press OK)"
        elif self.reset:
            where = "built in (once you press OK)"
        else:
            where = "built in" if path is None else f"{path} ({why})"
        text = f"<b>{html.escape(lab.name)}</b>: {len(lab)} classes, {html.escape(where)}"
        problem = error or ("" if self.pending or self.reset else class_list_problem() or "")
        if problem:
            text += f"<br><span style='color:#C62828'>{html.escape(problem, quote=False)}</span>"
        if env:
            text += f"<br><span style='color:gray'>${CLASSES_ENV} is set: it decides the list.</span>"
        self.source.setText(text)
        self.choose.setEnabled(not env)
        self.builtin.setEnabled(not env)
        keys = dict((name, key) for key, name in lab.assign_keys())
        self.table.setRowCount(len(lab))
        for row, cls in enumerate(lab):
            code = QTableWidgetItem(cls.abbreviation)
            code.setData(Qt.ItemDataRole.DecorationRole, QColor(cls.colour))
            total = "yes" if cls.counts_in_total else ("apart, per 100 WBC" if cls.per_100_wbc else "apart")
            items = [QTableWidgetItem(keys.get(cls.name) or ""), code, QTableWidgetItem(cls.display),
                     QTableWidgetItem(total)]  # fmt: skip
            items[2].setToolTip(f"{cls.name}: {cls.group}" + (f", {cls.lineage}" if cls.lineage else ""))
            for col, item in enumerate(items):
                self.table.setItem(row, col, item)

    def choose_file(self, path: str | Path) -> bool:
        """Take a lab's file (validated now, installed on OK); False with the reason shown when it is refused."""
        from leukview.core.classes import ClassListError, load_class_list

        try:
            load_class_list(path)
        except ClassListError as exc:
            self.show_list(str(exc))
            return False
        self.pending, self.reset = Path(path), False
        self.show_list()
        return True

    def _choose(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Class list", str(Path.home()), "Class lists (*.toml *.json)")
        if path:
            self.choose_file(path)

    def _use_builtin(self) -> None:
        self.pending, self.reset = None, True
        self.show_list()

    def _save_copy(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, "Save the class list", str(Path.home() / "classes.json"),
                                              "JSON (*.json)")  # fmt: skip
        if path:
            from leukview.core.atomic import atomic_write_text

            atomic_write_text(path, json.dumps(self.shown_list().to_dict(), indent=2, ensure_ascii=False) + "\n")

    def apply(self) -> bool:
        """Install what was chosen; True when the list in use changed (ClassListError when it cannot be)."""
        from leukview.core.classes import install_class_list, remove_installed_class_list

        if self.pending is not None:
            install_class_list(self.pending)
        elif self.reset:
            remove_installed_class_list()
        else:
            return False
        self.pending, self.reset = None, False
        return True


class SettingsDialog(QDialog):
    """Models, confidence threshold, segmentation parameters (live preview), session options."""

    preview_requested = Signal(object)  # SegmentationParams
    preview_closed = Signal()

    def __init__(self, settings: AppSettings, models: Sequence[InstalledModel], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("LeukView settings")
        self.settings = settings

        model_box = QGroupBox("Models (ticked models run on every analysis)")
        self.model_list = QListWidget()
        self.model_list.setMaximumHeight(110)
        chosen = set(settings.model_names)
        every = settings.use_models and not chosen
        for model in models:
            if model.spec is None:
                text = f"{model.folder}  (damaged: {model.error})"
            else:
                spec = model.spec
                positive = f", flags '{spec.positive_class}'" if spec.positive_class else ""
                text = f"{spec.name} {spec.version}: {len(spec.classes)} classes{positive}"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, model.folder)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            if model.spec is None:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            ticked = model.spec is not None and (every or model.folder in chosen)
            item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
            self.model_list.addItem(item)
        if not models:
            self.model_list.addItem("No model installed: segmentation and manual review only.")
        QVBoxLayout(model_box).addWidget(self.model_list)

        review_box = QGroupBox("Review")
        review_form = QFormLayout(review_box)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(settings.confidence_threshold)
        self.threshold.setToolTip("Cells a model classifies below this confidence are flagged and offered first")
        review_form.addRow("Flag cells below confidence", self.threshold)
        self.advance = QCheckBox("Go to the next cell after classifying")
        self.advance.setChecked(settings.advance)
        review_form.addRow(self.advance)
        self.autosave = QCheckBox("Save the session automatically beside the image")
        self.autosave.setChecked(settings.autosave)
        review_form.addRow(self.autosave)
        self.analyse_on_open = QCheckBox("Analyse images when they are opened")
        self.analyse_on_open.setChecked(settings.analyse_on_open)
        review_form.addRow(self.analyse_on_open)

        seg_box = QGroupBox("Segmentation (hover a name for its meaning)")
        self.form = SegmentationForm(settings.segmentation)
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumHeight(220)
        self.preview_box = QCheckBox("Live preview on the image")
        self.preview_box.setToolTip("Dashed contours show what these parameters find, as you change them")
        self.preview_status = QLabel("")
        self.preview_status.setWordWrap(True)
        reset = QPushButton("Defaults")
        reset.clicked.connect(self.form.reset)
        row = QHBoxLayout()
        row.addWidget(self.preview_box)
        row.addStretch(1)
        row.addWidget(reset)
        seg_layout = QVBoxLayout(seg_box)
        seg_layout.addWidget(scroll)
        seg_layout.addLayout(row)
        seg_layout.addWidget(self.preview_status)

        self.class_list = ClassListBox()

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        # two columns: what is analysed (models, segmentation), how it is reviewed (review, classes)
        left = QVBoxLayout()
        left.addWidget(model_box)
        left.addWidget(seg_box, 1)
        right = QVBoxLayout()
        right.addWidget(review_box)
        right.addWidget(self.class_list, 1)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(columns, 1)
        layout.addWidget(buttons)
        self.resize(1040, 720)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self._emit_preview)
        self.form.changed.connect(self._schedule_preview)
        self.preview_box.toggled.connect(self._preview_toggled)

    def _preview_toggled(self, on: bool) -> None:
        if on:
            self._emit_preview()
        else:
            self.preview_closed.emit()
            self.preview_status.setText("")

    def _schedule_preview(self) -> None:
        if self.preview_box.isChecked():
            self._timer.start()

    def _emit_preview(self) -> None:
        from leukview.core.errors import LeukViewError

        try:
            params = self.form.params()
        except (LeukViewError, ValueError) as exc:
            self.preview_status.setText(f"<span style='color:#C62828'>{exc}</span>")
            return
        self.preview_status.setText("previewing…")
        self.preview_requested.emit(params)

    def show_preview_result(self, counts: dict[str, int], error: str) -> None:
        if error:
            self.preview_status.setText(f"<span style='color:#C62828'>{error}</span>")
        else:
            self.preview_status.setText(
                f"Preview: {counts.get('wbc', 0)} white cells, {counts.get('rbc', 0)} red cells, "
                f"{counts.get('platelet', 0)} platelets (dashed on the image)"
            )

    def chosen_models(self) -> tuple[bool, list[str]]:
        """(use models, names); every usable model ticked is stored as [] so new installs join in."""
        ticked, usable = [], []
        for row in range(self.model_list.count()):
            item = self.model_list.item(row)
            folder = item.data(Qt.ItemDataRole.UserRole)
            if not folder or not item.flags() & Qt.ItemFlag.ItemIsEnabled:
                continue
            usable.append(str(folder))
            if item.checkState() == Qt.CheckState.Checked:
                ticked.append(str(folder))
        if not ticked:
            return (not usable), []
        return True, ([] if ticked == usable else ticked)

    def apply(self) -> dict[str, bool]:
        """Store the dialog's values; says which groups changed."""
        from leukview.core.errors import LeukViewError

        s = self.settings
        use, names = self.chosen_models()
        changed = {
            "models": (use, names) != (s.use_models, s.model_names),
            "threshold": abs(self.threshold.value() - s.confidence_threshold) > 1e-9,
            "segmentation": False,
            "classes": False,
        }
        try:
            changed["classes"] = self.class_list.apply()
        except LeukViewError as exc:  # e.g. the configuration folder is read-only: the list in use stays
            self.class_list.show_list(str(exc))
        try:
            seg = self.form.params().to_dict()
        except (LeukViewError, ValueError):
            seg = s.segmentation
        changed["segmentation"] = seg != (s.segmentation or self.form.params_class().to_dict())
        s.use_models, s.model_names = use, names
        s.confidence_threshold = self.threshold.value()
        s.advance = self.advance.isChecked()
        s.autosave = self.autosave.isChecked()
        s.analyse_on_open = self.analyse_on_open.isChecked()
        s.segmentation = seg
        s.sync()
        return changed

    def done(self, result: int) -> None:
        self._timer.stop()
        self.preview_closed.emit()
        super().done(result)

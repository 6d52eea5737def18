"""Second opinions and teaching from the main window: Similar cells, the occlusion map, quizzes.

A mixin of :class:`~leukview.gui.mainwindow.MainWindow`: it builds the
Similar cells dock (:mod:`.similar`) and the occlusion layer
(:mod:`.occlusion`), keeps them on the selected cell, and holds the File
menu's teaching commands: Make quiz from this case (the reviewed cells with
the reviewer's labels, one self-contained ``.leukquiz`` file), Teaching mode
(a quiz on the reference atlas) and Open a quiz file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from leukview.core.errors import LeukViewError
from leukview.core.quiz import QUIZ_SUFFIX, QuizError, quiz_from_cells

from .occlusion import OcclusionLayer
from .similar import ExplainModels, SimilarCells, SimilarPanel

if TYPE_CHECKING:
    from PySide6.QtWidgets import QDockWidget, QGraphicsScene, QStatusBar, QWidget

    from leukview.core.document import ReviewDocument

    from .layers import LayersPanel
    from .overlays import CellOverlay
    from .review import ReviewPanel
    from .settings import AppSettings
    from .teach import QuizWindow
    from .tiles import TileSource
    from .worker import ModelCache

__all__ = ["ExplainUi"]


class ExplainUi:
    """The Similar cells panel, the occlusion map and the teaching commands (a mixin of the main window)."""

    document: ReviewDocument
    settings: AppSettings
    model_cache: ModelCache
    models_dir: str | None
    scene: QGraphicsScene
    overlay: CellOverlay
    layers: LayersPanel
    review: ReviewPanel
    source: TileSource | None
    selected: int | None
    interactive: bool
    differential_dock: QDockWidget

    if TYPE_CHECKING:  # provided by MainWindow

        def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt's name

        def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget: ...

        def tabifyDockWidget(self, first: QDockWidget, second: QDockWidget) -> None: ...  # noqa: N802

        def warn(self, title: str, text: str) -> None: ...

        def error(self, title: str, text: str) -> None: ...

    def _build_explain(self) -> None:
        self.quiz_windows: list[QuizWindow] = []
        self.explain_models = ExplainModels(self.model_cache, lambda: self.settings.model_names or None)
        self.similar_panel = SimilarPanel()
        self.similar_dock = self._dock("Similar cells", self.similar_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.differential_dock, self.similar_dock)
        self.differential_dock.raise_()
        self.similar = SimilarCells(
            self.similar_panel, self.document, self.explain_models, lambda: self.source, lambda: self.selected
        )
        # searched when seen: a hidden panel costs nothing
        self.similar_dock.visibilityChanged.connect(lambda shown: shown and self.similar.schedule())
        self.occlusion = OcclusionLayer(
            self.scene, self.overlay, self.document, self.explain_models, lambda: self.source,
            lambda text: self.statusBar().showMessage(text, 8000),
        )  # fmt: skip
        self.layers.map_kind_changed.connect(lambda kind: self.occlusion.set_active(kind == "occlusion"))
        self.layers.heat_mode_changed.connect(self.occlusion.set_mode)
        self.layers.heat_opacity_changed.connect(self.occlusion.set_opacity)
        self.occlusion.set_mode(self.layers.heat_mode)
        self.review.cell_selected.connect(lambda _cell_id: self._explain_selection())
        events = self.document.events
        events.analysis_changed.connect(self._explain_analysis_changed)
        events.cells_replaced.connect(lambda _removed, _added: self._explain_cells_replaced())
        events.cell_changed.connect(lambda cell_id: cell_id == self.selected and self.similar.schedule())

    def _explain_selection(self) -> None:
        """The selection moved: the panel follows (once the event loop is idle), the occlusion map too."""
        if self.similar_dock.isVisible():
            self.similar.schedule()
        self.occlusion.update()

    def _explain_analysis_changed(self) -> None:
        self.occlusion.clear()
        models = self.explain_models
        loaded = {(c.spec.name, c.spec.version) for c in models.classifiers.values()}
        if models.loaded and not {(m.name, m.version) for m in self.document.models} <= loaded:
            models.invalidate()  # analysed with other models: their atlases, not the old ones
        self.similar.schedule()

    def _explain_cells_replaced(self) -> None:
        self.occlusion.clear()
        self._explain_selection()

    # -- commands -------------------------------------------------------------

    def show_similar(self) -> None:
        """Ctrl+Shift+C: raise the Similar cells panel on the selected cell; its list takes the keys."""
        self.similar_dock.show()
        self.similar_dock.raise_()
        self.similar.refresh()
        self.similar_panel.list.setFocus()
        if self.similar_panel.list.count():
            self.similar_panel.list.setCurrentRow(0)

    def cycle_map_kind(self) -> None:
        """Shift+H: the heatmap is the class-activation map, or the selected cell's occlusion map."""
        kind = self.layers.cycle_map_kind()
        if kind == "occlusion" and self.layers.heat_mode == "off":
            self.layers.set_heat_mode("selected")
        names = {"cam": "class activation", "occlusion": "occlusion map of the selected cell"}
        self.statusBar().showMessage(f"Heatmap: {names[kind]}", 4000)

    def make_quiz(self, path: str | Path | None = None) -> Path | None:
        """File > Make quiz from this case: the reviewed cells with the reviewer's labels, in one file.

        Returns the file written, or None (nothing reviewed, cancelled, or it could not be written).
        """
        document = self.document
        source = self.source
        if document.session is None or source is None or document.path is None:
            self.warn("Make quiz", "Open and review an image first: the quiz uses the reviewer's labels.")
            return None
        reviewed = [c for c in document.cells if c.review.reviewed and c.review.label]
        if not reviewed:
            self.warn("Make quiz", "No cell is reviewed yet: review cells (number keys, Enter) first; "
                                   "the quiz asks them with your labels as the reference.")  # fmt: skip
            return None
        name = document.path.name
        if path is None:
            start = str(document.path.with_name(document.path.stem + QUIZ_SUFFIX))
            chosen, _ = QFileDialog.getSaveFileName(self, "Make quiz from this case", start,  # type: ignore[arg-type]
                                                    f"LeukView quizzes (*{QUIZ_SUFFIX})")  # fmt: skip
            if not chosen:
                return None
            path = chosen
        target = Path(path)
        if not target.name.endswith(QUIZ_SUFFIX):
            target = target.with_name(target.name + QUIZ_SUFFIX)
        search = None
        if self.explain_models.wait(30000):
            models = document.models
            search, _why = self.explain_models.search_for([m.name for m in models if m.role != "flag"])

        def read(x: int, y: int, w: int, h: int) -> Any:
            return source.read_level(0, x, y, w, h)

        try:
            quiz = quiz_from_cells(read, document.cells, document.models, size=(source.width, source.height),
                                   search=search, title=f"Case {name}", detail=name)  # fmt: skip
            quiz.save(target)
        except (LeukViewError, OSError) as exc:
            self.error("Make quiz", f"The quiz could not be written: {getattr(exc, 'reason', None) or exc}")
            return None
        counts = ", ".join(f"{n} {label}" for label, n in quiz.counts().items())
        text = (f"Quiz of {len(quiz)} cells ({counts}) written to {target}. Another LeukView opens it offline: "
                f"File ▸ Open a quiz file, or leukview --teach {target.name}.")  # fmt: skip
        self.statusBar().showMessage(text, 10000)
        if self.interactive:
            QMessageBox.information(self, "Make quiz", text)  # type: ignore[arg-type]
        return target

    def open_teaching(self) -> QuizWindow | None:
        """File > Teaching mode: a quiz on the installed type model's reference atlas."""
        from .teach import QuizWindow, atlas_source, model_loader

        try:
            choice = atlas_source(self.models_dir)
        except QuizError as exc:
            self.warn("Teaching mode", exc.reason)
            return None
        window = QuizWindow(choice.source, classifier=model_loader(choice.entry, choice.atlas.model_sha256),
                            interactive=self.interactive)  # fmt: skip
        return self._show_quiz(window)

    def open_quiz_file(self, path: str | Path | None = None) -> QuizWindow | None:
        """File > Open a quiz file: a trainer's ``.leukquiz``."""
        from .teach import QuizWindow, file_source

        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Open a quiz", str(Path.home()),  # type: ignore[arg-type]
                                                    f"LeukView quizzes (*{QUIZ_SUFFIX});;All files (*)")  # fmt: skip
            if not chosen:
                return None
            path = chosen
        try:
            source, loader = file_source(path, self.models_dir)
        except QuizError as exc:
            self.error("Open a quiz", exc.reason)
            return None
        window = QuizWindow(source, count=0, classifier=loader, interactive=self.interactive)
        return self._show_quiz(window)

    def _show_quiz(self, window: QuizWindow) -> QuizWindow:
        self.quiz_windows = [w for w in self.quiz_windows if w.isVisible()] + [window]
        window.show()
        window.raise_()
        window.activateWindow()
        window.trainee_edit.setFocus()
        return window

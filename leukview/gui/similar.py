"""The "Similar cells" panel: the reference-atlas cells most like the selected cell.

For the selected white cell the panel shows its k nearest atlas cells
(thumbnail, label, source, cosine distance), how many of them carry the
cell's call, and a click (or Enter) enlarges one with its source, licence
and attribution. The search is :class:`leukview.core.similar.SimilarSearch`:
one embedding per cell (cached), then exact cosine search, a few tens of
milliseconds in all, in the UI thread; only loading the models and their
atlases the first time runs in the background (:class:`ExplainModels`,
shared with the occlusion map).

An atlas made with another version of a model is never searched; the panel
says "no atlas for this model version" and the viewer carries on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from leukview.core.atlas import AtlasError
from leukview.core.calls import display_name
from leukview.core.errors import LeukViewError
from leukview.core.similar import SimilarCell, SimilarResult, SimilarSearch, same_label

from .cellinfo import class_colour
from .tiles import to_qimage

if TYPE_CHECKING:
    from leukview.core.cells import Cell
    from leukview.core.document import ReviewDocument

    from .tiles import TileSource
    from .worker import ModelCache

__all__ = ["DEFAULT_K", "ExplainModels", "SimilarCells", "SimilarPanel", "SimilarView"]

DEFAULT_K = 5  # the agreement figures of docs/explain.md are for the 5 nearest
THUMB = 72
ENLARGED = 320


# ---------------------------------------------------------------------------
# the models and their atlases, loaded once off the UI thread


class _LoadSignals(QObject):
    done = Signal(object, object, object)  # classifiers by name, searches by name, notes by name


class _LoadTask(QRunnable):
    def __init__(self, cache: ModelCache, names: list[str] | None, signals: _LoadSignals) -> None:
        super().__init__()
        self.cache, self.names, self.signals = cache, names, signals

    def run(self) -> None:
        classifiers: dict[str, Any] = {}
        searches: dict[str, SimilarSearch | None] = {}
        notes: dict[str, str] = {}
        try:
            loaded = self.cache.load(self.names)
        except Exception as exc:  # a model that cannot load must not take the window with it
            self.signals.done.emit({}, {}, {"": f"the models could not be loaded ({exc})"})
            return
        for classifier in loaded.classifiers:
            name = classifier.spec.name
            classifiers[name] = classifier
            if not classifier.spec.features_output:
                searches[name], notes[name] = None, f"{name} has no features output: no atlas search"
                continue
            try:
                search, why = SimilarSearch.for_classifier(classifier)
            except (AtlasError, OSError, ValueError) as exc:
                search, why = None, [str(exc)]
            searches[name] = search
            notes[name] = "; ".join(why)
        self.signals.done.emit(classifiers, searches, notes)


class ExplainModels(QObject):
    """The window's classifiers and their atlases, for the Similar cells panel and the occlusion map.

    Parameters
    ----------
    cache : ModelCache
        The window's (the models are loaded once for analysis and for these).
    names : callable
        The model names the settings choose (None: every installed model).
    """

    ready = Signal()

    def __init__(self, cache: ModelCache, names: Callable[[], list[str] | None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self.names = names
        self.classifiers: dict[str, Any] = {}
        self.searches: dict[str, SimilarSearch | None] = {}
        self.notes: dict[str, str] = {}
        self.loaded = False
        self._loading = False
        self._generation = 0
        self._signals = _LoadSignals()
        self._signals.done.connect(self._done)
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(1)

    def ensure(self) -> bool:
        """True when loaded; else start loading in the background (``ready`` follows)."""
        if self.loaded:
            return True
        if not self._loading:
            self._loading = True
            self._pool.start(_LoadTask(self.cache, self.names(), self._signals))
        return False

    def invalidate(self) -> None:
        """Forget the loaded models (the settings chose others, or they were reloaded)."""
        self.loaded = False
        self.classifiers, self.searches, self.notes = {}, {}, {}

    @Slot(object, object, object)
    def _done(self, classifiers: dict[str, Any], searches: dict[str, SimilarSearch | None], notes: dict[str, str]) -> None:
        self._loading = False
        self.classifiers, self.searches, self.notes = classifiers, searches, notes
        self.loaded = True
        self.ready.emit()

    def wait(self, msecs: int = 60000) -> bool:
        """Load now and wait (screenshots, tests)."""
        from PySide6.QtWidgets import QApplication

        self.ensure()
        deadline = time.monotonic() + msecs / 1000
        while not self.loaded and time.monotonic() < deadline:
            self._pool.waitForDone(50)
            QApplication.processEvents()
        return self.loaded

    def search_for(self, preferred: Sequence[str | None]) -> tuple[SimilarSearch | None, str]:
        """The first of the preferred models (then any) with an atlas, or why none has one."""
        names = [n for n in preferred if n] + [n for n in self.searches if n not in preferred]
        for name in names:
            search = self.searches.get(name)
            if search is not None:
                return search, ""
        reasons = [self.notes[n] for n in names if self.notes.get(n)] or list(self.notes.values())
        return None, "; ".join(dict.fromkeys(r for r in reasons if r)) or "no model with a reference atlas is loaded"


# ---------------------------------------------------------------------------
# the panel


def neighbour_pixmap(image: Any, colour: QColor, agrees: bool, size: int = THUMB) -> QPixmap:
    """An atlas thumbnail framed in its label's colour; a tick when it carries the call's label."""
    pixmap = QPixmap.fromImage(to_qimage(image)).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    pen = QPen(colour, 4)
    painter.setPen(pen)
    painter.drawRect(pixmap.rect().adjusted(2, 2, -2, -2))
    if agrees:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 20, 200))
        painter.drawEllipse(pixmap.width() - 22, 4, 18, 18)
        painter.setPen(QPen(QColor("white"), 2))
        painter.drawLine(pixmap.width() - 17, 13, pixmap.width() - 14, 17)
        painter.drawLine(pixmap.width() - 14, 17, pixmap.width() - 8, 9)
    painter.end()
    return pixmap


class SimilarView(QDialog):
    """One atlas cell enlarged, with where it comes from and its terms (Esc closes)."""

    def __init__(self, cell: SimilarCell, call: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Reference cell: {display_name(cell.label)}")
        layout = QVBoxLayout(self)
        picture = QLabel()
        try:
            picture.setPixmap(QPixmap.fromImage(to_qimage(cell.thumbnail())).scaled(
                ENLARGED, ENLARGED, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))  # fmt: skip
        except AtlasError as exc:
            picture.setText(exc.reason)
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(picture)
        entry = cell.entry
        agree = "the same as the call" if same_label(cell.label, call) else f"the call is {display_name(call)}"
        rows = [
            f"<b>{display_name(cell.label)}</b> ({agree})",
            f"Cosine distance {cell.distance:.3f} (0 = the same embedding)",
            f"Source: {cell.source} · licence {entry.licence or '?'}",
        ]
        if cell.attribution:
            rows.append(f"<span style='color:gray'>{cell.attribution}</span>")
        if entry.file:
            rows.append(f"<span style='color:gray'>{entry.file}{' · ' + entry.detail if entry.detail else ''}</span>")
        rows.append(f"<span style='color:gray'>Atlas cell {cell.atlas_id}</span>")
        self.text = QLabel("<br>".join(rows))
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setMinimumWidth(ENLARGED + 40)


class _List(QListWidget):
    """The neighbours; Enter enlarges the current one (the keyboard's click)."""

    enlarge = Signal(int)

    def event(self, event: QEvent) -> bool:
        # Enter here enlarges, it does not accept the call: claim it before the window's shortcut
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0):  # fmt: skip
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0:
            self.enlarge.emit(self.currentRow())
            event.accept()
            return
        super().keyPressEvent(event)


class SimilarPanel(QWidget):
    """Shows a :class:`SimilarResult`: the agreement line, the thumbnails, which atlas and how long."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.summary)
        self.list = _List()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 12, THUMB + 40))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(True)
        self.list.itemClicked.connect(lambda item: self.enlarge(self.list.row(item)))
        self.list.enlarge.connect(self.enlarge)
        layout.addWidget(self.list, 1)
        self.footer = QLabel("")
        self.footer.setWordWrap(True)
        self.footer.setStyleSheet("color: gray;")
        layout.addWidget(self.footer)
        self.result: SimilarResult | None = None
        self.open_view: SimilarView | None = None
        self.show_message("Select a white cell to see the reference cells most like it.")

    def show_message(self, text: str) -> None:
        """No neighbours, and why (nothing selected, loading, no atlas for this model version...)."""
        self.result = None
        self.list.clear()
        self.summary.setText(text)
        self.footer.setText("")

    def show_result(self, result: SimilarResult, atlas: str = "") -> None:
        self.result = result
        self.list.clear()
        call = result.call
        for cell in result.cells:
            agrees = same_label(cell.label, call)
            try:
                icon = QIcon(neighbour_pixmap(cell.thumbnail(), class_colour(cell.label), agrees and result.votes))
            except AtlasError:
                icon = QIcon()
            item = QListWidgetItem(icon, f"{display_name(cell.label)}\n{cell.distance:.2f} · {cell.source}")
            tip = [f"{display_name(cell.label)}, cosine distance {cell.distance:.3f}",
                   f"{cell.source}, licence {cell.licence or '?'}"]  # fmt: skip
            if cell.attribution:
                tip.append(cell.attribution)
            item.setToolTip("\n".join(tip) + "\nClick or Enter: enlarge")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.list.addItem(item)
        count = len(result.cells)
        if not count:
            self.summary.setText("The atlas is empty.")
        elif not result.votes:
            label, votes = result.majority
            self.summary.setText(
                f"{count} nearest reference cells (most: {display_name(label)}, {votes}). This atlas is a "
                "gallery of examples, not a second opinion: its cells come from too few labs to vote."
            )
        elif call is None:
            label, votes = result.majority
            self.summary.setText(f"No call yet; <b>{votes} of {count}</b> nearest reference cells are "
                                 f"<b>{display_name(label)}</b>.")  # fmt: skip
        else:
            agree = result.agree
            colour = "#1B7F3B" if agree * 2 > count else "#B3261E"
            self.summary.setText(
                f"<span style='color:{colour}'><b>{agree} of {count}</b></span> nearest reference cells agree "
                f"with the call <b>{display_name(call)}</b>."
                + ("" if agree * 2 > count else " A disagreement is a reason to look again.")
            )
        self.footer.setText(f"{atlas} · {result.seconds * 1000:.0f} ms{' (cached)' if result.cached else ''}")

    def enlarge(self, row: int) -> None:
        if self.result is None or not 0 <= row < len(self.result.cells):
            return
        self.open_view = SimilarView(self.result.cells[row], self.result.call, self)
        self.open_view.show()


class SimilarCells(QObject):
    """Keeps the panel on the selected cell: which model's atlas, the search, the messages.

    Parameters
    ----------
    panel : SimilarPanel
    document : ReviewDocument
    models : ExplainModels
    source : callable
        The window's image (``TileSource``) or None.
    selected : callable
        The selected cell id or None.
    k : int
    """

    def __init__(
        self,
        panel: SimilarPanel,
        document: ReviewDocument,
        models: ExplainModels,
        source: Callable[[], TileSource | None],
        selected: Callable[[], int | None],
        k: int = DEFAULT_K,
    ) -> None:
        super().__init__(panel)
        self.panel, self.document, self.models = panel, document, models
        self.source, self.selected, self.k = source, selected, k
        self.last_seconds: float | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)  # coalesce the selection's several signals into one search
        self._timer.timeout.connect(self.refresh)
        models.ready.connect(self.refresh)

    def schedule(self, *_args: object) -> None:
        self._timer.start()

    def _read(self, x: int, y: int, w: int, h: int) -> Any:
        source = self.source()
        assert source is not None
        return source.read_level(0, x, y, w, h)

    def refresh(self) -> None:
        """Search for the selected cell now (a few tens of ms once the models are loaded)."""
        if not self.panel.isVisible():
            return  # a hidden panel costs nothing: it searches when shown (the dock's visibility)
        cell_id, source = self.selected(), self.source()
        if self.document.session is None or cell_id is None or source is None:
            self.panel.show_message("Select a white cell to see the reference cells most like it.")
            return
        try:
            cell: Cell = self.document.cell(cell_id)
        except KeyError:
            return
        if cell.kind != "wbc":
            self.panel.show_message("Similar cells are shown for white cells.")
            return
        if not self.document.models:
            self.panel.show_message("No model: the reference atlas is searched with a model's features.")
            return
        if not self.models.ensure():
            self.panel.show_message("Loading the model and its reference atlas…")
            return
        call = self.document.call(cell)
        models = self.document.models
        preferred = [call.model, *(m.name for m in models if not m.positive_class), *(m.name for m in models)]
        search, why = self.models.search_for(preferred)
        if search is None:
            self.panel.show_message(f"No similar cells: {why}.")
            return
        start = time.perf_counter()
        try:
            result = search.find(self._read, (source.width, source.height), cell, call.label, self.k)
        except (LeukViewError, ValueError) as exc:
            self.panel.show_message(f"No similar cells: {getattr(exc, 'reason', exc)}")
            return
        with contextlib.suppress(RuntimeError):  # the panel may be going away with the window
            self.panel.show_result(result, search.describe())
        self.last_seconds = time.perf_counter() - start

"""The quiz window of the teaching mode (``leukview --teach [QUIZ]``), keyboard-only end to end.

Four pages: the start (trainee, cells, seconds per cell), the question (a
cell without its label; answer with the class keys of review), the feedback
(right or wrong, the reference label, the model's map, the most similar
reference cells, where the cell comes from) and the results (score by class,
confusion table, where they were saved). The flow and the scoring are
:class:`leukview.core.quiz.QuizRun`; answers are saved per trainee
(:class:`leukview.core.quiz.TraineeRecord`) and the next quiz favours the
classes the trainee confused. Every key comes from
:data:`leukview.core.keymap.QUIZ_BINDINGS` and :func:`~leukview.core.keymap.class_keys`.

Length (~730 lines): four pages of one keyboard flow; each page is small, and
splitting them would spread one state machine over several files.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QColor, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from leukview.core.calls import display_name
from leukview.core.classes import abbreviation
from leukview.core.explain import heatmap_overlay, smooth_cam
from leukview.core.keymap import (
    CLASS_KEYS,
    QUIZ_BINDINGS,
    QUIZ_GROUPS,
    bindings_in,
    class_keys,
    help_sections,
)
from leukview.core.quiz import (
    NO_ANSWER,
    Answer,
    Quiz,
    QuizError,
    QuizItem,
    QuizRun,
    TraineeRecord,
    cam_of_image,
)

from ..actions import qt_keys
from ..cellinfo import class_colour
from ..tiles import to_qimage

if TYPE_CHECKING:
    from leukview.core.models import Classifier

__all__ = ["CELL_SIDE", "QuizWindow"]

CELL_SIDE = 360  # the cell asked, on screen
SMALL = 72  # a similar reference cell
RIGHT, WRONG = "#1B7F3B", "#B3261E"


def _pixmap(image: np.ndarray, side: int) -> QPixmap:
    return QPixmap.fromImage(to_qimage(image)).scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


def _cap(key: str) -> str:
    return ("<span style='background:#e8e8e8;color:#111;border:1px solid #999;font-family:monospace;"
            f"font-weight:bold'>&nbsp;{html.escape(key)}&nbsp;</span>")  # fmt: skip


def _picture(side: int) -> QLabel:
    label = QLabel()
    label.setFixedSize(side, side)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet("QLabel { background: #202024; border-radius: 4px; }")
    return label


class QuizWindow(QMainWindow):
    """One trainee's quizzes.

    Parameters
    ----------
    source : AtlasQuizSource or FileQuizSource
        Where the cells come from (:mod:`leukview.core.quiz`); a new draw per quiz.
    trainee : str
        Filled in on the start page (the trainee may change it).
    count : int
        Cells per quiz (all of a quiz file's when 0).
    time_limit : float, optional
        Seconds per cell (the timed mode); None or 0: untimed.
    classifier : callable, optional
        Returns the model whose class-activation map the feedback shows for a
        cell without one of its own (an atlas thumbnail), or None; called once.
    folder : path, optional
        Where the trainees' files go (default :func:`leukview.core.quiz.trainees_folder`).
    save : bool
        Save each attempt to the trainee's file (False for screenshots).
    seed : int, optional
        Seeds the draws (tests and screenshots).
    clock : callable
        Monotonic seconds for the timed mode.
    interactive : bool
        Show message boxes (False: the status bar only).
    """

    def __init__(
        self,
        source: Any,
        *,
        trainee: str = "",
        count: int = 20,
        time_limit: float | None = None,
        classifier: Callable[[], Classifier | None] | None = None,
        folder: str | os.PathLike[str] | None = None,
        save: bool = True,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        interactive: bool = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.folder = None if folder is None else Path(folder)
        self.save_results = save
        self.seed = seed
        self.clock = clock
        self.interactive = interactive
        self._classifier_loader = classifier
        self._classifier: Classifier | None = None
        self._classifier_tried = False
        self._cams: dict[str, np.ndarray | None] = {}
        self.quiz: Quiz | None = None
        self.run: QuizRun | None = None
        self.record: TraineeRecord | None = None
        self.saved_to: Path | None = None
        self.save_error = ""
        self.show_heat = True
        self.attempts = 0
        self.setWindowTitle(f"LeukView teaching: {source.title}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the keys are the quiz's once the name is typed

        self.pages = QStackedWidget()
        self.setCentralWidget(self.pages)
        self._build_start(trainee, count, time_limit)
        self._build_question()
        self._build_feedback()
        self._build_results()
        self._build_actions()
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._tick)
        self.pages.setCurrentWidget(self.start_page)
        self._update_enabled()
        self.resize(1100, 760)

    # ------------------------------------------------------------------ building

    def _build_start(self, trainee: str, count: int, time_limit: float | None) -> None:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(40, 30, 40, 30)
        title = QLabel(f"<h2>{html.escape(self.source.title)}</h2>"
                       f"<p>{self.source.size} cells to draw from. You see each cell without its label and "
                       "answer with the number keys, as in review; then you see the reference label, "
                       "where the model looked and the reference cells most like it.</p>")  # fmt: skip
        title.setWordWrap(True)
        layout.addWidget(title)
        form = QFormLayout()
        self.trainee_edit = QLineEdit(trainee)
        self.trainee_edit.setPlaceholderText("your name (your results are kept under it)")
        self.trainee_edit.textChanged.connect(self._trainee_changed)
        form.addRow("Trainee", self.trainee_edit)
        self.count_spin = QSpinBox()
        self.count_spin.setRange(1, max(1, self.source.size))
        self.count_spin.setValue(min(count, self.source.size) if count > 0 else self.source.size)
        form.addRow("Cells", self.count_spin)
        self.time_spin = QSpinBox()
        self.time_spin.setRange(0, 600)
        self.time_spin.setSuffix(" s per cell")
        self.time_spin.setSpecialValueText("untimed")
        self.time_spin.setValue(int(round(time_limit)) if time_limit else 0)
        form.addRow("Timed mode", self.time_spin)
        layout.addLayout(form)
        self.start_note = QLabel("")
        self.start_note.setWordWrap(True)
        self.start_note.setStyleSheet("color: gray;")
        layout.addWidget(self.start_note)
        layout.addStretch(1)
        keys = QLabel(f"{_cap('Enter')} start &nbsp; {_cap('F1')} keys &nbsp; {_cap('Ctrl+W')} close")
        layout.addWidget(keys)
        self.start_page = page
        self.pages.addWidget(page)
        self._trainee_changed(trainee)

    def _build_question(self) -> None:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(24, 16, 24, 16)
        self.question_title = QLabel("")
        layout.addWidget(self.question_title)
        self.time_bar = QProgressBar()
        self.time_bar.setRange(0, 1000)
        self.time_bar.setTextVisible(True)
        layout.addWidget(self.time_bar)
        layout.addStretch(1)
        middle = QHBoxLayout()
        middle.addStretch(1)
        self.question_picture = _picture(CELL_SIDE)
        middle.addWidget(self.question_picture)
        middle.addStretch(1)
        layout.addLayout(middle)
        ask = QLabel("<b>What is this cell?</b> Press its key:")
        ask.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(ask)
        self.answer_grid = QGridLayout()
        layout.addLayout(self.answer_grid)
        self.answer_buttons: list[QPushButton] = []
        layout.addStretch(1)
        self.question_keys = QLabel("")
        layout.addWidget(self.question_keys)
        self.question_page = page
        self.pages.addWidget(page)

    def _build_feedback(self) -> None:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(24, 16, 24, 16)
        self.feedback_title = QLabel("")
        layout.addWidget(self.feedback_title)
        self.verdict = QLabel("")
        self.verdict.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.verdict)
        pictures = QHBoxLayout()
        pictures.addStretch(1)
        self.feedback_picture = _picture(CELL_SIDE)
        pictures.addWidget(self.feedback_picture)
        self.heat_picture = _picture(CELL_SIDE)
        pictures.addWidget(self.heat_picture)
        pictures.addStretch(1)
        layout.addLayout(pictures)
        self.heat_note = QLabel("")
        self.heat_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heat_note.setStyleSheet("color: gray;")
        layout.addWidget(self.heat_note)
        self.provenance = QLabel("")
        self.provenance.setWordWrap(True)
        self.provenance.setStyleSheet("color: gray;")
        layout.addWidget(self.provenance)
        self.similar_title = QLabel("")
        layout.addWidget(self.similar_title)
        self.similar_row = QHBoxLayout()
        layout.addLayout(self.similar_row)
        self.similar_widgets: list[QWidget] = []
        layout.addStretch(1)
        self.feedback_keys = QLabel("")
        layout.addWidget(self.feedback_keys)
        self.feedback_page = page
        self.pages.addWidget(page)

    def _build_results(self) -> None:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(24, 16, 24, 16)
        self.score = QLabel("")
        self.score.setTextFormat(Qt.TextFormat.RichText)
        self.score.setWordWrap(True)
        layout.addWidget(self.score)
        tables = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Score by class</b>"))
        self.class_table = self._table()
        left.addWidget(self.class_table)
        tables.addLayout(left, 2)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Confusion table</b> (rows: the reference label; columns: your answer)"))
        self.confusion_table = self._table()
        right.addWidget(self.confusion_table)
        tables.addLayout(right, 5)
        layout.addLayout(tables, 1)
        self.results_note = QLabel("")
        self.results_note.setWordWrap(True)
        layout.addWidget(self.results_note)
        keys = QLabel(f"{_cap('R')} a new quiz favouring the classes you confused &nbsp; {_cap('Enter')} "
                      f"start page &nbsp; {_cap('Ctrl+W')} close")  # fmt: skip
        layout.addWidget(keys)
        self.results_page = page
        self.pages.addWidget(page)

    @staticmethod
    def _table() -> QTableWidget:
        table = QTableWidget()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.verticalHeader().setDefaultSectionSize(24)
        return table

    def _build_actions(self) -> None:
        slots: dict[str, Callable[[], object]] = {
            "quiz_next": self.next, "quiz_heatmap": self.toggle_heat, "quiz_again": self.again,
            "quiz_finish": self.finish, "quiz_close": self.close, "quiz_shortcuts": self.show_shortcuts,
        }  # fmt: skip
        self.actions: dict[str, QAction] = {}
        bar = self.menuBar()
        menus = {group: bar.addMenu(title) for group, title in QUIZ_GROUPS.items()}
        for item in QUIZ_BINDINGS:
            action = QAction(item.text, self)
            action.setShortcuts(qt_keys(item))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _=False, s=slots[item.id]: s())
            self.addAction(action)
            self.actions[item.id] = action
        for group, menu in menus.items():
            for item in bindings_in(group, QUIZ_BINDINGS):
                menu.addAction(self.actions[item.id])
        self.answer_actions: list[QAction] = []
        for key in CLASS_KEYS:
            action = QAction(f"Answer {key}", self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _=False, k=key: self.answer_key(k))
            self.addAction(action)
            self.answer_actions.append(action)

    # ------------------------------------------------------------------ state

    @property
    def page(self) -> str:
        """``start``, ``question``, ``feedback`` or ``results``."""
        current = self.pages.currentWidget()
        return {self.start_page: "start", self.question_page: "question", self.feedback_page: "feedback",
                self.results_page: "results"}[current]  # fmt: skip

    def _update_enabled(self) -> None:
        page = self.page
        for action in self.answer_actions:
            action.setEnabled(page == "question")
        self.actions["quiz_next"].setEnabled(page in ("start", "feedback", "results"))
        self.actions["quiz_heatmap"].setEnabled(page == "feedback")
        self.actions["quiz_again"].setEnabled(page == "results")
        self.actions["quiz_finish"].setEnabled(page in ("question", "feedback"))

    def _show_page(self, page: QWidget) -> None:
        self.pages.setCurrentWidget(page)
        self.setFocus()  # away from the name field: the keys are the quiz's
        self._update_enabled()

    def _trainee_changed(self, text: str) -> None:
        name = text.strip()
        if not name:
            self.start_note.setText("Enter your name to keep your results; the next quizzes then favour the "
                                    "classes you confuse.")  # fmt: skip
            return
        try:
            record = TraineeRecord.load(name, self.folder)
        except QuizError as exc:
            self.start_note.setText(f"Your results file cannot be read ({exc.reason}); it will be set aside.")
            return
        done = len(record.attempts)
        where = record.path if self.save_results else "not saved (screenshot)"
        self.start_note.setText(
            f"{done} earlier quiz{'zes' if done != 1 else ''} on record; this one favours the classes you confused."
            if done else "A first quiz: balanced by class."
        )
        self.start_note.setToolTip(f"Results: {where}")

    # ------------------------------------------------------------------ the flow

    def next(self) -> None:
        """Enter: start (start page), the next cell (feedback), the start page again (results)."""
        page = self.page
        if page == "start":
            self.start()
        elif page == "feedback" and self.run is not None:
            if self.run.next() is None:
                self._results()
            else:
                self._question()
        elif page == "results":
            self._show_page(self.start_page)
            self.trainee_edit.setFocus()
            self._trainee_changed(self.trainee_edit.text())

    def start(self, count: int | None = None, time_limit: float | None = None) -> bool:
        """Draw a quiz and ask its first cell (the trainee's record weighs the draw)."""
        name = self.trainee_edit.text().strip() or "trainee"
        note = ""
        try:
            self.record, note = TraineeRecord.open(name, self.folder)
        except QuizError as exc:
            self._say("Results", f"Your results cannot be read: {exc.reason}")
            self.record = None
        limit = self.time_spin.value() if time_limit is None else time_limit
        total = self.count_spin.value() if count is None else count
        seed = None if self.seed is None else self.seed + self.attempts
        try:
            self.quiz = self.source.draw(total, self.record, seed, float(limit) if limit else None)
        except (QuizError, OSError) as exc:
            self._say("Quiz", f"The quiz cannot be drawn: {getattr(exc, 'reason', exc)}")
            return False
        self.attempts += 1
        self.run = QuizRun(self.quiz, time_limit=float(limit) if limit else None, clock=self.clock)
        self.saved_to, self.save_error = None, ""
        self._set_answers(self.quiz.classes)
        if note:
            self._say("Results", note)
        self._question()
        return True

    def again(self) -> None:
        """R on the results: a new quiz at once, favouring the classes confused so far."""
        if self.page == "results":
            self.start()

    def _set_answers(self, classes: list[str]) -> None:
        for button in self.answer_buttons:
            self.answer_grid.removeWidget(button)
            button.deleteLater()
        self.answer_buttons = []
        self.keys = class_keys(classes)
        columns = 4 if len(classes) > 8 else max(1, (len(classes) + 1) // 2)
        for n, (key, name) in enumerate(self.keys):
            button = QPushButton(f"{key or '–'}   {display_name(name)}")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            colour = class_colour(name).name()
            button.setStyleSheet(
                "QPushButton { text-align: left; padding: 7px 10px; background: #FAFAFA; color: #111; "
                f"border: 1px solid #A0A0A0; border-left: 10px solid {colour}; border-radius: 3px; }}"
                "QPushButton:pressed { background: #DDD; }"
            )
            button.setToolTip(f"{display_name(name)} ({abbreviation(name)})" + (f": key {key}" if key else ""))
            button.clicked.connect(lambda _=False, label=name: self.answer(label))
            self.answer_grid.addWidget(button, n // columns, n % columns)
            self.answer_buttons.append(button)

    def _header(self) -> str:
        assert self.run is not None and self.quiz is not None
        name = html.escape(self.trainee_edit.text().strip() or "trainee")
        timed = f" · timed: {self.run.time_limit:g} s per cell" if self.run.time_limit else ""
        return (f"<b>Cell {self.run.index + 1} of {self.run.total}</b> · {name} · "
                f"{html.escape(self.quiz.title)}{timed} · {sum(a.correct for a in self.run.answers)} right so far")  # fmt: skip

    def _question(self) -> None:
        assert self.run is not None
        item = self.run.item
        assert item is not None
        self.question_title.setText(self._header())
        self.question_picture.setPixmap(_pixmap(item.image, CELL_SIDE))
        self.time_bar.setVisible(self.run.time_limit is not None)
        legend = " &nbsp; ".join(_cap(k) + "&nbsp;" + html.escape(abbreviation(n)) for k, n in self.keys if k)
        self.question_keys.setText(f"{legend}<br>{_cap('Esc')} end now &nbsp; {_cap('F1')} keys")
        self._show_page(self.question_page)
        self.run.restart_clock()
        if self.run.time_limit is not None:
            self._tick()
            self.timer.start()

    def _tick(self) -> None:
        run = self.run
        if run is None or self.page != "question":
            self.timer.stop()
            return
        expired = run.expire()
        if expired is not None:
            self.timer.stop()
            self._feedback(expired)
            return
        left = run.time_left()
        if left is not None and run.time_limit:
            self.time_bar.setValue(int(round(1000 * left / run.time_limit)))
            self.time_bar.setFormat(f"{left:.0f} s left")

    def answer_key(self, key: str) -> None:
        for class_key, name in getattr(self, "keys", []):
            if class_key == key:
                self.answer(name)
                return

    def answer(self, label: str) -> Answer | None:
        """Answer the cell asked (a key or a click); then the feedback."""
        if self.run is None or self.page != "question" or self.run.state != "question":
            return None
        self.timer.stop()
        recorded = self.run.answer(label)
        self._feedback(recorded)
        return recorded

    # ------------------------------------------------------------------ feedback

    def _cam(self, item: QuizItem) -> np.ndarray | None:
        if item.cam is not None:
            return item.cam
        if item.id in self._cams:
            return self._cams[item.id]
        classifier = self._model()
        cam = None
        if classifier is not None:
            try:
                cam = cam_of_image(classifier, item.image)
            except Exception:  # noqa: BLE001 - no map is better than no feedback
                cam = None
        self._cams[item.id] = cam
        return cam

    def _model(self) -> Classifier | None:
        if not self._classifier_tried and self._classifier_loader is not None:
            self._classifier_tried = True
            try:
                self._classifier = self._classifier_loader()
            except Exception:  # noqa: BLE001 - the feedback goes on without a map
                self._classifier = None
        return self._classifier

    def _feedback(self, answer: Answer) -> None:
        assert self.run is not None
        item = self.run.item
        assert item is not None
        self.feedback_title.setText(self._header())
        truth = f"<b style='color:{class_colour(item.label).name()}'>■</b> <b>{html.escape(display_name(item.label))}</b>"
        if answer.timed_out:
            verdict = f"<span style='color:{WRONG}'>⏱ Time is up.</span> It is {truth}."
        elif answer.correct:
            verdict = f"<span style='color:{RIGHT}'>✓ Right:</span> {truth}."
        else:
            verdict = (f"<span style='color:{WRONG}'>✗ You said {html.escape(display_name(answer.answer))}</span>: "
                       f"it is {truth}.")  # fmt: skip
        self.verdict.setText(f"<div style='font-size:16pt'>{verdict}</div>")
        self.feedback_picture.setPixmap(_pixmap(item.image, CELL_SIDE))
        self._show_heat(item)
        terms = f"licence {item.licence}" if item.licence else ""
        parts = [p for p in (item.source, terms, item.detail) if p]
        text = "From " + " · ".join(html.escape(p) for p in parts) if parts else ""
        if item.attribution:
            text += f"<br>{html.escape(item.attribution)}"
        self.provenance.setText(text)
        self._show_similar(item)
        self.feedback_keys.setText(f"{_cap('Enter')} next cell &nbsp; {_cap('H')} map on / off &nbsp; "
                                   f"{_cap('Esc')} end now")  # fmt: skip
        self._show_page(self.feedback_page)

    def _show_heat(self, item: QuizItem) -> None:
        cam = self._cam(item) if self.show_heat else None
        if cam is None:
            self.heat_picture.setPixmap(QPixmap())
            self.heat_picture.setText("map off (H)" if not self.show_heat else "no map for this cell")
            self.heat_note.setText("" if self.show_heat else "H shows where the model looked")
            return
        height, width = item.image.shape[:2]
        heat = smooth_cam(cam, (width, height))
        self.heat_picture.setPixmap(_pixmap(heatmap_overlay(item.image, heat, alpha=0.55), CELL_SIDE))
        self.heat_note.setText("Beside it: where the model looked for its answer (class activation; red = most)")

    def toggle_heat(self) -> None:
        self.show_heat = not self.show_heat
        if self.run is not None and self.page == "feedback" and self.run.item is not None:
            self._show_heat(self.run.item)

    def _show_similar(self, item: QuizItem) -> None:
        for widget in self.similar_widgets:
            self.similar_row.removeWidget(widget)
            widget.deleteLater()
        self.similar_widgets = []
        if not item.similar:
            self.similar_title.setText("")
            return
        agree = sum(s.label == item.label for s in item.similar)
        self.similar_title.setText(f"<b>The {len(item.similar)} reference cells most like it</b> "
                                   f"({agree} of them {html.escape(display_name(item.label))}):")  # fmt: skip
        for ref in item.similar:
            box = QWidget()
            column = QVBoxLayout(box)
            column.setContentsMargins(2, 2, 2, 2)
            picture = QLabel()
            picture.setFixedSize(SMALL, SMALL)
            if ref.image is not None:
                picture.setPixmap(_pixmap(ref.image, SMALL))
            colour = class_colour(ref.label).name()
            picture.setStyleSheet(f"QLabel {{ border: 3px solid {colour}; }}")
            column.addWidget(picture, 0, Qt.AlignmentFlag.AlignHCenter)
            caption = QLabel(f"{html.escape(display_name(ref.label))}<br><span style='color:gray'>"
                             f"{ref.distance:.2f} · {html.escape(ref.source)}</span>")  # fmt: skip
            caption.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            column.addWidget(caption)
            self.similar_row.addWidget(box)
            self.similar_widgets.append(box)
        stretch = QWidget()
        self.similar_row.addWidget(stretch, 1)
        self.similar_widgets.append(stretch)

    # ------------------------------------------------------------------ results

    def finish(self) -> None:
        """Esc: end the quiz now; the results (and the record) hold the cells answered."""
        if self.run is None or self.page not in ("question", "feedback"):
            return
        self.timer.stop()
        self._results()

    def _results(self) -> None:
        assert self.run is not None and self.quiz is not None
        self.timer.stop()
        run, quiz = self.run, self.quiz
        result = run.result()
        name = self.trainee_edit.text().strip() or "trainee"
        if self.save_results and run.answers and self.saved_to is None:
            try:
                record = TraineeRecord.record_run(name, quiz, run, self.folder)
                self.record, self.saved_to = record, record.path
            except (QuizError, OSError) as exc:
                self.save_error = str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
        percent = f" ({result.fraction:.0%})" if result.total else ""
        lines = [f"<div style='font-size:16pt'><b>{result.correct} of {result.total}</b> right{percent}</div>"]
        extra = []
        if result.timed_out:
            extra.append(f"{result.timed_out} timed out")
        if result.mean_seconds is not None:
            extra.append(f"{result.mean_seconds:.1f} s per answer")
        if run.time_limit:
            extra.append(f"timed: {run.time_limit:g} s per cell")
        if len(run.answers) < run.total:
            extra.append(f"ended after {len(run.answers)} of {run.total} cells")
        lines.append(html.escape(f"{name} · {quiz.title}" + (" · " + ", ".join(extra) if extra else "")))
        pairs = result.confused_pairs()[:3]
        if pairs:
            lines.append("Most confused: " + "; ".join(
                f"{html.escape(display_name(t))} " + ("not answered in time" if a == NO_ANSWER else
                                                      f"taken for {html.escape(display_name(a))}") + f" ({c})"
                for t, a, c in pairs))  # fmt: skip
        self.score.setText("<br>".join(lines))
        self._fill_class_table(result)
        self._fill_confusion(result)
        if self.saved_to is not None:
            note = f"Saved to {self.saved_to}. The next quiz favours the classes you confused."
        elif self.save_error:
            note = f"<span style='color:{WRONG}'>Your answers could not be saved: {html.escape(self.save_error)}</span>"
        elif not self.save_results:
            note = "Not saved (screenshot mode)."
        else:
            note = "Nothing answered: nothing saved."
        self.results_note.setText(note)
        self._show_page(self.results_page)

    def _fill_class_table(self, result: Any) -> None:
        scores = result.by_class()
        table = self.class_table
        table.clear()
        table.setColumnCount(3)
        table.setHorizontalHeaderLabels(["class", "right", "%"])
        table.verticalHeader().setVisible(False)
        table.setRowCount(len(scores))
        for row, score in enumerate(scores):
            cells = [display_name(score.label), f"{score.correct} / {score.total}", f"{score.fraction:.0%}"]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if column == 0:
                    item.setForeground(QColor(class_colour(score.label)).darker(130))
                table.setItem(row, column, item)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table.resizeColumnsToContents()

    def _fill_confusion(self, result: Any) -> None:
        rows, columns = result.rows, result.columns
        matrix = result.matrix()
        table = self.confusion_table
        table.clear()
        table.setRowCount(len(rows))
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels([abbreviation(c) if c != NO_ANSWER else "none" for c in columns])
        table.setVerticalHeaderLabels([display_name(r) for r in rows])
        for c, name in enumerate(columns):
            header = table.horizontalHeaderItem(c)
            if header is not None:
                header.setToolTip(display_name(name) if name != NO_ANSWER else "no answer (time ran out)")
        for r, truth in enumerate(rows):
            total = max(int(matrix[r].sum()), 1)
            for c, given in enumerate(columns):
                count = int(matrix[r, c])
                item = QTableWidgetItem(str(count) if count else "·")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if count:
                    strength = 60 + int(150 * count / total)
                    colour = QColor(27, 127, 59, strength) if given == truth else QColor(179, 38, 30, strength)
                    item.setBackground(colour)
                table.setItem(r, c, item)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    # ------------------------------------------------------------------ help, messages, closing

    def show_shortcuts(self) -> None:
        classes = self.quiz.classes if self.quiz is not None else []
        sections = help_sections(classes, QUIZ_BINDINGS, QUIZ_GROUPS, classify="Answer", verb="answer", gestures=())
        rows = []
        for title, entries in sections:
            rows.append(f"<tr><td colspan=2><b>{html.escape(title)}</b></td></tr>")
            rows += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in entries]
        self._say("Keyboard shortcuts", "<table>" + "".join(rows) + "</table>", info=True)

    def _say(self, title: str, text: str, info: bool = False) -> None:
        self.statusBar().showMessage(text if "<" not in text else title, 8000)
        if self.interactive:
            (QMessageBox.information if info else QMessageBox.warning)(self, title, text)

    def closeEvent(self, event: QCloseEvent) -> None:
        # an abandoned quiz still counts: what was answered is recorded
        if self.run is not None and self.run.answers and self.saved_to is None and self.page != "results":
            self._results()
        self.timer.stop()
        super().closeEvent(event)

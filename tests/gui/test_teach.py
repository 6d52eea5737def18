"""The teaching mode with pytest-qt: a quiz answered by keys to the end, results saved, repetition, timed mode,
a quiz made from a reviewed case and opened again, and ``leukview --teach --screenshot``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from leukview.core.atlas import Atlas, default_atlas_dir, normalize_rows
from leukview.core.keymap import class_keys
from leukview.core.models import Classifier
from leukview.core.quiz import AtlasQuizSource, FileQuizSource, Quiz, TraineeRecord, trainee_file
from leukview.gui.teach import QuizWindow, atlas_source, model_loader

pytestmark = pytest.mark.gui

LABELS = ("lymphocyte", "monocyte", "neutrophil")
KEY_NAMES = {**{d: getattr(Qt.Key, f"Key_{d}") for d in "0123456789"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def smooth(seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    base = rng.uniform(40, 215, 3).astype(np.float32)
    gx, gy = rng.uniform(-40, 40, 2)
    return np.clip(base + gx * ramp[None, :, None] + gy * ramp[:, None, None], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def quiz_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny type model with a default atlas of 24 cells, 8 per class."""
    onnx_factory = pytest.importorskip("onnx_factory")
    root = tmp_path_factory.mktemp("quiz-models")
    folder = onnx_factory.make_tiny_classifier(root / "wbc-type", LABELS, seed=2)
    classifier = Classifier.load(folder)
    atlas = Atlas.create(default_atlas_dir(folder), classifier, name="quiz atlas")
    vectors = normalize_rows(np.random.default_rng(1).normal(size=(24, classifier.feature_shape[0])))
    atlas.add(vectors, np.stack([smooth(i) for i in range(24)]), [LABELS[i % 3] for i in range(24)],
              source="test-set", licence="CC0", attribution="Test et al. 2024")  # fmt: skip
    return root


def press(qtbot, window, key: str) -> None:  # noqa: ANN001
    """Press a key as the keymap writes it ("3", "Shift+1", "Return")."""
    modifiers = Qt.KeyboardModifier.NoModifier
    if key.startswith("Shift+"):
        modifiers, key = Qt.KeyboardModifier.ShiftModifier, key[len("Shift+") :]
    code = KEY_NAMES.get(key) or getattr(Qt.Key, f"Key_{key}")
    qtbot.keyClick(window.focusWidget() or window, code, modifiers)


def open_window(qtbot, source, tmp_path: Path, **kwargs) -> QuizWindow:  # noqa: ANN001, ANN003
    window = QuizWindow(source, folder=tmp_path / "trainees", interactive=False, **kwargs)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)  # window shortcuts need it active
    return window


def test_quiz_answered_by_keys_to_the_end_and_saved(qtbot, quiz_models: Path, tmp_path: Path) -> None:  # noqa: ANN001
    choice = atlas_source(quiz_models)
    assert choice.atlas.meta["name"] == "quiz atlas" and choice.entry is not None
    window = open_window(qtbot, choice.source, tmp_path, count=6, seed=1,
                         classifier=model_loader(choice.entry, choice.atlas.model_sha256))  # fmt: skip
    assert window.page == "start"
    window.trainee_edit.setFocus()
    qtbot.keyClicks(window.trainee_edit, "Dr 1 Trainee")  # digits typed in the name are not answers
    assert window.trainee_edit.text() == "Dr 1 Trainee" and window.page == "start"
    press(qtbot, window, "Return")
    assert window.page == "question", window.statusBar().currentMessage()
    assert window.quiz is not None and len(window.quiz) == 6
    assert window.quiz.counts() == dict.fromkeys(LABELS, 2)  # balanced: no history yet
    keys = dict((name, key) for key, name in class_keys(window.quiz.classes))
    assert keys["neutrophil"] == "1" and keys["lymphocyte"] == "3" and keys["monocyte"] == "4"  # as in review
    given = []
    for n, item in enumerate(window.quiz.items):
        assert window.page == "question"
        # every monocyte is called a lymphocyte, the rest answered right
        answer = "lymphocyte" if item.label == "monocyte" else item.label
        given.append(answer)
        press(qtbot, window, keys[answer])
        assert window.page == "feedback"
        verdict = window.verdict.text()
        assert ("Right" in verdict) == (answer == item.label)
        assert item.label in verdict or "NRBC" in verdict
        assert window.similar_widgets and "CC0" in window.provenance.text()
        assert window.heat_picture.pixmap() is not None and not window.heat_picture.pixmap().isNull()  # the map
        press(qtbot, window, "H")  # map off, then on again
        assert window.heat_picture.pixmap().isNull()
        press(qtbot, window, "H")
        press(qtbot, window, "Return" if n % 2 else "Space")
    assert window.page == "results"
    assert "4 of 6" in window.score.text() and "monocyte taken for lymphocyte (2)" in window.score.text()
    table = window.confusion_table
    rows = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    monocyte = rows.index("monocyte")
    columns = [table.horizontalHeaderItem(c).toolTip() for c in range(table.columnCount())]
    assert table.item(monocyte, columns.index("lymphocyte")).text() == "2"
    assert table.item(rows.index("neutrophil"), columns.index("neutrophil")).text() == "2"
    path = trainee_file("Dr 1 Trainee", tmp_path / "trainees")
    assert window.saved_to == path and path.is_file() and str(path) in window.results_note.text()
    record = TraineeRecord.load("Dr 1 Trainee", tmp_path / "trainees")
    assert len(record.attempts) == 1
    assert [a["answer"] for a in record.attempts[0]["answers"]] == given
    # R: a new quiz at once, favouring the class confused
    press(qtbot, window, "R")
    assert window.page == "question" and window.quiz.counts()["monocyte"] > 2
    # Esc ends it now: the results of what was answered, saved as a second attempt
    press(qtbot, window, keys[window.quiz.items[0].label])
    press(qtbot, window, "Escape")
    assert window.page == "results" and "ended after 1 of 6 cells" in window.score.text()
    assert len(TraineeRecord.load("Dr 1 Trainee", tmp_path / "trainees").attempts) == 2
    press(qtbot, window, "Return")
    assert window.page == "start"


def test_timed_mode_runs_out(qtbot, quiz_models: Path, tmp_path: Path) -> None:  # noqa: ANN001
    clock = Clock()
    atlas = Atlas.load(default_atlas_dir(quiz_models / "wbc-type"))
    window = open_window(qtbot, AtlasQuizSource(atlas, similar_k=0), tmp_path, trainee="T", count=3,
                         time_limit=5, seed=0, clock=clock)  # fmt: skip
    press(qtbot, window, "Return")
    assert window.page == "question" and window.time_bar.isVisible() and window.timer.isActive()
    clock.now += 2.0
    window._tick()
    assert window.page == "question" and window.time_bar.format() == "3 s left"
    clock.now += 3.5
    qtbot.waitUntil(lambda: window.page == "feedback", timeout=3000)  # the window's own timer
    assert "Time is up" in window.verdict.text()
    assert window.run.answers[-1].timed_out
    press(qtbot, window, "Return")
    clock.now += 9.0  # answered after the time: counts as no answer
    press(qtbot, window, "1")
    assert window.run.answers[-1].timed_out


def test_quiz_from_a_reviewed_case_opens_offline(qtbot, make_window, analysed, dialogs, quiz_models: Path,  # noqa: ANN001
                                                 sample: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(quiz_models, models)
    window = make_window(models)
    analysed(window, sample)
    assert window.make_quiz(tmp_path / "nothing.leukquiz") is None  # nothing reviewed yet
    assert dialogs[-1][:2] == ("warning", "Make quiz") and "No cell is reviewed" in dialogs[-1][2]
    white = [c.id for c in window.document.cells if c.kind == "wbc"]
    window.select_cell(white[0])
    press(qtbot, window, "5")  # eosinophil, by the review keys
    reviewed = [c for c in window.document.cells if c.review.reviewed]
    assert len(reviewed) == 1 and reviewed[0].review.label == "eosinophil"
    path = window.make_quiz(tmp_path / "case")
    assert path == tmp_path / "case.leukquiz" and path.is_file()
    assert dialogs[-1][0] == "information" and "Quiz of 1 cells (1 eosinophil)" in dialogs[-1][2]
    quiz = Quiz.load(path)
    assert [i.label for i in quiz.items] == ["eosinophil"] and "eosinophil" in quiz.classes
    assert quiz.items[0].cam is not None  # the tiny model's map went with it
    assert quiz.items[0].similar  # the model's atlas cells most like it, thumbnails embedded
    # another LeukView: no case, no atlas, only the file
    shutil.rmtree(models)
    quiz_window = window.open_quiz_file(path)
    assert quiz_window is not None and isinstance(quiz_window.source, FileQuizSource)
    qtbot.addWidget(quiz_window)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is quiz_window)
    quiz_window.folder = tmp_path / "trainees"
    quiz_window.interactive = False
    quiz_window.trainee_edit.setText("Trainee B")
    quiz_window.start()
    keys = dict((name, key) for key, name in class_keys(quiz_window.quiz.classes))
    press(qtbot, quiz_window, keys["eosinophil"])
    assert "Right" in quiz_window.verdict.text()
    press(qtbot, quiz_window, "Return")
    assert quiz_window.page == "results" and "1 of 1" in quiz_window.score.text()
    assert trainee_file("Trainee B", tmp_path / "trainees").is_file()
    quiz_window.close()


def test_teach_screenshot(quiz_models: Path, tmp_path: Path, qapp) -> None:  # noqa: ANN001
    from leukview.gui.app import main

    out = tmp_path / "quiz.png"
    assert main(["--teach", "--screenshot", str(out), "--models-dir", str(quiz_models), "--cells", "4"]) == 0
    assert out.is_file() and out.stat().st_size > 5000
    assert not (tmp_path / "trainees").exists()
    quiz = Atlas.load(default_atlas_dir(quiz_models / "wbc-type"))
    from leukview.core.quiz import quiz_from_atlas

    file = quiz_from_atlas(quiz, 3, seed=0).save(tmp_path / "three.leukquiz")
    out2 = tmp_path / "file.png"
    assert main(["--teach", str(file), "--screenshot", str(out2)]) == 0 and out2.is_file()
    assert main(["--teach", str(tmp_path / "missing.leukquiz"), "--screenshot", str(out2)]) == 1
    assert main(["--teach", "--timed", "-1", "--screenshot", str(out2)]) == 2

"""The quiz model without Qt: runs, timed expiry, scores, confusion, repetition, files, quizzes from atlases and cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cell_factory import TYPE, make_cell
from onnx_factory import make_tiny_classifier

from leukview.core.analysis import Analysis
from leukview.core.atlas import Atlas, normalize_rows
from leukview.core.cells import ReviewState
from leukview.core.models import Classifier
from leukview.core.quiz import (
    NO_ANSWER,
    QUIZ_FORMAT,
    Answer,
    AtlasQuizSource,
    FileQuizSource,
    Quiz,
    QuizError,
    QuizItem,
    QuizRun,
    ReferenceCell,
    TraineeRecord,
    cam_of_image,
    choose_items,
    quiz_from_atlas,
    quiz_from_cells,
    quiz_from_session,
    trainee_file,
)
from leukview.core.session import Session
from leukview.core.similar import SimilarSearch

LABELS = ("lymphocyte", "monocyte", "neutrophil")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def smooth_image(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    base = rng.uniform(40, 215, 3).astype(np.float32)
    gx, gy = rng.uniform(-40, 40, 2)
    return np.clip(base + gx * ramp[None, :, None] + gy * ramp[:, None, None], 0, 255).astype(np.uint8)


def make_quiz(labels: list[str], title: str = "test quiz", cam: bool = False) -> Quiz:
    items = [
        QuizItem(f"c{i}", smooth_image(i), label, "test-set", "CC0", "", f"cell {i}",
                 np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4) if cam else None,
                 (ReferenceCell(label, "test-set", 0.125, smooth_image(100 + i, 20), f"r{i}"),))
        for i, label in enumerate(labels)
    ]  # fmt: skip
    return Quiz(title, items, list(LABELS))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    return Classifier.load(make_tiny_classifier(tmp_path_factory.mktemp("models") / "wbc-type", LABELS, seed=1))


@pytest.fixture(scope="module")
def atlas(tmp_path_factory: pytest.TempPathFactory, tiny: Classifier) -> Atlas:
    """30 cells, 10 per class, with random embeddings and smooth thumbnails."""
    made = Atlas.create(tmp_path_factory.mktemp("atlas") / "a", tiny, name="quiz atlas")
    rng = np.random.default_rng(0)
    vectors = normalize_rows(rng.normal(size=(30, tiny.feature_shape[0])))
    crops = np.stack([smooth_image(i, 32) for i in range(30)])
    made.add(vectors, crops, [LABELS[i % 3] for i in range(30)], source="test-set", licence="CC0", attribution="Someone 2020")
    return made


# -- a run ---------------------------------------------------------------------


def test_run_scores_by_class_and_confusion() -> None:
    clock = Clock()
    quiz = make_quiz(["neutrophil", "neutrophil", "monocyte", "lymphocyte", "lymphocyte"])
    run = QuizRun(quiz, clock=clock)
    given = ["neutrophil", "monocyte", "monocyte", "neutrophil", "lymphocyte"]
    for n, label in enumerate(given):
        assert run.state == "question" and run.item is quiz.items[n]
        clock.now += 2.0 + n
        answer = run.answer(label)
        assert run.state == "feedback" and run.last is answer
        assert answer.seconds == pytest.approx(2.0 + n) and answer.truth == quiz.items[n].label
        with pytest.raises(RuntimeError):
            run.answer(label)  # one answer per cell
        run.next()
    assert run.state == "done" and run.item is None and run.finished
    result = run.result()
    assert (result.correct, result.total) == (3, 5) and result.fraction == pytest.approx(0.6)
    scores = {s.label: (s.correct, s.total) for s in result.by_class()}
    assert scores == {"neutrophil": (1, 2), "monocyte": (1, 1), "lymphocyte": (1, 2)}
    assert [s.label for s in result.by_class()] == ["neutrophil", "lymphocyte", "monocyte"]  # clinical order
    table = result.confusion()
    assert table["neutrophil"] == {"neutrophil": 1, "lymphocyte": 0, "monocyte": 1}
    assert table["lymphocyte"]["neutrophil"] == 1 and table["lymphocyte"]["lymphocyte"] == 1
    assert result.matrix().sum() == 5 and np.trace(result.matrix()) == 3
    assert result.confused_pairs() == [("neutrophil", "monocyte", 1), ("lymphocyte", "neutrophil", 1)]
    assert NO_ANSWER not in result.columns and result.mean_seconds == pytest.approx(4.0)


def test_timed_mode_expires_and_late_answers_do_not_count() -> None:
    clock = Clock()
    quiz = make_quiz(["neutrophil", "monocyte", "lymphocyte"])
    run = QuizRun(quiz, time_limit=5.0, clock=clock)
    assert run.time_left() == pytest.approx(5.0)
    clock.now += 3.0
    assert run.time_left() == pytest.approx(2.0) and run.expire() is None
    clock.now += 2.5
    expired = run.expire()
    assert expired is not None and expired.timed_out and expired.answer is None and expired.seconds == 5.0
    assert run.time_left() is None  # in feedback: no clock
    run.next()
    clock.now += 6.0  # the key came after the time was up
    late = run.answer("monocyte")
    assert late.timed_out and not late.correct
    run.next()
    clock.now += 1.0
    assert run.answer("lymphocyte").correct
    run.next()
    result = run.result()
    assert result.timed_out == 2 and result.correct == 1 and result.columns[-1] == NO_ANSWER
    assert result.confusion()["neutrophil"][NO_ANSWER] == 1
    with pytest.raises(ValueError):
        QuizRun(quiz, time_limit=0)
    assert QuizRun(Quiz("t", [], []), clock=clock).state == "done"


# -- files ---------------------------------------------------------------------


def test_quiz_file_round_trip(tmp_path: Path) -> None:
    quiz = make_quiz(["neutrophil", "monocyte", "lymphocyte", "neutrophil"], cam=True)
    quiz.time_limit = 8.0
    path = quiz.save(tmp_path / "case.leukquiz")
    data = json.loads(path.read_text())
    assert data["format"] == QUIZ_FORMAT and len(data["items"]) == 4 and isinstance(data["items"][0]["image"], str)
    again = Quiz.load(path)
    assert again.title == quiz.title and again.classes == quiz.classes and again.time_limit == 8.0
    assert again.quiz_id == quiz.quiz_id
    for before, after in zip(quiz.items, again.items, strict=True):
        assert (after.id, after.label, after.source, after.licence, after.detail) == (
            before.id, before.label, before.source, before.licence, before.detail)  # fmt: skip
        assert after.image.shape == before.image.shape
        assert np.abs(after.image.astype(int) - before.image.astype(int)).mean() < 3  # JPEG
        np.testing.assert_allclose(after.cam, before.cam, atol=1 / 255)
        assert after.similar[0].label == before.similar[0].label and after.similar[0].distance == 0.125
        assert after.similar[0].image.shape == (20, 20, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not a LeukView quiz"),
        ('{"format": "leukview-quiz", "schema_version": 99, "items": []}', "newer LeukView"),
        ('{"format": "leukview-quiz", "schema_version": 1, "items": []}', "no cells"),
        ('{"format": "leukview-quiz", "schema_version": 1, "items": [{"id": "a", "label": "x", "image": "!!"}]}',
         "cell 1"),
        ('{"format": "leukview-quiz", "schema_version": 1, "items": [{"id": "a", "image": ""}]}', "cell 1 has no 'label'"),
    ],
)
def test_damaged_quiz_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.leukquiz"
    path.write_text(content)
    with pytest.raises(QuizError, match=message) as info:
        Quiz.load(path)
    assert info.value.path == str(path)
    with pytest.raises(QuizError, match="not found"):
        Quiz.load(tmp_path / "missing.leukquiz")


# -- choosing cells and spaced repetition -----------------------------------------


def test_choose_items_balances_classes() -> None:
    candidates = [(f"{label}-{i}", label) for label in LABELS for i in range(10)]
    chosen = choose_items(candidates, 9, seed=1)
    assert len(chosen) == len(set(chosen)) == 9
    assert {label: sum(c.startswith(label) for c in chosen) for label in LABELS} == dict.fromkeys(LABELS, 3)
    few = choose_items(candidates, 2, seed=1)
    assert len(few) == 2 and len({c.split("-")[0] for c in few}) == 2
    assert sorted(choose_items(candidates, 100, seed=1)) == sorted(c for c, _ in candidates)
    unbalanced = [(f"n{i}", "neutrophil") for i in range(20)] + [("m0", "monocyte")]
    assert "m0" in choose_items(unbalanced, 4, seed=0)


def answers_record(tmp_path: Path, wrong_truth: str, wrong_answer: str, attempts: int = 2) -> TraineeRecord:
    record = TraineeRecord.load("Dr Trainee", tmp_path)
    for n in range(attempts):
        quiz = make_quiz(["neutrophil", wrong_truth, "lymphocyte", wrong_truth], title=f"round {n}")
        run = QuizRun(quiz)
        for item in quiz.items:
            run.answer(wrong_answer if item.label == wrong_truth else item.label)
            run.next()
        record.add_attempt(quiz, run)
    return record


def test_repetition_favours_the_classes_a_trainee_confuses(tmp_path: Path) -> None:
    record = answers_record(tmp_path, "monocyte", "lymphocyte")
    weights = record.class_weights(list(LABELS))
    assert weights["monocyte"] > weights["lymphocyte"] > weights["neutrophil"]
    assert record.box("c1") == 1 and record.box("c0") == 3 and record.box("never") is None
    assert record.priority("c1") < record.priority("never") < record.priority("c0")
    candidates = [(f"{label}-{i}", label) for label in LABELS for i in range(10)]
    fresh = choose_items(candidates, 12, seed=2)
    favoured = choose_items(candidates, 12, record, seed=2)
    count = lambda ids, label: sum(i.startswith(label) for i in ids)  # noqa: E731
    assert count(favoured, "monocyte") > count(fresh, "monocyte") == 4
    assert all(count(favoured, label) >= 1 for label in LABELS)
    # within a class the missed cells come first: c1 and c3 were missed monocytes
    items = [("c1", "monocyte"), ("c3", "monocyte"), ("x1", "monocyte"), ("c0", "neutrophil"), ("x2", "neutrophil")]
    assert set(choose_items(items, 3, record, seed=0)) == {"c1", "c3", "x2"}


def test_trainee_record_file(tmp_path: Path) -> None:
    record = answers_record(tmp_path, "neutrophil", "monocyte", attempts=1)
    path = record.save()
    assert path == trainee_file("Dr Trainee", tmp_path) and path.parent == tmp_path
    assert trainee_file("Dr Trainee", tmp_path) != trainee_file("dr trainee", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    again = TraineeRecord.load("Dr Trainee", tmp_path)
    assert again.attempts == record.attempts and again.boxes == record.boxes
    assert again.attempts[0]["score"] == {"correct": 1, "total": 4}  # three neutrophils called monocytes
    assert [Answer.from_dict(a).answer for a in again.attempts[0]["answers"]][1] == "monocyte"
    # another window recorded an attempt meanwhile: record_run reads the file afresh
    quiz = make_quiz(["lymphocyte"])
    run = QuizRun(quiz)
    run.answer("lymphocyte")
    run.next()
    TraineeRecord.record_run("Dr Trainee", quiz, run, tmp_path)
    TraineeRecord.record_run("Dr Trainee", quiz, run, tmp_path)
    assert len(TraineeRecord.load("Dr Trainee", tmp_path).attempts) == 3
    # a damaged file is set aside, never lost, and a new record starts
    path.write_text('{"format": "leukview-trainee", "attempts": [{"answers": [{}]}]}')
    with pytest.raises(QuizError, match="damaged"):
        TraineeRecord.load("Dr Trainee", tmp_path)
    fresh, note = TraineeRecord.open("Dr Trainee", tmp_path)
    assert fresh.attempts == [] and "damaged" in note and (tmp_path / (path.name + ".damaged")).is_file()
    with pytest.raises(QuizError):
        trainee_file("  ", tmp_path)


# -- quizzes from an atlas and from a case -------------------------------------------


def test_quiz_from_atlas(atlas: Atlas, tiny: Classifier) -> None:
    quiz = quiz_from_atlas(atlas, 6, seed=3, similar_k=3, time_limit=10)
    assert len(quiz) == 6 and quiz.counts() == dict.fromkeys(LABELS, 2)
    assert quiz.classes == ["neutrophil", "lymphocyte", "monocyte"] and quiz.time_limit == 10
    assert quiz.origin["model"]["sha256"] == tiny.spec.sha256
    for item in quiz.items:
        entry = atlas.entry(item.id)
        assert item.label == entry.label and item.attribution == "Someone 2020" and item.licence == "CC0"
        np.testing.assert_array_equal(item.image, atlas.thumbnail(item.id))
        assert len(item.similar) == 3 and item.id not in {s.atlas_id for s in item.similar}
        assert [s.atlas_id for s in item.similar] == [
            n.atlas_id for n in atlas.search(atlas.embedding(item.id), 3, exclude=[{item.id}])[0]
        ]
    cam = cam_of_image(tiny, quiz.items[0].image)
    assert cam is not None and cam.shape == (8, 8) and cam.min() >= 0.0 and cam.max() <= 1.0
    source = AtlasQuizSource(atlas, similar_k=0)
    drawn = source.draw(4, seed=1)
    assert len(drawn) == 4 and all(not i.similar for i in drawn.items)
    assert {i.id for i in quiz_from_atlas(atlas, 3, classes=["monocyte"]).items} <= {
        e.atlas_id for e in atlas.entries if e.label == "monocyte"}  # fmt: skip
    with pytest.raises(QuizError):
        quiz_from_atlas(atlas, 3, classes=["basophil"])


def case_image() -> np.ndarray:
    image = np.full((200, 300, 3), 220, np.uint8)
    for n, x in enumerate((40, 120, 200, 280)):
        image[40:80, x - 20 : x + 20] = (60 + 40 * n, 40, 160 - 30 * n)
    return image


def test_quiz_from_session_takes_the_reviewed_cells(tmp_path: Path, atlas: Atlas, tiny: Classifier) -> None:
    image = case_image()
    cells = [make_cell(n + 1, x=float(x), y=60.0, half=18.0, wbc_type=("neutrophil", 0.9))
             for n, x in enumerate((40, 120, 200, 280))]  # fmt: skip
    cells[0].review = ReviewState("monocyte", "jdoe", "2024-05-02T10:00:00+02:00")
    cells[2].review = ReviewState("lymphocyte", "jdoe", "2024-05-02T10:01:00+02:00")
    cells[3].review = ReviewState("neutrophil", None, None)  # at the border: the crop is mirrored
    cells[0].predictions["wbc-type"].cam = np.eye(4, dtype=np.float32)
    cells[0].predictions["wbc-type"].cam_box = (10.0, 20.0, 70.0, 80.0)
    session = Session.new(Analysis(300, 200, cells, [TYPE]), tmp_path / "case.png")
    quiz = quiz_from_session(session, image, author="trainer", item_size=64)
    assert [i.label for i in quiz.items] == ["monocyte", "lymphocyte", "neutrophil"]
    assert quiz.title == "Case case.png" and quiz.author == "trainer" and quiz.origin["kind"] == "case"
    assert all(i.image.shape == (64, 64, 3) for i in quiz.items)
    np.testing.assert_array_equal(quiz.items[0].cam, np.eye(4))
    assert quiz.items[1].cam is None and "cell 3, reviewed by jdoe" in quiz.items[1].detail
    assert set(TYPE.classes) <= set(quiz.classes) and "monocyte" in quiz.classes
    # the item was cut to its map's box (10..70, 20..80): the blue-ish cell fills its middle
    assert tuple(quiz.items[0].image[32, 32]) == pytest.approx((60, 40, 160), abs=3)
    again = Quiz.load(quiz.save(tmp_path / "case.leukquiz"))
    assert [i.label for i in again.items] == [i.label for i in quiz.items]
    assert FileQuizSource(again).draw(2, seed=0).items[0].id in {i.id for i in quiz.items}
    # with an atlas search each item carries its nearest reference cells
    search = SimilarSearch(tiny, [atlas])
    with_similar = quiz_from_cells(image, cells, [TYPE], search=search, similar_k=2)
    assert all(len(i.similar) == 2 and i.similar[0].image is not None for i in with_similar.items)
    for cell in cells:
        cell.review = ReviewState()
    with pytest.raises(QuizError, match="no reviewed cell"):
        quiz_from_session(session, image)

"""Answering a quiz: a run with its per-cell timer, and the score by class and confusion table."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..classes import active_classes
from ..session import now_iso
from ..similar import same_label
from ._items import ordered_classes

if TYPE_CHECKING:
    from ._items import Quiz, QuizItem

#: The confusion table's column for a cell whose time ran out.
NO_ANSWER = "(no answer)"


@dataclass(frozen=True)
class Answer:
    """One answer of a trainee.

    Attributes
    ----------
    item_id, truth : str
        The cell and its reference label.
    answer : str or None
        The class the trainee chose; None when the time ran out.
    seconds : float
        From showing the cell to the answer.
    """

    item_id: str
    truth: str
    answer: str | None
    seconds: float

    @property
    def correct(self) -> bool:
        return same_label(self.truth, self.answer)

    @property
    def timed_out(self) -> bool:
        return self.answer is None

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item_id, "truth": self.truth, "answer": self.answer,
                "seconds": round(float(self.seconds), 3), "timed_out": self.timed_out}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Answer:
        answer = data.get("answer")
        return cls(str(data["item"]), str(data["truth"]), None if answer is None else str(answer),
                   float(data.get("seconds", 0.0)))  # fmt: skip


class QuizRun:
    """One pass through a quiz: question -> (answer or time out) -> feedback -> next -> ... -> done.

    Parameters
    ----------
    quiz : Quiz
    time_limit : float, optional
        Seconds per cell (the timed mode); the quiz's own limit by default; None: untimed.
    clock : callable
        Monotonic seconds (tests pass their own).

    Attributes
    ----------
    state : {'question', 'feedback', 'done'}
    answers : list of Answer
    """

    def __init__(self, quiz: Quiz, time_limit: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        limit = quiz.time_limit if time_limit is None else time_limit
        if limit is not None and not (np.isfinite(limit) and limit > 0):
            raise ValueError(f"the time limit must be a positive number of seconds, got {limit}")
        self.quiz = quiz
        self.time_limit = None if limit is None else float(limit)
        self.clock = clock
        self.index = 0
        self.answers: list[Answer] = []
        self.started = now_iso()
        self.finished: str | None = None
        self.state = "question" if quiz.items else "done"
        self._shown = clock()

    @property
    def total(self) -> int:
        return len(self.quiz.items)

    @property
    def item(self) -> QuizItem | None:
        """The cell asked (or, in feedback, just answered); None when done."""
        return self.quiz.items[self.index] if self.index < self.total else None

    @property
    def last(self) -> Answer | None:
        """The answer the feedback is about."""
        return self.answers[-1] if self.answers and self.state == "feedback" else None

    def time_left(self) -> float | None:
        """Seconds left on the current cell (timed mode, while asking); None otherwise."""
        if self.time_limit is None or self.state != "question":
            return None
        return max(0.0, self.time_limit - (self.clock() - self._shown))

    def restart_clock(self) -> None:
        """Start the current cell's time now (when it is really shown)."""
        self._shown = self.clock()

    def _record(self, answer: str | None) -> Answer:
        item = self.item
        assert item is not None
        seconds = self.clock() - self._shown
        if self.time_limit is not None:
            seconds = min(seconds, self.time_limit)
        recorded = Answer(item.id, item.label, answer, max(seconds, 0.0))
        self.answers.append(recorded)
        self.state = "feedback"
        return recorded

    def answer(self, label: str) -> Answer:
        """Answer the current cell with a class; in the timed mode a late answer counts as no answer.

        Raises
        ------
        RuntimeError
            Not asking (in feedback, or done).
        """
        if self.state != "question":
            raise RuntimeError(f"no question to answer (the quiz is in {self.state})")
        left = self.time_left()
        return self._record(None if left is not None and left <= 0.0 else label)

    def expire(self) -> Answer | None:
        """Record no answer when the current cell's time is up (call it from a timer); None otherwise."""
        left = self.time_left()
        if left is None or left > 0.0:
            return None
        return self._record(None)

    def next(self) -> QuizItem | None:
        """Leave the feedback for the next cell (its time starts now); None when that was the last."""
        if self.state != "feedback":
            raise RuntimeError(f"no feedback to leave (the quiz is in {self.state})")
        self.index += 1
        if self.index >= self.total:
            self.state = "done"
            self.finished = now_iso()
            return None
        self.state = "question"
        self._shown = self.clock()
        return self.item

    def result(self) -> QuizResult:
        return QuizResult(self.answers, self.quiz.classes)


@dataclass(frozen=True)
class ClassScore:
    """Right answers for the cells of one reference class."""

    label: str
    correct: int
    total: int

    @property
    def fraction(self) -> float:
        return self.correct / self.total if self.total else 0.0


class QuizResult:
    """Score by class and confusion table of a set of answers.

    Parameters
    ----------
    answers : sequence of Answer
    classes : sequence of str
        The quiz's classes: the order of rows and columns.
    """

    def __init__(self, answers: Sequence[Answer], classes: Sequence[str] = ()) -> None:
        self.answers = list(answers)
        lab = active_classes()
        self._canon = lab.canonical
        truths = [self._canon(a.truth) for a in self.answers]
        given = [self._canon(a.answer) for a in self.answers if a.answer is not None]
        self.classes = ordered_classes([*(self._canon(c) for c in classes), *truths, *given])

    @property
    def total(self) -> int:
        return len(self.answers)

    @property
    def correct(self) -> int:
        return sum(a.correct for a in self.answers)

    @property
    def fraction(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def timed_out(self) -> int:
        return sum(a.timed_out for a in self.answers)

    @property
    def mean_seconds(self) -> float | None:
        answered = [a.seconds for a in self.answers if not a.timed_out]
        return float(np.mean(answered)) if answered else None

    def by_class(self) -> list[ClassScore]:
        """One score per reference class that was asked, in class order."""
        scores = []
        for label in self.classes:
            asked = [a for a in self.answers if self._canon(a.truth) == label]
            if asked:
                scores.append(ClassScore(label, sum(a.correct for a in asked), len(asked)))
        return scores

    @property
    def rows(self) -> list[str]:
        """The confusion table's rows: the reference classes asked."""
        return [s.label for s in self.by_class()]

    @property
    def columns(self) -> list[str]:
        """Its columns: the classes, then :data:`NO_ANSWER` when a time ran out."""
        return list(self.classes) + ([NO_ANSWER] if self.timed_out else [])

    def confusion(self) -> dict[str, dict[str, int]]:
        """``confusion[truth][answer]``: how often a cell of ``truth`` was called ``answer``."""
        table = {row: dict.fromkeys(self.columns, 0) for row in self.rows}
        for a in self.answers:
            column = NO_ANSWER if a.answer is None else self._canon(a.answer)
            table[self._canon(a.truth)][column] += 1
        return table

    def matrix(self) -> np.ndarray:
        """:meth:`confusion` as an int array (len(rows), len(columns))."""
        table = self.confusion()
        return np.array([[table[r][c] for c in self.columns] for r in self.rows], np.int64).reshape(
            len(self.rows), len(self.columns)
        )

    def confused_pairs(self) -> list[tuple[str, str, int]]:
        """(truth, answer, count) of the wrong answers, most frequent first."""
        pairs = [
            (row, column, count)
            for row, counts in self.confusion().items()
            for column, count in counts.items()
            if count and column != row
        ]
        return sorted(pairs, key=lambda p: (-p[2], self.rows.index(p[0]), self.columns.index(p[1])))

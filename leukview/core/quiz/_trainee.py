"""Trainees' records: one JSON file per trainee with every attempt and a Leitner box per cell."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_write_json
from ..classes import active_classes
from ..session import now_iso
from ..similar import app_data_folder
from ._items import QuizError
from ._run import Answer

if TYPE_CHECKING:
    from ._items import Quiz
    from ._run import QuizRun

TRAINEE_FORMAT = "leukview-trainee"
TRAINEE_SCHEMA_VERSION = 1
#: Overrides the folder of the trainees' result files.
TRAINEES_ENV = "LEUKVIEW_TRAINEES_DIR"
#: Leitner boxes: a missed cell goes back to box 1, a right answer moves it up one.
LEITNER_BOXES = 5
#: Where an unseen cell ranks among the boxes: after the missed ones, before those answered right.
UNSEEN_PRIORITY = 1.5
#: Weight of an attempt's answers per attempt back in time (the latest counts 1).
RECENCY = 0.7


def trainees_folder() -> Path:
    """Where each trainee's results file lives: ``$LEUKVIEW_TRAINEES_DIR``, else ``<data folder>/trainees``."""
    override = os.environ.get(TRAINEES_ENV)
    return Path(override) if override else app_data_folder() / "trainees"


def trainee_file(name: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """The results file of a trainee: a readable slug of the name and a hash of it (names never collide)."""
    name = name.strip()
    if not name:
        raise QuizError("a trainee needs a name")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "trainee"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return Path(trainees_folder() if folder is None else folder) / f"{slug}-{digest}.json"


# ---------------------------------------------------------------------------
# trainees


class TraineeRecord:
    """One trainee's attempts and Leitner boxes, kept in one JSON file.

    Parameters
    ----------
    name : str
    path : Path
        Its file (:func:`trainee_file`).
    attempts : list of dict
    boxes : dict
        item id -> ``{"box": 1..5, "seen": n, "last": time}``.
    """

    def __init__(self, name: str, path: Path, attempts: list[dict[str, Any]] | None = None,
                 boxes: dict[str, dict[str, Any]] | None = None, created: str | None = None) -> None:  # fmt: skip
        self.name = name
        self.path = path
        self.attempts = attempts or []
        self.boxes = boxes or {}
        self.created = created or now_iso()

    @classmethod
    def load(cls, name: str, folder: str | os.PathLike[str] | None = None) -> TraineeRecord:
        """The trainee's record (a new, empty one when they have none yet).

        Raises
        ------
        QuizError
            The file exists but cannot be read or is damaged (see :meth:`open`).
        """
        path = trainee_file(name, folder)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(name.strip(), path)
        except (OSError, UnicodeDecodeError) as exc:
            raise QuizError(f"cannot read the trainee's results ({getattr(exc, 'strerror', None) or exc})", path) from exc
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != TRAINEE_FORMAT:
                raise ValueError(f"format is not '{TRAINEE_FORMAT}'")
            if int(data.get("schema_version", 0)) > TRAINEE_SCHEMA_VERSION:
                raise QuizError("the results were written by a newer LeukView: update LeukView", path)
            attempts = data.get("attempts", [])
            boxes = data.get("boxes", {})
            if not isinstance(attempts, list) or not isinstance(boxes, dict):
                raise ValueError("attempts or boxes are damaged")
            for attempt in attempts:
                [Answer.from_dict(a) for a in attempt["answers"]]
            for value in boxes.values():
                int(value["box"])
        except QuizError:
            raise
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise QuizError(f"the trainee's results are damaged ({exc})", path) from exc
        return cls(str(data.get("trainee") or name.strip()), path, attempts, boxes, data.get("created"))

    @classmethod
    def open(cls, name: str, folder: str | os.PathLike[str] | None = None) -> tuple[TraineeRecord, str]:
        """:meth:`load`, but a damaged file is moved aside (``.damaged``) and a new record started.

        Returns
        -------
        record : TraineeRecord
        note : str
            Empty, or what happened to a damaged file (to tell the trainee).
        """
        try:
            return cls.load(name, folder), ""
        except QuizError as exc:
            if "newer LeukView" in exc.reason:
                raise
            path = trainee_file(name, folder)
            aside = path.with_name(path.name + ".damaged")
            try:
                os.replace(path, aside)
            except OSError:
                raise exc from None
            return cls(name.strip(), path), f"{exc.reason}; it was kept as {aside.name} and a new record started"

    def to_dict(self) -> dict[str, Any]:
        return {"format": TRAINEE_FORMAT, "schema_version": TRAINEE_SCHEMA_VERSION, "trainee": self.name,
                "created": self.created, "updated": now_iso(), "boxes": self.boxes,
                "attempts": self.attempts}  # fmt: skip

    def save(self) -> Path:
        """Write the record atomically (the previous file stays whole if this fails)."""
        return atomic_write_json(self.path, self.to_dict(), indent=1, compact=False)

    # -- what the record says ----------------------------------------------

    def answers(self) -> list[tuple[int, Answer]]:
        """(attempts back from the latest, answer) of every recorded answer."""
        out: list[tuple[int, Answer]] = []
        count = len(self.attempts)
        for n, attempt in enumerate(self.attempts):
            out.extend((count - 1 - n, Answer.from_dict(a)) for a in attempt.get("answers", []))
        return out

    def class_weights(self, classes: Sequence[str]) -> dict[str, float]:
        """How much each class is favoured in the next quiz: its smoothed rate of confusion.

        ``w = (wrong + f / 2 + 1) / (seen + f / 2 + 2)``: ``seen`` counts the
        cells of the class asked, ``wrong`` the wrong answers on them and ``f``
        the times the class was wrongly given for another (half weight: a
        class mistaken for others is confused too). Each answer weighs
        :data:`RECENCY` per attempt back. Without history every class weighs
        0.5 (a balanced quiz); the weights stay below 1.
        """
        canon = active_classes().canonical
        seen = dict.fromkeys(classes, 0.0)
        wrong = dict.fromkeys(classes, 0.0)
        false = dict.fromkeys(classes, 0.0)
        keys = {canon(c): c for c in classes}
        for back, answer in self.answers():
            weight = RECENCY**back
            truth = keys.get(canon(answer.truth))
            if truth is not None:
                seen[truth] += weight
                if not answer.correct:
                    wrong[truth] += weight
            given = keys.get(canon(answer.answer)) if answer.answer is not None else None
            if given is not None and not answer.correct:
                false[given] += weight
        return {c: (wrong[c] + false[c] / 2 + 1.0) / (seen[c] + false[c] / 2 + 2.0) for c in classes}

    def box(self, item_id: str) -> int | None:
        """The cell's Leitner box (1 = missed last time), None when never asked."""
        entry = self.boxes.get(item_id)
        return None if entry is None else int(entry["box"])

    def priority(self, item_id: str) -> float:
        """Order within a class: missed cells (box 1), unseen (:data:`UNSEEN_PRIORITY`), then higher boxes."""
        box = self.box(item_id)
        return UNSEEN_PRIORITY if box is None else float(box)

    def add_attempt(self, quiz: Quiz, run: QuizRun) -> dict[str, Any]:
        """Record a (finished or abandoned) run and move each answered cell between boxes."""
        result = run.result()
        attempt = {
            "quiz": quiz.title, "quiz_id": quiz.quiz_id, "origin": quiz.origin.get("kind", ""),
            "started": run.started, "finished": run.finished or now_iso(), "time_limit": run.time_limit,
            "score": {"correct": result.correct, "total": result.total},
            "answers": [a.to_dict() for a in run.answers],
        }  # fmt: skip
        self.attempts.append(attempt)
        when = attempt["finished"]
        for answer in run.answers:
            entry = self.boxes.setdefault(answer.item_id, {"box": 1, "seen": 0, "last": when})
            entry["box"] = min(int(entry["box"]) + 1, LEITNER_BOXES) if answer.correct else 1
            entry["seen"] = int(entry.get("seen", 0)) + 1
            entry["last"] = when
        return attempt

    @classmethod
    def record_run(cls, name: str, quiz: Quiz, run: QuizRun, folder: str | os.PathLike[str] | None = None) -> TraineeRecord:
        """Read the trainee's file afresh, add the run and save (another window's attempts are kept)."""
        record, _note = cls.open(name, folder)
        record.add_attempt(quiz, run)
        record.save()
        return record

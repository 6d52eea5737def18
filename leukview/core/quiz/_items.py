"""A quiz and its cells, its self-contained file, and choosing which cells to ask."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..atomic import atomic_write_json
from ..classes import active_classes
from ..errors import LeukViewError
from ..session import now_iso
from ..similar import same_label

QUIZ_FORMAT = "leukview-quiz"
QUIZ_SCHEMA_VERSION = 1
QUIZ_SUFFIX = ".leukquiz"
MAX_QUIZ_BYTES = 256 * 1024 * 1024
_JPEG_QUALITY = 92


class QuizError(LeukViewError):
    """A quiz or trainee file that cannot be read or written, or a quiz that cannot be made."""


def ordered_classes(labels: Iterable[str]) -> list[str]:
    """Labels without repeats, in the laboratory's clinical order (unknown ones after, as given)."""
    classes = active_classes()
    unique = list(dict.fromkeys(labels))
    position = {name: i for i, name in enumerate(unique)}
    return sorted(unique, key=lambda n: (classes.rank(n) if classes.rank(n) is not None else len(classes), position[n]))


class _Record(Protocol):
    """What choosing cells asks of a trainee's record (:class:`~leukview.core.quiz.TraineeRecord`)."""

    def class_weights(self, classes: Sequence[str]) -> dict[str, float]: ...

    def priority(self, item_id: str) -> float: ...


# ---------------------------------------------------------------------------
# encoding images and maps


def _encode_jpeg(image: np.ndarray) -> str:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
    )
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise QuizError("cannot encode a cell image")
    return base64.b64encode(data.tobytes()).decode("ascii")


def _decode_jpeg(text: str, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise QuizError(f"{where}: the image is not base64 ({exc})") from exc
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise QuizError(f"{where}: the image is not a JPEG or PNG")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def _encode_map(grid: np.ndarray) -> dict[str, Any]:
    data = np.round(np.clip(np.nan_to_num(np.asarray(grid, np.float32)), 0.0, 1.0) * 255.0).astype(np.uint8)
    return {"shape": list(data.shape), "data": base64.b64encode(data.tobytes()).decode("ascii")}


def _decode_map(item: Any, where: str) -> np.ndarray:
    try:
        shape = tuple(int(v) for v in item["shape"])
        raw = np.frombuffer(base64.b64decode(item["data"], validate=True), np.uint8)
        if len(shape) != 2 or min(shape) < 1 or raw.size != shape[0] * shape[1]:
            raise ValueError(f"{raw.size} values for shape {shape}")
    except (KeyError, TypeError, ValueError) as exc:
        raise QuizError(f"{where}: the map is damaged ({exc})") from exc
    return raw.reshape(shape).astype(np.float32) / 255.0


# ---------------------------------------------------------------------------
# the quiz


@dataclass(frozen=True)
class ReferenceCell:
    """A reference cell shown in the feedback (one of the atlas cells most like the item).

    Attributes
    ----------
    label, source : str
    distance : float
        Cosine distance of the embeddings.
    image : ndarray of uint8, shape (t, t, 3), or None
    atlas_id : str
    """

    label: str
    source: str
    distance: float
    image: np.ndarray | None = None
    atlas_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "atlas_id": self.atlas_id,
            "label": self.label,
            "source": self.source,
            "distance": round(float(self.distance), 6),
            "image": None if self.image is None else _encode_jpeg(self.image),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> ReferenceCell:
        try:
            label, source = str(data["label"]), str(data.get("source", ""))
            distance = float(data.get("distance", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise QuizError(f"{where}: damaged ({exc})") from exc
        if not np.isfinite(distance):
            raise QuizError(f"{where}: the distance is not a number")
        image = data.get("image")
        return cls(label, source, distance, None if image is None else _decode_jpeg(str(image), where),
                   str(data.get("atlas_id", "")))  # fmt: skip


@dataclass(frozen=True)
class QuizItem:
    """One cell of a quiz.

    Attributes
    ----------
    id : str
        Stable key (an atlas id, or the hash of a case's crop): the trainee's
        Leitner box is kept under it.
    image : ndarray of uint8, shape (S, S, 3)
        RGB crop shown (without its label).
    label : str
        The reference label the answer is checked against.
    source, licence, attribution : str
        Where the cell comes from and under which terms it is shown.
    detail : str
        Free text shown in the feedback (e.g. the case and cell).
    cam : ndarray of float32, shape (h, w), or None
        A class-activation map over ``image``, values in [0, 1].
    similar : tuple of ReferenceCell
        The reference cells most like it, nearest first.
    """

    id: str
    image: np.ndarray
    label: str
    source: str = ""
    licence: str = ""
    attribution: str = ""
    detail: str = ""
    cam: np.ndarray | None = None
    similar: tuple[ReferenceCell, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "label": self.label, "source": self.source, "licence": self.licence,
            "attribution": self.attribution, "detail": self.detail, "image": _encode_jpeg(self.image),
            "cam": None if self.cam is None else _encode_map(self.cam),
            "similar": [s.to_dict() for s in self.similar],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any, where: str) -> QuizItem:
        if not isinstance(data, Mapping):
            raise QuizError(f"{where} is not an object")
        try:
            item_id, label = data["id"], data["label"]
            image_text = data["image"]
        except KeyError as exc:
            raise QuizError(f"{where} has no {exc.args[0]!r}") from exc
        if not isinstance(item_id, str) or not item_id or not isinstance(label, str) or not label.strip():
            raise QuizError(f"{where}: 'id' and 'label' must be non-empty strings")
        texts = {key: data.get(key, "") for key in ("source", "licence", "attribution", "detail")}
        if not all(isinstance(v, str) for v in texts.values()):
            raise QuizError(f"{where}: source, licence, attribution and detail must be strings")
        similar = data.get("similar") or []
        if not isinstance(similar, list):
            raise QuizError(f"{where}: 'similar' must be a list")
        cam = data.get("cam")
        return cls(
            item_id, _decode_jpeg(str(image_text), where), label.strip(), **texts,
            cam=None if cam is None else _decode_map(cam, f"{where} cam"),
            similar=tuple(ReferenceCell.from_dict(s, f"{where} similar[{j}]") for j, s in enumerate(similar)),
        )  # fmt: skip


@dataclass
class Quiz:
    """A set of cells to answer, and the classes offered as answers.

    Attributes
    ----------
    title : str
    items : list of QuizItem
    classes : list of str
        Answer choices in the order their keys are handed out (every item's
        label is among them).
    description, author, created : str
    origin : dict
        ``{"kind": "atlas" | "case", "name": ..., "model": {...}}``.
    time_limit : float or None
        Seconds per cell the trainer suggests (the timed mode); None: untimed.
    """

    title: str
    items: list[QuizItem]
    classes: list[str]
    description: str = ""
    author: str = ""
    created: str = field(default_factory=now_iso)
    origin: dict[str, Any] = field(default_factory=dict)
    time_limit: float | None = None

    def __post_init__(self) -> None:
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise QuizError("a quiz lists a cell twice")
        missing = [item.label for item in self.items if not any(same_label(item.label, c) for c in self.classes)]
        self.classes = ordered_classes([*self.classes, *missing]) if missing else list(dict.fromkeys(self.classes))
        if self.time_limit is not None and not (np.isfinite(self.time_limit) and self.time_limit > 0):
            raise QuizError(f"a time limit must be a positive number of seconds, not {self.time_limit}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def quiz_id(self) -> str:
        """A short hash of the title and the item ids: the same quiz file gives the same id."""
        digest = hashlib.sha256(self.title.encode("utf-8"))
        for item in self.items:
            digest.update(b"\0" + item.id.encode("utf-8"))
        return digest.hexdigest()[:12]

    def counts(self) -> dict[str, int]:
        """Items per reference label."""
        return dict(Counter(item.label for item in self.items))

    def subset(self, count: int | None = None, record: _Record | None = None, seed: int | None = None) -> Quiz:
        """Some (or all) of the items, chosen and ordered by :func:`choose_items`."""
        total = len(self.items) if count is None else min(int(count), len(self.items))
        ids = choose_items([(i.id, i.label) for i in self.items], total, record, seed)
        by_id = {item.id: item for item in self.items}
        return Quiz(self.title, [by_id[i] for i in ids], list(self.classes), self.description, self.author,
                    self.created, dict(self.origin), self.time_limit)  # fmt: skip

    # -- files --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": QUIZ_FORMAT, "schema_version": QUIZ_SCHEMA_VERSION, "title": self.title,
            "description": self.description, "author": self.author, "created": self.created,
            "origin": self.origin, "classes": list(self.classes), "time_limit": self.time_limit,
            "items": [item.to_dict() for item in self.items],
        }  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the quiz as one self-contained JSON file, atomically.

        Raises
        ------
        OSError
            The file cannot be written (the previous one, if any, is kept).
        """
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "quiz") -> Quiz:
        if not isinstance(data, Mapping) or data.get("format") != QUIZ_FORMAT:
            raise QuizError(f"not a LeukView quiz (format is not '{QUIZ_FORMAT}')")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise QuizError("the quiz has no valid schema_version")
        if version > QUIZ_SCHEMA_VERSION:
            raise QuizError(f"the quiz was written by a newer LeukView (schema {version}): update LeukView")
        items = data.get("items")
        if not isinstance(items, list) or not items:
            raise QuizError("the quiz has no cells")
        classes = data.get("classes") or []
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise QuizError("the quiz's 'classes' must be a list of names")
        limit = data.get("time_limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
            raise QuizError("the quiz's 'time_limit' must be a number of seconds or null")
        origin = data.get("origin") or {}
        texts = {key: data.get(key, "") for key in ("title", "description", "author", "created")}
        if not isinstance(origin, dict) or not all(isinstance(v, str) for v in texts.values()):
            raise QuizError("the quiz's title, description, author, created and origin are damaged")
        parsed = [QuizItem.from_dict(item, f"cell {n}") for n, item in enumerate(items, 1)]
        return cls(texts["title"] or "Quiz", parsed, list(classes), texts["description"], texts["author"],
                   texts["created"], origin, None if limit is None else float(limit))  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Quiz:
        """Read a quiz file.

        Raises
        ------
        QuizError
            Missing, too large, not JSON, not a quiz, newer than this LeukView, or damaged
            (the message names the cell).
        """
        path = Path(path)
        try:
            if path.stat().st_size > MAX_QUIZ_BYTES:
                raise QuizError(f"larger than {MAX_QUIZ_BYTES // (1024 * 1024)} MiB: not a quiz", path)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise QuizError("quiz file not found", path) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise QuizError(f"cannot read the quiz ({getattr(exc, 'strerror', None) or exc})", path) from exc
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise QuizError("the quiz is not valid JSON: damaged", path) from exc
        try:
            return cls.from_dict(data)
        except QuizError as exc:
            raise QuizError(exc.reason, path) from exc


# ---------------------------------------------------------------------------
# choosing cells: balanced, or weighted by a trainee's errors


def _quotas(weights: Mapping[str, float], available: Mapping[str, int], count: int) -> dict[str, int]:
    """How many cells per class: one each first (balance), the rest in proportion to the weights.

    The rest is handed out one by one to the class with the highest
    ``weight / (quota + 1)`` (D'Hondt), among those with cells left.
    """
    classes = [c for c in weights if available.get(c, 0) > 0]
    count = min(count, sum(available[c] for c in classes))
    quota = dict.fromkeys(classes, 0)
    if count >= len(classes):
        for c in classes:
            quota[c] = 1
    else:  # fewer cells than classes: the heaviest classes get one
        for c in sorted(classes, key=lambda c: -weights[c])[:count]:
            quota[c] = 1
    for _ in range(count - sum(quota.values())):
        open_classes = [c for c in classes if quota[c] < available[c]]
        best = max(open_classes, key=lambda c: (weights[c] / (quota[c] + 1), -classes.index(c)))
        quota[best] += 1
    return quota


def choose_items(
    candidates: Sequence[tuple[str, str]],
    count: int,
    record: _Record | None = None,
    seed: int | np.random.Generator | None = None,
) -> list[str]:
    """Pick ``count`` cells from (id, label) candidates, in the order they are asked.

    Without a record the classes are balanced (as equal counts as the
    candidates allow). With one, every class still gets a cell, and the rest go
    to classes in proportion to :meth:`TraineeRecord.class_weights` (the
    classes the trainee confuses); within a class, missed cells (Leitner box 1)
    come first, then unseen ones, then the higher boxes, ties at random. The
    chosen cells are shuffled.

    Returns
    -------
    ids : list of str
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    by_class: dict[str, list[str]] = {}
    for item_id, label in candidates:
        by_class.setdefault(label, []).append(item_id)
    classes = ordered_classes(by_class)
    weights = record.class_weights(classes) if record is not None else dict.fromkeys(classes, 1.0)
    quota = _quotas(weights, {c: len(v) for c, v in by_class.items()}, max(int(count), 0))
    chosen: list[str] = []
    for label in classes:
        ids = by_class[label]
        tiebreak = rng.random(len(ids))
        rank = [record.priority(i) if record is not None else 0.0 for i in ids]
        order = sorted(range(len(ids)), key=lambda j: (rank[j], tiebreak[j]))
        chosen.extend(ids[j] for j in order[: quota.get(label, 0)])
    rng.shuffle(chosen)
    return chosen

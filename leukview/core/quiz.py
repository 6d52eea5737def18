"""Teaching quizzes, without Qt: items, a run with its timer, scores, trainees' records, quiz files.

A trainee sees cells without their labels and answers with the class keys of
review (:func:`leukview.core.keymap.class_keys` of the quiz's classes); each
answer is checked against the item's reference label (an expert's for atlas
cells, the reviewer's for a case) and the feedback shows that label, the
model's map and the most similar reference cells. At the end
:class:`QuizResult` gives the score by class and the confusion table.

* :class:`Quiz` and :class:`QuizItem`: what is asked. A quiz file
  (``*.leukquiz``, :meth:`Quiz.save` / :meth:`Quiz.load`) is one JSON
  document with everything embedded (JPEG crops, reference labels, optional
  class-activation maps and similar cells with their thumbnails), so another
  LeukView opens it offline, without the case or the atlas.
* :func:`quiz_from_atlas` (balanced by class, or weighted by a trainee's
  errors) and :func:`quiz_from_cells` / :func:`quiz_from_session` (the
  reviewed cells of a case with the reviewer's labels).
* :class:`QuizRun`: the flow (question -> feedback -> next ... -> done), the
  per-cell time limit of the timed mode, the answers.
* :class:`TraineeRecord`: one JSON file per trainee in the user's data folder
  (:func:`trainees_folder`, written atomically) with every attempt and a
  Leitner box per item; :func:`choose_items` uses it so that repeated
  quizzes favour the classes the trainee confuses and the cells they missed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .atomic import atomic_write_json
from .cells import Cell
from .classes import active_classes
from .errors import LeukViewError
from .preprocess import CropRule, crop_box
from .session import current_user, now_iso
from .similar import SimilarSearch, app_data_folder, same_label

if TYPE_CHECKING:
    from .atlas import Atlas
    from .models import Classifier
    from .runs import ModelRun
    from .session import Session

__all__ = [
    "ITEM_SIZE",
    "LEITNER_BOXES",
    "NO_ANSWER",
    "QUIZ_FORMAT",
    "QUIZ_SCHEMA_VERSION",
    "QUIZ_SUFFIX",
    "TRAINEES_ENV",
    "TRAINEE_FORMAT",
    "Answer",
    "AtlasQuizSource",
    "ClassScore",
    "FileQuizSource",
    "Quiz",
    "QuizError",
    "QuizItem",
    "QuizResult",
    "QuizRun",
    "ReferenceCell",
    "TraineeRecord",
    "cam_of_image",
    "choose_items",
    "ordered_classes",
    "quiz_from_atlas",
    "quiz_from_cells",
    "quiz_from_session",
    "trainee_file",
    "trainees_folder",
]

QUIZ_FORMAT = "leukview-quiz"
QUIZ_SCHEMA_VERSION = 1
QUIZ_SUFFIX = ".leukquiz"
TRAINEE_FORMAT = "leukview-trainee"
TRAINEE_SCHEMA_VERSION = 1
#: Overrides the folder of the trainees' result files.
TRAINEES_ENV = "LEUKVIEW_TRAINEES_DIR"
#: The confusion table's column for a cell whose time ran out.
NO_ANSWER = "(no answer)"
#: Leitner boxes: a missed cell goes back to box 1, a right answer moves it up one.
LEITNER_BOXES = 5
#: Where an unseen cell ranks among the boxes: after the missed ones, before those answered right.
UNSEEN_PRIORITY = 1.5
#: Weight of an attempt's answers per attempt back in time (the latest counts 1).
RECENCY = 0.7
#: Side of a case's cell crops in a quiz file (pixels).
ITEM_SIZE = 160
MAX_QUIZ_BYTES = 256 * 1024 * 1024
_JPEG_QUALITY = 92
_CASE_RULE = CropRule(scale=1.5, min_side=24, background="keep")


class QuizError(LeukViewError):
    """A quiz or trainee file that cannot be read or written, or a quiz that cannot be made."""


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


def ordered_classes(labels: Iterable[str]) -> list[str]:
    """Labels without repeats, in the laboratory's clinical order (unknown ones after, as given)."""
    classes = active_classes()
    unique = list(dict.fromkeys(labels))
    position = {name: i for i, name in enumerate(unique)}
    return sorted(unique, key=lambda n: (classes.rank(n) if classes.rank(n) is not None else len(classes), position[n]))


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

    def subset(self, count: int | None = None, record: TraineeRecord | None = None, seed: int | None = None) -> Quiz:
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
    record: TraineeRecord | None = None,
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


def cam_of_image(classifier: Classifier, image: np.ndarray) -> np.ndarray | None:
    """The classifier's class-activation map of a cell image (resized to its input): (h, w) in [0, 1].

    For an atlas thumbnail this approximates the map of the full crop (the
    atlas keeps thumbnails only). None when the model has no features output.
    """
    from .explain import cam_map_of_input
    from .preprocess import normalize

    spec = classifier.spec
    if not spec.features_output:
        return None
    size = spec.input_size
    resized = cv2.resize(np.asarray(image, np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    return cam_map_of_input(classifier, normalize(resized[None], spec.mean, spec.std)[0]).grid


def quiz_from_atlas(
    atlas: Atlas,
    count: int = 20,
    *,
    record: TraineeRecord | None = None,
    seed: int | np.random.Generator | None = None,
    classes: Sequence[str] | None = None,
    similar_k: int = 5,
    title: str | None = None,
    time_limit: float | None = None,
) -> Quiz:
    """A quiz of atlas cells (their thumbnails), balanced by class or weighted by a trainee's record.

    Parameters
    ----------
    atlas : Atlas
    count : int
        Cells asked (fewer when the atlas holds fewer).
    record : TraineeRecord, optional
        Favour the classes and cells the trainee missed (:func:`choose_items`).
    seed : int or Generator, optional
    classes : sequence of str, optional
        Only cells of these labels; every label of the atlas by default.
    similar_k : int
        Reference cells per item for the feedback (the atlas cells most like
        it, the item itself excluded); 0 for none.
    title : str, optional
    time_limit : float, optional
        Seconds per cell.

    Returns
    -------
    Quiz
    """
    wanted = None if classes is None else set(classes)
    candidates = [(e.atlas_id, e.label) for e in atlas.entries if wanted is None or e.label in wanted]
    if not candidates:
        raise QuizError("the atlas has no cells of the classes asked for", atlas.folder)
    ids = choose_items(candidates, count, record, seed)
    sources = atlas.sources
    items = []
    for atlas_id in ids:
        entry = atlas.entry(atlas_id)
        similar: tuple[ReferenceCell, ...] = ()
        if similar_k > 0:
            hits = atlas.search(atlas.embedding(atlas_id), similar_k, exclude=[{atlas_id}])[0]
            similar = tuple(ReferenceCell(h.label, h.source, h.distance, atlas.thumbnail(h.atlas_id), h.atlas_id)
                            for h in hits)  # fmt: skip
        source = sources.get(entry.source)
        items.append(QuizItem(
            atlas_id, atlas.thumbnail(atlas_id), entry.label, entry.source, entry.licence,
            source.attribution if source is not None else "", entry.detail, None, similar,
        ))  # fmt: skip
    model = atlas.meta["model"]
    name = str(atlas.meta.get("name") or atlas.folder.name)
    return Quiz(
        title or f"Reference cells: {name}",
        items,
        ordered_classes(label for _, label in candidates),
        description=str(atlas.meta.get("description", "")),
        author="LeukView",
        origin={"kind": "atlas", "name": name, "folder": str(atlas.folder),
                "model": {k: model.get(k) for k in ("name", "version", "sha256")}},  # fmt: skip
        time_limit=time_limit,
    )


def _square(read: Callable[[int, int, int, int], np.ndarray], size: tuple[int, int],
            box: Sequence[float], out: int) -> np.ndarray:  # fmt: skip
    """The square ``box`` of an image, mirrored where it leaves the image, resized to ``out`` pixels."""
    width, height = size
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    vx0, vy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    vx1, vy1 = max(min(x1, width), vx0 + 1), max(min(y1, height), vy0 + 1)
    region = np.ascontiguousarray(read(vx0, vy0, vx1 - vx0, vy1 - vy0), np.uint8)
    pads = [max(p, 0) for p in (vy0 - y0, y1 - vy1, vx0 - x0, x1 - vx1)]
    if any(pads):
        border = cv2.BORDER_REFLECT_101
        if max(pads[:2]) >= region.shape[0] or max(pads[2:]) >= region.shape[1]:
            border = cv2.BORDER_REPLICATE
        top, bottom, left, right = pads
        region = np.asarray(cv2.copyMakeBorder(region, top, bottom, left, right, border), np.uint8)
    interpolation = cv2.INTER_AREA if region.shape[0] > out else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(region, (out, out), interpolation=interpolation), np.uint8)


def _map_of(cell: Cell, models: Sequence[ModelRun]) -> tuple[np.ndarray | None, tuple[float, float, float, float] | None]:
    """(map, box) of the cell's primary model (the first without a positive class), else of any model with one."""
    order = sorted(models, key=lambda m: bool(m.positive_class))
    names = [m.name for m in order] + [n for n in cell.predictions if n not in {m.name for m in order}]
    for name in names:
        prediction = cell.predictions.get(name)
        if prediction is not None and prediction.cam is not None and prediction.cam_box is not None:
            return prediction.cam, prediction.cam_box
    return None, None


def quiz_from_cells(
    image: np.ndarray | Callable[[int, int, int, int], np.ndarray],
    cells: Sequence[Cell],
    models: Sequence[ModelRun] = (),
    *,
    size: tuple[int, int] | None = None,
    search: SimilarSearch | None = None,
    similar_k: int = 5,
    classes: Sequence[str] | None = None,
    title: str = "Quiz",
    description: str = "",
    author: str | None = None,
    source: str = "case",
    licence: str = "internal teaching use",
    detail: str = "",
    item_size: int = ITEM_SIZE,
    time_limit: float | None = None,
) -> Quiz:
    """A quiz of a case's reviewed cells, with the reviewer's labels as the reference.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3), or callable
        The case's image, or ``read(x, y, width, height)`` of a large one (then ``size``).
    cells : sequence of Cell
        Only reviewed cells (a reviewer's label) become items, in reading order.
    models : sequence of ModelRun
        The analysis's models: the primary one's class-activation map goes with each item
        (the item is cut to that map's box), its classes join the answer choices.
    size : (width, height), optional
        Of the image, when ``image`` is a reader.
    search : SimilarSearch, optional
        With it, each item carries its ``similar_k`` nearest reference cells (thumbnails embedded).
    classes : sequence of str, optional
        Answer choices; default: the reviewed labels and the primary model's classes, clinical order.
    title, description, author, source, licence, detail, time_limit
        Recorded in the quiz (``author`` defaults to the user).
    item_size : int
        Side of each embedded crop in pixels.

    Raises
    ------
    QuizError
        No reviewed cell.
    """
    if callable(image):
        if size is None:
            raise ValueError("size is needed with a reader")
        read = image
    else:
        array = np.asarray(image)
        size = (array.shape[1], array.shape[0])
        read = lambda x, y, w, h: array[y : y + h, x : x + w]  # noqa: E731
    reviewed = [c for c in cells if c.review.reviewed and c.review.label]
    reviewed.sort(key=lambda c: (round(c.centroid[1] / 32.0), c.centroid[0]))
    if not reviewed:
        raise QuizError("no reviewed cell in this case: review some cells first (the quiz uses the reviewer's labels)")
    items: list[QuizItem] = []
    seen: set[str] = set()
    for cell in reviewed:
        cam, box = _map_of(cell, models)
        crop = _square(read, size, box if box is not None else crop_box(cell, _CASE_RULE), item_size)
        digest = hashlib.sha256(crop.tobytes()).hexdigest()
        item_id = digest[:12] if digest[:12] not in seen else digest[:20]
        seen.add(item_id)
        label = str(cell.review.label)
        similar: tuple[ReferenceCell, ...] = ()
        if search is not None and similar_k > 0:
            found = search.find(read, size, cell, label, similar_k)
            similar = tuple(ReferenceCell(s.label, s.source, s.distance, s.thumbnail(), s.atlas_id) for s in found.cells)
        reviewer = f"reviewed by {cell.review.reviewer}" if cell.review.reviewer else "reviewed"
        items.append(QuizItem(
            item_id, crop, label, source, licence, "",
            f"{detail + ', ' if detail else ''}cell {cell.id}, {reviewer}", cam, similar,
        ))  # fmt: skip
    primary = next((m for m in models if not m.positive_class), None)
    choices = list(classes) if classes is not None else ordered_classes(
        [*(i.label for i in items), *(primary.classes if primary is not None else [])]
    )
    origin: dict[str, Any] = {"kind": "case", "name": detail or title}
    if primary is not None:
        origin["model"] = {"name": primary.name, "version": primary.version}
    return Quiz(title, items, choices, description, current_user() if author is None else author,
                origin=origin, time_limit=time_limit)  # fmt: skip


def quiz_from_session(session: Session, image: np.ndarray, **kwargs: Any) -> Quiz:
    """:func:`quiz_from_cells` of a saved review session and its image (``kwargs`` passed on)."""
    name = Path(session.image_path).name if session.image_path else "case"
    kwargs.setdefault("title", f"Case {name}")
    kwargs.setdefault("detail", name)
    return quiz_from_cells(image, session.analysis.cells, session.analysis.models, **kwargs)


class AtlasQuizSource:
    """Draws quizzes from an atlas (``leukview --teach`` without a file): a new draw per attempt."""

    def __init__(self, atlas: Atlas, similar_k: int = 5) -> None:
        self.atlas = atlas
        self.similar_k = similar_k
        self.title = f"Reference cells: {atlas.meta.get('name') or atlas.folder.name}"

    @property
    def size(self) -> int:
        return len(self.atlas)

    def draw(self, count: int, record: TraineeRecord | None = None, seed: int | None = None,
             time_limit: float | None = None) -> Quiz:  # fmt: skip
        return quiz_from_atlas(self.atlas, count, record=record, seed=seed, similar_k=self.similar_k,
                               time_limit=time_limit)  # fmt: skip


class FileQuizSource:
    """Draws from a trainer's quiz (``leukview --teach QUIZ``): its cells, missed ones first on a repeat."""

    def __init__(self, quiz: Quiz) -> None:
        self.quiz = quiz
        self.title = quiz.title

    @property
    def size(self) -> int:
        return len(self.quiz)

    def draw(self, count: int, record: TraineeRecord | None = None, seed: int | None = None,
             time_limit: float | None = None) -> Quiz:  # fmt: skip
        quiz = self.quiz.subset(count, record, seed)
        if time_limit is not None:
            quiz.time_limit = time_limit
        return quiz


# ---------------------------------------------------------------------------
# answering


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

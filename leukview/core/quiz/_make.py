"""Making quizzes: from an atlas (balanced, or weighted by a trainee's errors) or a case's reviewed cells."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..calls import primary_model
from ..cells import Cell
from ..preprocess import CropRule, crop_box
from ..runs import ROLES
from ..session import current_user
from ..similar import SimilarSearch
from ._items import Quiz, QuizError, QuizItem, ReferenceCell, choose_items, ordered_classes

if TYPE_CHECKING:
    from ..atlas import Atlas
    from ..models import Classifier
    from ..runs import ModelRun
    from ..session import Session
    from ._trainee import TraineeRecord

#: Side of a case's cell crops in a quiz file (pixels).
ITEM_SIZE = 160
_CASE_RULE = CropRule(scale=1.5, min_side=24, background="keep")


def cam_of_image(classifier: Classifier, image: np.ndarray) -> np.ndarray | None:
    """The classifier's class-activation map of a cell image (resized to its input): (h, w) in [0, 1].

    For an atlas thumbnail this approximates the map of the full crop (the
    atlas keeps thumbnails only). None when the model has no features output.
    """
    from ..explain import cam_map_of_input
    from ..preprocess import normalize

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
    order = sorted(models, key=lambda m: ROLES.index(m.role))
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
    primary = primary_model(models)
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

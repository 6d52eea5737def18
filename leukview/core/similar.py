"""Similar cells: the reference-atlas cells nearest to a cell, for the viewer and ``analyze --similar``.

Built on :mod:`leukview.core.atlas`. A :class:`SimilarSearch` holds one
classifier and the atlases made with it (the one shipped in
``models/<name>/atlas`` and the laboratory's own, grown by ``leukview atlas
add`` in the user's data folder); it embeds cells once (cached by the cell's
geometry), searches every atlas and merges the hits, nearest first.

An atlas made with another version of the model is never searched: its
embeddings mean nothing to the loaded one. :func:`open_model_atlas` says so
in words (:data:`NO_ATLAS_FOR_VERSION`), and the viewer shows that instead
of the panel, as it does when no atlas is installed.
"""

from __future__ import annotations

import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atlas import (
    ATLAS_FILE,
    Atlas,
    AtlasEntry,
    AtlasError,
    Neighbour,
    default_atlas_dir,
    embed_cells,
)
from .cells import Cell
from .classes import active_classes
from .preprocess import CropRule, crop_box
from .runs import ROLES

if TYPE_CHECKING:
    from .analysis import Analysis
    from .models import Classifier

__all__ = [
    "LAB_ATLAS_ENV",
    "NO_ATLAS_FOR_VERSION",
    "SimilarCell",
    "SimilarResult",
    "SimilarSearch",
    "add_similar",
    "app_data_folder",
    "cell_region",
    "lab_atlas_dir",
    "open_model_atlas",
    "same_label",
    "similar_search_for",
]

#: Overrides the folder of the laboratory's atlases (one sub-folder per model).
LAB_ATLAS_ENV = "LEUKVIEW_ATLAS_DIR"
#: What the viewer and the CLI say when the installed atlas was made with another model version.
NO_ATLAS_FOR_VERSION = "no atlas for this model version"
_CACHE_SIZE = 4096  # embeddings kept per search (a large slide's white cells)


def app_data_folder() -> Path:
    """The user's LeukView data folder (where sessions that cannot go beside their image go).

    ``~/.local/share/LeukView/LeukView`` on Linux (``$XDG_DATA_HOME``),
    ``%APPDATA%\\LeukView\\LeukView`` on Windows, ``~/Library/Application
    Support/LeukView/LeukView`` on macOS: Qt's AppDataLocation for the viewer.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "LeukView" / "LeukView"


def lab_atlas_dir(model_name: str) -> Path:
    """Where ``leukview atlas add`` keeps the laboratory's atlas of a model by default.

    ``$LEUKVIEW_ATLAS_DIR/<model>`` when set, else ``<data folder>/atlas/<model>``:
    outside ``models/``, which an update of LeukView replaces.
    """
    root = os.environ.get(LAB_ATLAS_ENV)
    return (Path(root) if root else app_data_folder() / "atlas") / model_name


def same_label(first: str | None, second: str | None) -> bool:
    """Whether two labels mean the same class (aliases of the laboratory's list resolved)."""
    if first is None or second is None:
        return False
    classes = active_classes()
    return classes.canonical(first) == classes.canonical(second)


def open_model_atlas(classifier: Classifier, folder: str | os.PathLike[str] | None = None) -> tuple[Atlas | None, str]:
    """An atlas checked against the classifier that will search it, or why there is none.

    Parameters
    ----------
    classifier : Classifier
    folder : path, optional
        The atlas folder; the model's shipped one (``models/<name>/atlas``) by default.

    Returns
    -------
    atlas : Atlas or None
    why : str
        Empty when the atlas is usable; else a sentence for the user: none
        installed, :data:`NO_ATLAS_FOR_VERSION` (made with another model
        version, e.g. after the model was replaced), or damaged.
    """
    spec = classifier.spec
    folder = default_atlas_dir(classifier.path) if folder is None else Path(folder)
    if not (folder / ATLAS_FILE).is_file():
        return None, f"no reference atlas is installed for {spec.name}"
    try:
        atlas = Atlas.load(folder)
    except AtlasError as exc:
        return None, f"the reference atlas of {spec.name} cannot be used: {exc.reason}"
    if atlas.model_sha256 != (spec.sha256 or "").strip().lower():
        made = atlas.meta["model"]
        return None, (
            f"{NO_ATLAS_FOR_VERSION} ({spec.name} {spec.version}; the atlas in {folder} was made with "
            f"{made.get('name', '?')} {made.get('version', '?')})"
        )
    try:
        atlas.check_model(classifier)
    except AtlasError as exc:
        return None, f"{NO_ATLAS_FOR_VERSION}: {exc.reason}"
    return atlas, ""


@dataclass(frozen=True)
class SimilarCell:
    """One atlas cell found near a query, with the atlas it lives in (for its thumbnail).

    Attributes
    ----------
    neighbour : Neighbour
        ``atlas_id``, ``label``, ``source``, ``distance`` (cosine, nearest first).
    atlas : Atlas
    """

    neighbour: Neighbour
    atlas: Atlas

    @property
    def atlas_id(self) -> str:
        return self.neighbour.atlas_id

    @property
    def label(self) -> str:
        return self.neighbour.label

    @property
    def source(self) -> str:
        return self.neighbour.source

    @property
    def distance(self) -> float:
        return self.neighbour.distance

    @property
    def entry(self) -> AtlasEntry:
        return self.atlas.entry(self.atlas_id)

    @property
    def licence(self) -> str:
        return self.entry.licence

    @property
    def attribution(self) -> str:
        source = self.atlas.sources.get(self.source)
        return source.attribution if source is not None else ""

    def thumbnail(self) -> np.ndarray:
        """RGB uint8 (t, t, 3); AtlasError when the atlas's thumbnail file is damaged."""
        return self.atlas.thumbnail(self.atlas_id)

    def to_dict(self) -> dict[str, Any]:
        """``{"atlas_id", "label", "source", "distance"}``, as cells.json's ``similar`` entries."""
        return self.neighbour.to_dict()


@dataclass(frozen=True)
class SimilarResult:
    """The nearest atlas cells of one cell and how they compare with its call.

    Attributes
    ----------
    cells : tuple of SimilarCell
        Nearest first.
    call : str or None
        The cell's call they are compared with.
    votes : bool
        Whether the atlas's labels count as a second opinion for this model
        (False for a flag model such as all-blast: its atlas is a gallery; see
        docs/explain.md).
    seconds : float
        Time to embed (when not cached) and search.
    cached : bool
        The embedding came from the cache.
    """

    cells: tuple[SimilarCell, ...]
    call: str | None
    votes: bool
    seconds: float = 0.0
    cached: bool = False

    @property
    def agree(self) -> int:
        """How many of the cells carry the call's label."""
        return sum(same_label(c.label, self.call) for c in self.cells)

    @property
    def majority(self) -> tuple[str | None, int]:
        """(label, votes) of the most frequent label (ties: the one whose member is nearest)."""
        from .atlas import majority_label

        return majority_label([c.neighbour for c in self.cells])


def cell_region(
    read: Callable[[int, int, int, int], np.ndarray], size: tuple[int, int], cell: Cell, rule: CropRule
) -> tuple[np.ndarray, Cell]:
    """The part of a (possibly huge) image a model's crop of a cell needs, and the cell in its coordinates.

    Cropping the returned cell from the returned region gives exactly the
    crop of the whole image (the window is the same, and it is clipped at
    the image's own border, where the crop mirrors).

    Parameters
    ----------
    read : callable
        ``read(x, y, width, height) -> (height, width, 3) uint8``: pixels of the image.
    size : (width, height)
        Of the whole image.
    cell : Cell
    rule : CropRule
        The model's crop rule (``spec.crop``).

    Returns
    -------
    region : ndarray of uint8, shape (h, w, 3)
    shifted : Cell
        A copy of ``cell`` moved into the region's coordinates.
    """
    width, height = int(size[0]), int(size[1])
    x0, y0, x1, y1 = crop_box(cell, rule)
    vx0, vy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    vx1, vy1 = max(min(x1, width), vx0 + 1), max(min(y1, height), vy0 + 1)
    region = np.ascontiguousarray(read(vx0, vy0, vx1 - vx0, vy1 - vy0))
    offset = np.array([vx0, vy0])
    shifted = replace(
        cell,
        contour=np.asarray(cell.contour) - offset.astype(np.asarray(cell.contour).dtype),
        nucleus_contour=None if cell.nucleus_contour is None else np.asarray(cell.nucleus_contour) - offset,
        bbox=(cell.bbox[0] - vx0, cell.bbox[1] - vy0, cell.bbox[2] - vx0, cell.bbox[3] - vy0),
        centroid=(cell.centroid[0] - vx0, cell.centroid[1] - vy0),
    )
    return region, shifted


def _cell_key(cell: Cell) -> tuple[Any, ...]:
    # a segmentation edit keeps no id for a changed outline, but guard anyway: the geometry is the key
    contour = np.asarray(cell.contour)
    return (cell.id, tuple(cell.bbox), tuple(round(v, 2) for v in cell.centroid), contour.shape,
            int(contour.sum()) if contour.size else 0, round(cell.diameter, 3))  # fmt: skip


class SimilarSearch:
    """The atlases of one classifier, searched together; embeddings cached per cell.

    Parameters
    ----------
    classifier : Classifier
        Must have a ``features`` output; every atlas must be made with it.
    atlases : sequence of Atlas
        Searched together, the hits merged nearest first.

    Attributes
    ----------
    votes : bool
        True for a model without a positive class (wbc-type): its atlas's
        labels are a second opinion; False for a flag model (all-blast).
    """

    def __init__(self, classifier: Classifier, atlases: Sequence[Atlas]) -> None:
        if not atlases:
            raise ValueError("a similar-cells search needs at least one atlas")
        for atlas in atlases:
            atlas.check_model(classifier)
        self.classifier = classifier
        self.atlases = list(atlases)
        self.votes = classifier.spec.role == "type"
        self._cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()

    @classmethod
    def for_classifier(
        cls, classifier: Classifier, lab_atlas: str | os.PathLike[str] | None | bool = True
    ) -> tuple[SimilarSearch | None, list[str]]:
        """The shipped atlas and the laboratory's (when there) of a classifier.

        Parameters
        ----------
        classifier : Classifier
        lab_atlas : path, bool or None
            The laboratory's atlas folder; True: :func:`lab_atlas_dir` of the
            model (used when it exists); False or None: only the shipped one.

        Returns
        -------
        search : SimilarSearch or None
            None when no usable atlas was found.
        notes : list of str
            Why an atlas was left out (:func:`open_model_atlas`'s words).
        """
        notes: list[str] = []
        atlases: list[Atlas] = []
        shipped, why = open_model_atlas(classifier)
        if shipped is not None:
            atlases.append(shipped)
        folders: list[Path] = []
        if lab_atlas is True:
            folders.append(lab_atlas_dir(classifier.spec.name))
        elif lab_atlas:
            folders.append(Path(lab_atlas))
        if shipped is None:
            notes.append(why)
        for folder in folders:
            if not (folder / ATLAS_FILE).is_file():
                continue
            atlas, lab_why = open_model_atlas(classifier, folder)
            if atlas is not None:
                atlases.append(atlas)
            else:
                notes.append(f"laboratory atlas left out: {lab_why}")
        if not atlases:
            return None, notes
        return cls(classifier, atlases), notes

    @property
    def model(self) -> str:
        return self.classifier.spec.name

    def __len__(self) -> int:
        """Atlas cells searched."""
        return sum(len(a) for a in self.atlases)

    def describe(self) -> str:
        """``wbc-type 1.3.0: wbc-type reference atlas (800 cells) + lab (12 cells)``."""
        spec = self.classifier.spec
        parts = [f"{a.meta.get('name') or a.folder.name} ({len(a)} cells)" for a in self.atlases]
        return f"{spec.name} {spec.version}: " + " + ".join(parts)

    # -- embeddings ---------------------------------------------------------

    def embed(self, image: np.ndarray, cells: Sequence[Cell]) -> np.ndarray:
        """Embeddings (M, D) of cells of an image, from the cache where known (one inference for the rest)."""
        keys = [_cell_key(c) for c in cells]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            vectors = embed_cells(self.classifier, image, [cells[i] for i in missing])
            for i, vector in zip(missing, vectors, strict=True):
                self._remember(keys[i], vector)
        out = np.zeros((len(cells), self.atlases[0].dim), np.float32)
        for i, key in enumerate(keys):
            out[i] = self._cache[key]
            self._cache.move_to_end(key)
        return out

    def cached(self, cell: Cell) -> bool:
        return _cell_key(cell) in self._cache

    def _remember(self, key: tuple[Any, ...], vector: np.ndarray) -> None:
        self._cache[key] = np.asarray(vector, np.float32)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        """Drop the cached embeddings (another image was opened)."""
        self._cache.clear()

    # -- search -------------------------------------------------------------

    def search(self, embeddings: np.ndarray, k: int = 5) -> list[list[SimilarCell]]:
        """The k nearest cells over every atlas, per query, nearest first.

        Ties in distance keep the atlases' order (the shipped one first).
        """
        queries = np.asarray(embeddings, np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        merged: list[list[tuple[float, int, int, SimilarCell]]] = [[] for _ in range(len(queries))]
        for a, atlas in enumerate(self.atlases):
            if len(atlas) == 0:
                continue
            for q, hits in enumerate(atlas.search(queries, k)):
                merged[q].extend((n.distance, a, r, SimilarCell(n, atlas)) for r, n in enumerate(hits))
        return [[item[3] for item in sorted(row, key=lambda t: t[:3])[:k]] for row in merged]

    def find(
        self,
        read: Callable[[int, int, int, int], np.ndarray],
        size: tuple[int, int],
        cell: Cell,
        call: str | None,
        k: int = 5,
    ) -> SimilarResult:
        """The k nearest atlas cells of one cell of an image of any size.

        Parameters
        ----------
        read : callable
            ``read(x, y, width, height)`` pixels of the image (see :func:`cell_region`).
        size : (width, height)
        cell : Cell
        call : str or None
            Its call, for :attr:`SimilarResult.agree`.
        k : int

        Returns
        -------
        SimilarResult
        """
        start = time.perf_counter()
        key = _cell_key(cell)
        cached = key in self._cache
        if not cached:
            region, shifted = cell_region(read, size, cell, self.classifier.spec.crop)
            self._remember(key, embed_cells(self.classifier, region, [shifted])[0])
        vector = self._cache[key]
        self._cache.move_to_end(key)
        hits = self.search(vector, k)[0]
        return SimilarResult(tuple(hits), call, self.votes, time.perf_counter() - start, cached)


def similar_search_for(
    classifiers: Sequence[Classifier], lab_atlas: bool = True
) -> tuple[SimilarSearch | None, list[str]]:
    """The search ``analyze --similar`` uses: the primary model's atlases (a type model
    without a positive class) first, else the first model with an atlas.

    Returns
    -------
    search : SimilarSearch or None
    notes : list of str
        One per model without a usable atlas (or none found at all).
    """
    ordered = sorted(classifiers, key=lambda c: ROLES.index(c.spec.role))  # stable: primary first
    notes: list[str] = []
    for classifier in ordered:
        if not classifier.spec.features_output:
            notes.append(f"{classifier.spec.name} has no features output: it cannot search an atlas")
            continue
        search, why = SimilarSearch.for_classifier(classifier, lab_atlas)
        notes.extend(why)
        if search is not None:
            return search, notes
    if not classifiers:
        notes.append("no model loaded: similar cells need one with an atlas")
    return None, notes


def add_similar(document: dict[str, Any], analysis: Analysis, image: np.ndarray, search: SimilarSearch, k: int) -> int:
    """Write each white cell's k nearest atlas cells into a cells.json document.

    Adds ``"similar": [{"atlas_id", "label", "source", "distance"}, ...]``
    (nearest first) to every ``kind == "wbc"`` cell of ``document["cells"]``
    and a top-level ``"similar_atlas"`` naming the model, the atlases and k.
    All white cells are embedded in one inference call.

    Parameters
    ----------
    document : dict
        ``analysis.to_dict()``; changed in place.
    analysis : Analysis
    image : ndarray of uint8, shape (H, W, 3)
        The image analysed.
    search : SimilarSearch
    k : int
        At least 1.

    Returns
    -------
    count : int
        White cells given a ``similar`` list.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    white = [c for c in analysis.cells if c.kind == "wbc"]
    found: dict[int, list[dict[str, Any]]] = {}
    if white:
        hits = search.search(search.embed(image, white), k)
        found = {cell.id: [h.to_dict() for h in row] for cell, row in zip(white, hits, strict=True)}
    for entry in document.get("cells", []):
        if entry.get("id") in found:
            entry["similar"] = found[entry["id"]]
    spec = search.classifier.spec
    document["similar_atlas"] = {
        "model": spec.name,
        "version": spec.version,
        "k": int(k),
        "atlases": [{"name": a.meta.get("name", ""), "cells": len(a)} for a in search.atlases],
    }
    return len(found)

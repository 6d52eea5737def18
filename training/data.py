"""Datasets of cell crops made by the app's own preprocessing, cached on disk.

A dataset is first a list of :class:`Source` records (an image, its label,
its group for splitting, and how its cells are found); :func:`extract_crops`
then finds the cells and cuts them with
:func:`leukview.core.preprocess.crop_cell`, exactly as the app does, and
caches the uint8 crops so an epoch never re-segments.

How cells are found (``Source.finder``):

``centre``
    Single-cell images (PBC, a hospital's cut-out cells): the app's
    segmentation runs and the white cell nearest the image centre is kept.
    When none is found the crop is a centred box of the mean white-cell
    diameter of the dataset; these fallbacks are counted and reported.
``all``
    Fields with one label (Taleqani): every white cell of the field takes the
    field's label.
``box``
    Fields with annotated white-cell boxes (BCCD): each box is matched to the
    segmented white cell whose centroid lies inside it, nearest its centre;
    boxes the segmentation misses are counted.
``mask``
    Cells already cut out on black (C-NMC): the cell is the largest non-black
    region, its contour taken from that mask.

Loaders: :func:`folder_dataset` (a folder per class, PBC layout),
:func:`cnmc_dataset` (C-NMC 2019 official or Kaggle layout, subjects from
file names), :func:`taleqani_dataset`, :func:`bccd_dataset`,
:func:`zheng_dataset` (Zheng et al. 2018 labelled white cells),
:func:`manifest_dataset` (a CSV ``path,label,group`` for a hospital's own
data).

Splits (:func:`grouped_split`) never put one group (subject, field or source
image) on both sides.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from leukview.core.cells import Cell
from leukview.core.errors import ImageReadError, LeukViewError
from leukview.core.preprocess import CropRule, crop_cell

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when what a cached crop set holds changes
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
FINDERS = ("centre", "all", "box", "mask")

CNMC_LABELS = {"all": "blast", "hem": "normal"}
TALEQANI_LABELS = {"Benign": "normal", "Early": "blast", "Pre": "blast", "Pro": "blast"}
BCCD_LABELS = {
    "NEUTROPHIL": "neutrophil",
    "EOSINOPHIL": "eosinophil",
    "LYMPHOCYTE": "lymphocyte",
    "MONOCYTE": "monocyte",
    "BASOPHIL": "basophil",
}


class DataError(LeukViewError):
    """A dataset folder, manifest or split is missing or malformed."""


@dataclass
class Source:
    """One image and what to take from it.

    Attributes
    ----------
    path : Path
        The image file.
    label : str
        Class of its cell(s).
    group : str
        Unit that must not straddle a split: subject when known, else field
        or image.
    finder : {'centre', 'all', 'box', 'mask'}
    boxes : list of (x0, y0, x1, y1)
        Annotated white-cell boxes (``box`` finder only).
    labels : list of str
        Label per box (``box`` finder only; ``label`` when empty).
    """

    path: Path
    label: str
    group: str
    finder: str = "centre"
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.finder not in FINDERS:
            raise ValueError(f"finder must be one of {FINDERS}, got {self.finder!r}")


# ----------------------------------------------------------------------------
# loaders


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_dataset(
    root: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    label_map: dict[str, str] | None = None,
    finder: str = "centre",
    per_folder: int | None = None,
) -> list[Source]:
    """A folder per class (PBC layout): ``root/<class>/*.jpg``.

    Parameters
    ----------
    root : path
    classes : sequence of str, optional
        Folder names to use (all sub-folders when None).
    label_map : dict, optional
        Folder name -> label (identity when None or missing).
    finder : str
        How cells are found; ``centre`` for single-cell images.
    per_folder : int, optional
        Keep only the first n images (by name) of each folder, so that folders
        mapped to one label contribute equally.

    Returns
    -------
    sources : list of Source
        Group = the image (these datasets have no subject IDs).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("dataset folder not found", root)
    names = list(classes) if classes else sorted(p.name for p in root.iterdir() if p.is_dir())
    sources = []
    for name in names:
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"class folder '{name}' not found", folder)
        label = (label_map or {}).get(name, name)
        sources += [Source(p, label, f"{name}/{p.stem}", finder) for p in _images(folder)[: per_folder or None]]
    if not sources:
        raise DataError("no images found in the class folders", root)
    return sources


_CNMC_SUBJECT = re.compile(r"UID_(H?\d+)_", re.IGNORECASE)


def cnmc_subject(name: str) -> str:
    """Subject of a C-NMC file name: the token after ``UID_`` (``H...`` = healthy donor).

    >>> cnmc_subject("UID_11_1_1_all.bmp"), cnmc_subject("UID_H6_12_3_hem.bmp")
    ('11', 'H6')
    """
    match = _CNMC_SUBJECT.search(name)
    if not match:
        raise DataError(f"C-NMC file name without a subject (expected UID_<subject>_...): {name}")
    return match.group(1).upper()


def cnmc_dataset(
    root: str | os.PathLike[str], label_map: dict[str, str] | None = None, folds: Sequence[int] | None = None
) -> list[Source]:
    """C-NMC 2019 cells in the official or Kaggle layout.

    Finds ``**/fold_N/{all,hem}/*.bmp`` (or .png/.jpg) under ``root``, e.g.
    ``C-NMC_training_data/fold_0/all/UID_11_1_1_all.bmp`` (official) or
    ``C-NMC_Leukemia/training_data/fold_0/hem/...`` (Kaggle). The subject is
    read from the file name (:func:`cnmc_subject`).

    Parameters
    ----------
    root : path
    label_map : dict, optional
        'all'/'hem' -> label; default blast/normal.
    folds : sequence of int, optional
        Only these folds.

    Returns
    -------
    sources : list of Source
        Group = ``subject``; finder ``mask`` (cells are on black).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("C-NMC folder not found", root)
    mapping = label_map or CNMC_LABELS
    sources = []
    for folder in sorted(root.rglob("*")):
        if not folder.is_dir() or folder.name.lower() not in ("all", "hem"):
            continue
        fold = re.fullmatch(r"fold_(\d+)", folder.parent.name)
        if fold is None:
            continue
        if folds is not None and int(fold.group(1)) not in folds:
            continue
        label = mapping[folder.name.lower()]
        sources += [Source(p, label, cnmc_subject(p.name), "mask") for p in _images(folder)]
    if not sources:
        raise DataError("no C-NMC cells found (expected fold_N/all and fold_N/hem folders)", root)
    return sources


def taleqani_dataset(
    root: str | os.PathLike[str], label_map: dict[str, str] | None = None, block: int = 0
) -> list[Source]:
    """Taleqani ALL fields: ``root/{Benign,Early,Pre,Pro}/*.jpg``, one label per field.

    Parameters
    ----------
    root : path
    label_map : dict, optional
        Folder -> label; default Benign -> normal, Early/Pre/Pro -> blast.
    block : int
        0: each field is its own group. n > 0: fields whose file numbers fall
        in the same run of n (per folder) share a group. The dataset has 89
        patients but no patient IDs; if its files are numbered patient by
        patient, blocks keep most of a patient's fields on one side. This is
        a mitigation, not a guarantee.

    Returns
    -------
    sources : list of Source
        finder ``all``: every white cell of a field takes its label.
    """
    mapping = label_map or TALEQANI_LABELS
    sources = folder_dataset(root, classes=[c for c in mapping if (Path(root) / c).is_dir()], finder="all")
    for s in sources:
        folder = s.path.parent.name
        s.label = mapping[folder]
        if block > 0:
            number = re.findall(r"\d+", s.path.stem)
            index = int(number[-1]) if number else 0
            s.group = f"{folder}/block{index // block:04d}"
    return sources


def read_voc_boxes(path: str | os.PathLike[str], name: str = "WBC") -> list[tuple[int, int, int, int]]:
    """Pascal-VOC boxes of one object name, as half-open (x0, y0, x1, y1)."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as exc:
        raise DataError(f"cannot read VOC annotation ({exc})", path) from exc
    boxes = []
    for obj in tree.getroot().iter("object"):
        if (obj.findtext("name") or "").strip().upper() != name.upper():
            continue
        bb = obj.find("bndbox")
        if bb is None:
            continue
        x0, y0, x1, y1 = (int(round(float(bb.findtext(k) or 0))) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x0, y0, x1 + 1, y1 + 1))
    return boxes


def bccd_dataset(
    root: str | os.PathLike[str], label_map: dict[str, str] | None = None, half: str | None = None,
    split_at: int = 200,
) -> list[Source]:
    """BCCD fields with their white-cell boxes and types.

    Uses ``JPEGImages/*.jpg``, ``Annotations/*.xml`` (VOC boxes named WBC) and
    ``wbc_types.csv`` (``image,wbc_type``; a comma-separated list when an
    image holds several white cells). Only images whose listed types are all
    the same are used, so every box of the image takes that type.

    Parameters
    ----------
    root : path
    label_map : dict, optional
        BCCD type -> label (lower-case names by default).
    half : {'first', 'second'}, optional
        Only images numbered below (from) ``split_at``: a development half for
        choosing settings and a test half that is only reported. Halves of
        consecutive numbers, not alternate images, so that neighbouring
        views of one slide stay together.
    split_at : int

    Returns
    -------
    sources : list of Source
        Group = the image; finder ``box``.
    """
    root = Path(root)
    mapping = label_map or BCCD_LABELS
    table = root / "wbc_types.csv"
    if not table.is_file():
        raise DataError("wbc_types.csv not found", table)
    sources = []
    with table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            types = {t.strip().upper() for t in row["wbc_type"].split(",") if t.strip()}
            if len(types) != 1:
                continue
            label = mapping.get(types.pop())
            image = root / "JPEGImages" / row["image"]
            if half is not None:
                digits = re.findall(r"\d+", image.stem)
                if not digits or (int(digits[-1]) < split_at) != (half == "first"):
                    continue
            xml = root / "Annotations" / (Path(row["image"]).stem + ".xml")
            if label is None or not image.is_file() or not xml.is_file():
                continue
            boxes = read_voc_boxes(xml)
            if boxes:
                sources.append(Source(image, label, image.stem, "box", boxes))
    if not sources:
        raise DataError("no usable BCCD images (single-type rows with WBC boxes)", root)
    return sources


ZHENG_LABELS = {"1": "neutrophil", "2": "lymphocyte", "3": "monocyte", "4": "eosinophil", "5": "basophil"}


def zheng_dataset(
    root: str | os.PathLike[str], subsets: Sequence[int] = (1, 2), label_map: dict[str, str] | None = None
) -> list[Source]:
    """Zheng et al. 2018 white-cell images: ``dataset{1,2}/images/NNN.png`` and ``dataset{1,2}_labels.csv``.

    One white cell per image (``centre`` finder); labels 1 neutrophil,
    2 lymphocyte, 3 monocyte, 4 eosinophil, 5 basophil (the authors warn they
    were not checked by experts). dataset1: rapid stain, 120x120;
    dataset2: standard stain, 300x300.

    Returns
    -------
    sources : list of Source
        Group = the image.
    """
    root = Path(root)
    mapping = label_map or ZHENG_LABELS
    sources = []
    for k in subsets:
        table = root / f"dataset{k}_labels.csv"
        if not table.is_file():
            raise DataError("label table not found", table)
        with table.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))[1:]
        for row in rows:
            if len(row) < 2 or row[1].strip() not in mapping:
                continue
            image = root / f"dataset{k}" / "images" / f"{int(row[0]):03d}.png"
            if image.is_file():
                sources.append(Source(image, mapping[row[1].strip()], f"dataset{k}/{image.stem}", "centre"))
    if not sources:
        raise DataError("no labelled Zheng images found", root)
    return sources


def read_yolo_boxes(path: str | os.PathLike[str], width: int, height: int, cls: int = 0) -> list[tuple[int, int, int, int]]:
    """Boxes of one class from a YOLO label file (``class cx cy w h``, relative) in pixels."""
    boxes = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[0] != str(cls):
            continue
        cx, cy, w, h = (float(v) for v in parts[1:])
        boxes.append((int(round((cx - w / 2) * width)), int(round((cy - h / 2) * height)),
                      int(round((cx + w / 2) * width)), int(round((cy + h / 2) * height))))
    return boxes


def txl_dataset(root: str | os.PathLike[str], label: str = "wbc") -> list[Source]:
    """Smear fields with YOLO white-cell boxes but no cell types (TXL-PBC layout).

    ``images/*.jpg`` and ``labels/*.txt`` (``class cx cy w h`` relative;
    class 0 = WBC). Every box takes ``label``: these cells carry no type, so
    they serve as unlabelled examples of another microscope's appearance
    (``style_data`` in a training config), never as training labels.

    Returns
    -------
    sources : list of Source
        Group = the image; finder ``box``.
    """
    root = Path(root)
    images, labels = root / "images", root / "labels"
    if not images.is_dir() or not labels.is_dir():
        raise DataError("expected images/ and labels/ folders", root)
    sources = []
    for image in _images(images):
        table = labels / f"{image.stem}.txt"
        if not table.is_file():
            continue
        with Image.open(image) as im:
            width, height = im.size
        boxes = read_yolo_boxes(table, width, height)
        if boxes:
            sources.append(Source(image, label, image.stem, "box", boxes))
    if not sources:
        raise DataError("no images with white-cell boxes found", root)
    return sources


def manifest_dataset(path: str | os.PathLike[str], finder: str = "centre") -> list[Source]:
    """A CSV manifest of a hospital's own cells.

    Columns ``path,label,group`` (``group``: the patient or slide, so that a
    patient is never on both sides of a split; the image when left empty),
    optionally ``x0,y0,x1,y1``: a box around the cell in a larger field.
    Relative paths are relative to the CSV's folder. Rows with a box use the
    ``box`` finder; the others ``finder`` (default ``centre``: one cell per
    image, the white cell nearest its centre).

    Returns
    -------
    sources : list of Source
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("manifest not found", path)
    by_image: dict[Path, Source] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"manifest lacks column(s): {', '.join(sorted(missing))}", path)
        for line, row in enumerate(reader, start=2):
            image = Path(row["path"])
            image = image if image.is_absolute() else path.parent / image
            label = (row.get("label") or "").strip()
            if not label:
                raise DataError(f"line {line}: empty label", path)
            group = (row.get("group") or "").strip() or image.stem
            if all((row.get(k) or "").strip() for k in ("x0", "y0", "x1", "y1")):
                box = tuple(int(float(row[k])) for k in ("x0", "y0", "x1", "y1"))
                source = by_image.setdefault(image, Source(image, label, group, "box"))
                source.boxes.append(box)  # type: ignore[arg-type]
                source.labels.append(label)
            else:
                by_image[image] = Source(image, label, group, finder)
    if not by_image:
        raise DataError("manifest has no rows", path)
    return list(by_image.values())


# ----------------------------------------------------------------------------
# finding cells


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as RGB uint8 with the app's reader (Pillow when it is absent)."""
    try:
        from leukview.core.io import read_image
    except ImportError:  # the app's reader is optional here
        read_image = None
    if read_image is not None:
        return read_image(path)
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image ({exc})", path) from exc


def cell_from_mask(mask: np.ndarray, cell_id: int = 1, kind: str = "wbc") -> Cell | None:
    """A Cell from the largest connected region of a boolean mask, or None if empty."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == best).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.int32)
    x, y, w, h = (int(v) for v in stats[best, :4])
    area = float(stats[best, cv2.CC_STAT_AREA])
    cx, cy = (float(v) for v in centroids[best])
    return Cell(cell_id, kind, contour, (x, y, x + w, y + h), (cx, cy), measurements={"area": area})


def cell_on_black(image: np.ndarray, threshold: int = 12) -> Cell | None:
    """The cell of a C-NMC style image: the largest region brighter than black.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    threshold : int
        A pixel belongs to the cell when one of its channels exceeds this
        (JPEG and resampling leave near-black noise around the cell).
    """
    mask = image.max(axis=2) > threshold
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    return cell_from_mask(mask)


def box_cell(box: Sequence[float], cell_id: int = 1) -> Cell:
    """A Cell known only by a box (empty contour), e.g. a fallback crop."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return Cell(cell_id, "wbc", np.zeros((0, 2), np.int32), (x0, y0, x1, y1), ((x0 + x1) / 2.0, (y0 + y1) / 2.0))


Segmenter = Callable[[np.ndarray], list[Cell]]


def app_segmenter(image: np.ndarray) -> list[Cell]:
    """The app's segmentation (:func:`leukview.core.segment.segment`), cells only."""
    from leukview.core.segment import segment

    return list(segment(image).cells)


@functools.lru_cache(maxsize=1)
def segmenter_fingerprint() -> str:
    """Changes whenever the app's segmentation code or default parameters change.

    Computed once per process, right after the segmentation module is
    imported, so it describes the code that actually runs.
    """
    from leukview.core import measure, segment

    digest = hashlib.sha256()
    for module in (segment, measure):
        digest.update(inspect.getsource(module).encode())
    params = getattr(segment, "SegmentationParams", None)
    if params is not None:
        digest.update(json.dumps(params().to_dict(), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def nearest_to(cells: Sequence[Cell], point: tuple[float, float]) -> Cell | None:
    """The cell whose centroid is nearest to ``point`` (x, y), or None."""
    if not cells:
        return None
    return min(cells, key=lambda c: (c.centroid[0] - point[0]) ** 2 + (c.centroid[1] - point[1]) ** 2)


def match_box(cells: Sequence[Cell], box: Sequence[float]) -> Cell | None:
    """The white cell whose centroid lies inside ``box`` and nearest its centre, or None."""
    x0, y0, x1, y1 = box
    inside = [c for c in cells if x0 <= c.centroid[0] < x1 and y0 <= c.centroid[1] < y1]
    return nearest_to(inside, ((x0 + x1) / 2.0, (y0 + y1) / 2.0))


# ----------------------------------------------------------------------------
# crops


@dataclass
class CropSet:
    """Cell crops and what they are.

    Attributes
    ----------
    crops : ndarray of uint8, shape (N, S, S, 3)
    labels, groups, sources : ndarray of str, shape (N,)
        Class, split group and source image of each crop.
    boxes : ndarray of int32, shape (N, 4)
        Cell bounding box in its source image.
    how : ndarray of str, shape (N,)
        'segmented', 'fallback', 'mask' or 'box' (annotation, not segmentation).
    report : dict
        Counts: images, cells, fallbacks, images without any cell, boxes missed.
    """

    crops: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    boxes: np.ndarray
    how: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> CropSet:
        """The crops at ``index`` (same report)."""
        return CropSet(
            self.crops[index], self.labels[index], self.groups[index], self.sources[index],
            self.boxes[index], self.how[index], dict(self.report),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp, crops=self.crops, labels=self.labels, groups=self.groups, sources=self.sources,
            boxes=self.boxes, how=self.how, report=np.array(json.dumps(self.report)),
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CropSet:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                data["crops"], data["labels"], data["groups"], data["sources"], data["boxes"],
                data["how"], json.loads(str(data["report"])),
            )


def _cell_cache_entry(cells: Sequence[Cell], shape: tuple[int, ...]) -> dict[str, Any]:
    keep = []
    for cell in cells:
        if cell.kind not in ("wbc", "platelet"):
            continue
        entry = cell.to_dict()
        entry.pop("predictions", None)  # empty here; keep the cache small
        entry.pop("review", None)
        # full precision: the crop window depends on the centroid and the area
        entry["centroid"] = [float(v) for v in cell.centroid]
        entry["measurements"] = {k: float(v) for k, v in cell.measurements.items() if v is not None}
        keep.append(entry)
    return {"shape": list(shape[:2]), "cells": keep}


def segment_sources(
    sources: Sequence[Source],
    cache_file: str | os.PathLike[str] | None,
    segmenter: Segmenter | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Segment each source image once; white cells and platelets cached as JSON.

    Returns
    -------
    found : dict
        Image path -> {'shape': [H, W], 'cells': [Cell.to_dict(), ...]}.
    """
    cache_path = Path(cache_file) if cache_file else None
    found: dict[str, dict[str, Any]] = {}
    if cache_path and cache_path.is_file():
        found = json.loads(cache_path.read_text(encoding="utf-8"))
    todo = [s for s in sources if s.finder in ("centre", "all", "box") and str(s.path) not in found]
    if todo:
        run = segmenter or app_segmenter
        bar = _progress(todo, "segmenting", progress)
        for i, source in enumerate(bar):
            image = read_rgb(source.path)
            found[str(source.path)] = _cell_cache_entry(run(image), image.shape)
            if cache_path and (i + 1) % 200 == 0:  # survive an interruption
                _write_json(cache_path, found)
        if cache_path:
            _write_json(cache_path, found)
    return found


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _progress(items: Sequence[Any], desc: str, enabled: bool):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, mininterval=5.0, leave=False)


def select_cells(
    source: Source, entry: dict[str, Any] | None, image: np.ndarray | None = None
) -> list[tuple[Cell, str, str]]:
    """The cells of one source with their labels and how they were found.

    Returns
    -------
    picks : list of (Cell, label, how)
        ``how`` is 'segmented', 'mask' or 'box'; empty when no cell was found
        (the caller decides about fallbacks).
    """
    if source.finder == "mask":
        if image is None:
            image = read_rgb(source.path)
        cell = cell_on_black(image)
        return [] if cell is None else [(cell, source.label, "mask")]
    cells = [Cell.from_dict(c) for c in (entry or {}).get("cells", [])]
    wbcs = [c for c in cells if c.kind == "wbc"]
    if source.finder == "all":
        return [(c, source.label, "segmented") for c in wbcs]
    if source.finder == "centre":
        h, w = (entry or {}).get("shape", [0, 0])
        cell = nearest_to(wbcs, ((w - 1) / 2.0, (h - 1) / 2.0))
        return [] if cell is None else [(cell, source.label, "segmented")]
    picks = []
    for i, box in enumerate(source.boxes):
        label = source.labels[i] if i < len(source.labels) else source.label
        cell = match_box(wbcs, box)
        if cell is not None:
            picks.append((cell, label, "segmented"))
    return picks


def extract_crops(
    sources: Sequence[Source],
    rule: CropRule,
    size: int,
    cache_dir: str | os.PathLike[str] | None = "cache",
    name: str = "data",
    segmenter: Segmenter | None = None,
    fallback: bool = True,
    progress: bool = True,
    reuse_segmentation: bool = False,
) -> CropSet:
    """Find the cells of every source and cut them with the app's :func:`crop_cell`.

    Parameters
    ----------
    sources : sequence of Source
    rule : CropRule
        The model's crop rule (goes into its sidecar).
    size : int
        Crop side (the model's input size).
    cache_dir : path or None
        Segmentations and crops are cached here (keyed by the segmentation
        code, the sources, the rule and the size); None: no cache.
    name : str
        Prefix of the cache files.
    segmenter : callable, optional
        image -> list of Cell; the app's segmentation by default. A custom
        segmenter is not fingerprinted: pass ``cache_dir=None`` when testing one.
    fallback : bool
        For ``centre`` sources with no white cell found: crop a centred box of
        the mean white-cell diameter of the dataset instead of dropping the image.
    progress : bool
        Show progress bars.
    reuse_segmentation : bool
        When the segmentation code changed since these images were segmented,
        reuse the newest cached segmentation of the same images instead of
        segmenting again (logged; the crops then come from that older code,
        whose fingerprint the report records).

    Returns
    -------
    CropSet
    """
    if not sources:
        raise DataError(f"dataset '{name}' has no images")
    needs_segmentation = any(s.finder != "mask" for s in sources)
    fingerprint = "none" if not needs_segmentation else ("custom" if segmenter is not None else segmenter_fingerprint())
    listing = hashlib.sha256(
        json.dumps([[str(s.path), s.label, s.group, s.finder, s.boxes, s.labels] for s in sources]).encode()
    ).hexdigest()[:12]
    cache = Path(cache_dir) if cache_dir is not None and segmenter is None else None
    crop_key = hashlib.sha256(
        json.dumps([listing, fingerprint, rule.to_dict(), size, fallback, _crop_code_version(), CACHE_VERSION]).encode()
    ).hexdigest()[:12]
    crop_file = cache / "crops" / f"{name}-{crop_key}.npz" if cache else None
    if crop_file and crop_file.is_file():
        cached = CropSet.load(crop_file)
        cached.report["cache_file"] = str(crop_file)
        return cached

    cells_file = cache / "cells" / f"{name}-{listing}-{fingerprint}-v{CACHE_VERSION}.json" if cache and needs_segmentation else None
    if cells_file and not cells_file.is_file() and reuse_segmentation:
        older = sorted(cells_file.parent.glob(f"{name}-{listing}-*-v{CACHE_VERSION}.json"), key=os.path.getmtime)
        if older:
            log.warning("%s: segmentation code changed; reusing the cached segmentation %s", name, older[-1].name)
            cells_file = older[-1]
            fingerprint = cells_file.stem.split("-")[-2]
            crop_key = hashlib.sha256(json.dumps(
                [listing, fingerprint, rule.to_dict(), size, fallback, _crop_code_version(), CACHE_VERSION]
            ).encode()).hexdigest()[:12]
            crop_file = cache / "crops" / f"{name}-{crop_key}.npz" if cache else None
            if crop_file and crop_file.is_file():
                cached = CropSet.load(crop_file)
                cached.report["cache_file"] = str(crop_file)
                return cached
    found = segment_sources(sources, cells_file, segmenter, progress) if needs_segmentation else {}

    picks: list[tuple[Source, Cell | None, str, str]] = []
    no_cell: Counter[str] = Counter()
    without: list[list[str]] = []
    diameters = []
    for source in sources:
        chosen = select_cells(source, found.get(str(source.path)))
        if not chosen:
            no_cell[source.label] += 1
            without.append([str(source.path), source.label, source.group])
            if source.finder == "centre" and fallback:
                picks.append((source, None, source.label, "fallback"))
            continue
        for cell, label, how in chosen:
            picks.append((source, cell, label, how))
            if how == "segmented":
                diameters.append(cell.diameter)
    mean_diameter = float(np.mean(diameters)) if diameters else None

    crops, labels, groups, paths, boxes, hows = [], [], [], [], [], []
    image_cache: tuple[str, np.ndarray] | None = None
    for source, cell, label, how in _progress(picks, "cropping", progress):
        if image_cache is None or image_cache[0] != str(source.path):
            image_cache = (str(source.path), read_rgb(source.path))
        image = image_cache[1]
        if cell is None:
            h, w = image.shape[:2]
            side = mean_diameter or 0.6 * min(h, w)
            cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
            cell = box_cell((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        crops.append(crop_cell(image, cell, rule, size))
        labels.append(label)
        groups.append(source.group)
        paths.append(str(source.path))
        boxes.append(cell.bbox)
        hows.append(how)
    missed_boxes = sum(
        len(s.boxes) - len(select_cells(s, found.get(str(s.path)))) for s in sources if s.finder == "box"
    )
    report = {
        "images": len(sources),
        "cells": len(crops),
        "by_how": dict(Counter(hows)),
        "images_without_cell": dict(no_cell),
        "sources_without_cell": without,
        "boxes": sum(len(s.boxes) for s in sources if s.finder == "box"),
        "boxes_missed": missed_boxes,
        "mean_wbc_diameter_px": mean_diameter,
        "segmenter": fingerprint,
    }
    result = CropSet(
        np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        np.array(labels, dtype=str), np.array(groups, dtype=str), np.array(paths, dtype=str),
        np.array(boxes, dtype=np.int32).reshape(-1, 4), np.array(hows, dtype=str), report,
    )
    if crop_file:
        result.report["cache_file"] = str(crop_file)
        result.save(crop_file)
    return result


def _crop_code_version() -> str:
    # the crops change when the app's crop function or this module's selection changes
    from leukview.core import preprocess

    text = inspect.getsource(preprocess.crop_cell) + inspect.getsource(select_cells)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------
# splits


def grouped_split(
    labels: Sequence[str], groups: Sequence[str], val: float = 0.1, test: float = 0.2, seed: int = 0
) -> dict[str, list[str]]:
    """Split groups into train/val/test, stratified by label, with no group on two sides.

    Parameters
    ----------
    labels, groups : sequence of str, length N
        Label and group of each sample. A group's label for stratification is
        its most frequent one.
    val, test : float
        Fractions of the groups (0 leaves that part empty).
    seed : int

    Returns
    -------
    split : dict
        'train', 'val', 'test' -> sorted group names.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels, dtype=str)
    groups = np.asarray(groups, dtype=str)
    if len(labels) != len(groups):
        raise ValueError("labels and groups differ in length")
    names = np.unique(groups)
    group_label = {}
    for g in names:
        values, counts = np.unique(labels[groups == g], return_counts=True)
        group_label[g] = values[np.argmax(counts)]
    glabels = np.array([group_label[g] for g in names])

    def carve(pool: np.ndarray, fraction: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0 or len(pool) < 2:
            return pool, pool[:0]
        n_splits = max(2, int(round(1.0 / fraction)))
        smallest = min(Counter(glabels[np.isin(names, pool)]).values())
        n_splits = min(n_splits, len(pool))
        if smallest < n_splits:  # too few groups of a class to stratify that finely
            log.warning("a class has only %d group(s); stratification is approximate", smallest)
        index = np.flatnonzero(np.isin(names, pool))
        kfold = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + salt)
        keep, take = next(kfold.split(np.zeros(len(index)), glabels[index], names[index]))
        return names[index[keep]], names[index[take]]

    rest, test_groups = carve(names, test, 0)
    train_groups, val_groups = carve(rest, val / max(1e-9, 1.0 - test), 1)
    split = {"train": sorted(train_groups), "val": sorted(val_groups), "test": sorted(test_groups)}
    assert_disjoint(split)
    return split


def assert_disjoint(split: dict[str, Sequence[str]]) -> None:
    """Raise DataError when a group is on two sides of a split."""
    parts = list(split)
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            shared = set(split[a]) & set(split[b])
            if shared:
                raise DataError(
                    f"split leaks {len(shared)} group(s) between {a} and {b}, e.g. {sorted(shared)[:3]}"
                )


def split_indices(groups: Sequence[str], split: dict[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Sample indices of each part of a split (samples whose group is in no part are left out)."""
    groups = np.asarray(groups, dtype=str)
    return {part: np.flatnonzero(np.isin(groups, list(names))) for part, names in split.items()}


def save_split(
    path: str | os.PathLike[str], split: dict[str, Sequence[str]], labels: Sequence[str],
    groups: Sequence[str], seed: int, note: str = "",
) -> dict[str, Any]:
    """Write a split and its per-class counts as JSON; returns the document."""
    assert_disjoint(split)
    labels = np.asarray(labels, dtype=str)
    index = split_indices(groups, split)
    doc = {
        "seed": seed,
        "note": note,
        "groups": {k: list(v) for k, v in split.items()},
        "counts": {k: dict(Counter(labels[i].tolist())) for k, i in index.items()},
        "n_groups": {k: len(v) for k, v in split.items()},
        "overlap": 0,
    }
    _write_json(Path(path), doc)
    return doc


def load_split(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a split written by :func:`save_split` (its zero overlap is re-checked)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read split ({exc})", path) from exc
    split = {k: list(v) for k, v in doc["groups"].items()}
    assert_disjoint(split)
    return split


# ----------------------------------------------------------------------------
# dataset specs from a config


def load_sources(spec: dict[str, Any], data_root: str | os.PathLike[str] | None = None) -> list[Source]:
    """Sources from one config entry.

    Parameters
    ----------
    spec : dict
        ``{"kind": "folder"|"cnmc"|"taleqani"|"bccd"|"zheng"|"txl"|"manifest", "root": PATH, ...}``
        plus the loader's keyword arguments (``classes``, ``label_map``,
        ``block``, ``folds``, ``finder``); ``limit`` keeps the first n
        images per label (for quick runs and tests).
    data_root : path, optional
        Relative roots are resolved against it (default: the current folder).

    Returns
    -------
    sources : list of Source
    """
    spec = dict(spec)
    kind = spec.pop("kind", "folder")
    root = Path(os.path.expandvars(str(spec.pop("root"))))
    if not root.is_absolute() and data_root is not None:
        root = Path(data_root) / root
    root = root.resolve()  # one spelling per file, so caches match however the root was given
    limit = spec.pop("limit", None)
    spec.pop("name", None)
    loaders: dict[str, Callable[..., list[Source]]] = {
        "folder": folder_dataset,
        "cnmc": cnmc_dataset,
        "taleqani": taleqani_dataset,
        "bccd": bccd_dataset,
        "manifest": manifest_dataset,
        "zheng": zheng_dataset,
        "txl": txl_dataset,
    }
    if kind not in loaders:
        raise DataError(f"unknown dataset kind {kind!r}; choose one of {', '.join(loaders)}")
    sources = loaders[kind](root, **spec)
    if limit:
        taken: Counter[str] = Counter()
        kept = []
        for s in sources:
            if taken[s.label] < int(limit):
                kept.append(s)
                taken[s.label] += 1
        sources = kept
    return sources

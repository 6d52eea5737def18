"""Loaders of smear fields: Taleqani (one label per field), BCCD (VOC boxes), TXL-PBC (YOLO boxes)."""

from __future__ import annotations

import csv
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

from ._cell_images import folder_dataset
from ._source import DataError, Source, image_files

TALEQANI_LABELS = {"Benign": "normal", "Early": "blast", "Pre": "blast", "Pro": "blast"}
BCCD_LABELS = {
    "NEUTROPHIL": "neutrophil",
    "EOSINOPHIL": "eosinophil",
    "LYMPHOCYTE": "lymphocyte",
    "MONOCYTE": "monocyte",
    "BASOPHIL": "basophil",
}


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
    for image in image_files(images):
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

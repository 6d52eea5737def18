"""Loaders of single-cell image sets: a folder per class (PBC), C-NMC, Zheng 2018, a manifest."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ._source import DataError, Source, image_files

CNMC_LABELS = {"all": "blast", "hem": "normal"}
ZHENG_LABELS = {"1": "neutrophil", "2": "lymphocyte", "3": "monocyte", "4": "eosinophil", "5": "basophil"}


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
        sources += [Source(p, label, f"{name}/{p.stem}", finder) for p in image_files(folder)[: per_folder or None]]
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
        sources += [Source(p, label, cnmc_subject(p.name), "mask") for p in image_files(folder)]
    if not sources:
        raise DataError("no C-NMC cells found (expected fold_N/all and fold_N/hem folders)", root)
    return sources


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

"""Clean field labels into cell labels: ``python -m training.clean``.

Taleqani labels whole fields: every white cell of a B-ALL field is "blast",
the neutrophils and mature lymphocytes that share the field included, and
every cell of a benign field is a hematogone (a normal B precursor). A model
that learns from field labels learns "Taleqani's look = blast". This module
decides, cell by cell, what each field label means, with a **teacher** (a
white-cell type model that has never seen a blast, e.g. wbc-type 1.3.0) and
the app's own measurements (nuclear lobes, N:C ratio):

==============  =========================================  ==========================
field           cell                                       label
==============  =========================================  ==========================
any             diameter under ``min_size`` or over        dropped (fragments,
                ``max_size`` times the dataset's median    clumps, whole-field
                white cell                                 segmentations)
B-ALL           teacher says a mononuclear class           ``blast``
                (lymphocyte, monocyte, erythroblast),
                one nuclear lobe, N:C ratio >= ``min_nc``
B-ALL           teacher says neutrophil (>= 2 lobes) or    the teacher's label
                eosinophil, at >= ``keep_conf``
Benign          mononuclear as above                       ``hematogone_label``
                                                           (``lymphocyte``)
Benign          neutrophil or eosinophil as above          the teacher's label
any             anything else (platelet, IG and basophil   dropped
                calls, unsure granulocytes, "mononuclear"
                cells with several lobes: clumps)
==============  =========================================  ==========================

Why IG and basophil calls are dropped, not kept: on B-ALL fields the teacher
calls 1,924 cells basophil and 2,162 IG (benign fields: 404 and 657), almost
all of them blasts or smudged cells by eye; real basophils and immature
granulocytes are rare in these smears, and keeping the teacher's label would
teach "a Taleqani blast is a basophil".

The decisions go to a CSV (one row per segmented white cell: its field, box,
teacher call and confidence, measurements, the new label or empty when
dropped, and the rule that decided), which a training config names with
``relabel = "FILE"`` on the dataset entry (:func:`apply_relabel`); the table
is committed beside the config, so a run is reproducible without the teacher.

Usage::

    python -m training.clean --teacher models/wbc-type --out training/configs/taleqani-clean.csv
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leukview.core.cells import Cell

log = logging.getLogger("training.clean")

MONONUCLEAR = ("lymphocyte", "monocyte", "erythroblast")
GRANULOCYTES = ("neutrophil", "eosinophil")
COLUMNS = ("source", "x0", "y0", "x1", "y1", "field", "teacher", "teacher_confidence", "nc_ratio",
           "lobe_count", "size_ratio", "label", "rule")


@dataclass(frozen=True)
class CleanRule:
    """Thresholds of the cleaning (see the module docstring).

    Attributes
    ----------
    blast_label : str
        The field label that means "a B-ALL field" (``blast``).
    hematogone_label : str
        What a mononuclear cell of a benign field becomes (``lymphocyte``).
    min_nc : float
        Least nucleus / cytoplasm area ratio of a blast or hematogone.
    keep_conf : float
        Least teacher confidence for a granulocyte to keep the teacher's label.
    min_size, max_size : float
        Kept cells' equivalent diameter, as a multiple of the dataset's median white cell.
    """

    blast_label: str = "blast"
    hematogone_label: str = "lymphocyte"
    min_nc: float = 1.0
    keep_conf: float = 0.9
    min_size: float = 0.5
    max_size: float = 2.0


def decide(field_label: str, teacher: str, confidence: float, nc_ratio: float, lobes: float,
           size_ratio: float = 1.0, rule: CleanRule = CleanRule()) -> tuple[str, str]:
    """The new label of one cell ('' = dropped) and the name of the rule that decided it.

    Parameters
    ----------
    field_label : str
        The field's label (``blast`` for a B-ALL field, anything else for benign).
    teacher : str
        The teacher's call; ``confidence`` its probability.
    nc_ratio, lobes : float
        The app's ``nc_ratio`` and ``lobe_count`` measurements of the cell.
    size_ratio : float
        Its equivalent diameter over the dataset's median.
    rule : CleanRule

    Returns
    -------
    label, why : str
    """
    malignant = field_label == rule.blast_label
    if not rule.min_size <= size_ratio <= rule.max_size:
        return "", "size"
    if teacher in MONONUCLEAR:
        if lobes > 1:
            return "", "mononuclear call, several lobes"
        if nc_ratio < rule.min_nc:
            return "", "mononuclear call, low N:C"
        return (rule.blast_label, "blast") if malignant else (rule.hematogone_label, "hematogone")
    if teacher in GRANULOCYTES:
        if confidence < rule.keep_conf:
            return "", "unsure granulocyte"
        if teacher == "neutrophil" and lobes < 2:
            return "", "neutrophil call, one lobe"
        return teacher, "teacher"
    return "", f"teacher {teacher}"


def _cell_key(source: str, box: tuple[int, int, int, int]) -> tuple[str, int, int, int, int]:
    return (source, *box)


def clean_fields(
    data_root: str | os.PathLike[str], teacher_dir: str | os.PathLike[str], out: str | os.PathLike[str],
    rule: CleanRule = CleanRule(), cache_dir: str = "cache", entry: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Segment Taleqani's fields (cached), call each white cell with the teacher, write the decisions.

    Parameters
    ----------
    data_root : path
    teacher_dir : path
        A LeukView model folder (``model.onnx`` + ``model.json``) of white-cell types.
    out : path
        The CSV to write (:data:`COLUMNS`).
    rule : CleanRule
    cache_dir : str
        Crop cache of :func:`training.data.extract_crops`.
    entry : dict, optional
        The dataset entry (default: Taleqani with blocks of 50).

    Returns
    -------
    report : dict
        Counts by field label, teacher call and decision.
    """
    from leukview.core.models import Classifier
    from leukview.core.preprocess import normalize

    from .data import extract_crops, load_sources
    from .data._cache import _cell_cache_entry  # noqa: F401  (the cache layout this reads)

    entry = entry or {"kind": "taleqani", "root": "taleqani", "block": 50}
    teacher = Classifier.load(teacher_dir, providers=["CPUExecutionProvider"])
    spec = teacher.spec
    sources = load_sources(entry, data_root)
    crops = extract_crops(sources, spec.crop, spec.input_size, cache_dir=cache_dir, name="taleqani",
                          progress=progress, reuse_segmentation=True)
    # measurements of every cell, from the same cached segmentation
    found = _cached_cells(sources, cache_dir)
    root = Path(data_root) / entry["root"]
    rows = []
    probs_all = []
    for start in range(0, len(crops), 128):
        scores, _ = teacher.run(normalize(crops.crops[start : start + 128], spec.mean, spec.std), False)
        probs_all.append(_softmax(scores) if spec.scores_kind == "logits" else scores)
    probs = np.concatenate(probs_all) if probs_all else np.zeros((0, len(spec.classes)))
    counts: Counter[tuple[str, str, str]] = Counter()
    median = float(np.median([c.diameter for c in found.values()])) if found else 1.0
    for i in range(len(crops)):
        path = str(crops.sources[i])
        box = tuple(int(v) for v in crops.boxes[i])
        cell = found.get(_cell_key(path, box))  # type: ignore[arg-type]
        nc = float(cell.measurements.get("nc_ratio", 0.0)) if cell else 0.0
        lobes = float(cell.measurements.get("lobe_count", 0.0)) if cell else 0.0
        size = cell.diameter / median if cell else 0.0
        best = int(np.argmax(probs[i]))
        call, conf = spec.classes[best], float(probs[i, best])
        label, why = decide(str(crops.labels[i]), call, conf, nc, lobes, size, rule)
        counts[(str(crops.labels[i]), call, label or "dropped")] += 1
        rows.append({
            "source": os.path.relpath(path, root), "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3],
            "field": str(crops.labels[i]), "teacher": call, "teacher_confidence": f"{conf:.4f}",
            "nc_ratio": f"{nc:.3f}", "lobe_count": int(lobes), "size_ratio": f"{size:.3f}", "label": label,
            "rule": why,
        })
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        handle.write(f"# teacher {spec.name} {spec.version} sha256 {spec.sha256[:16]}; rule {rule}\n")
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    report = summarise(rows)
    report["teacher"] = f"{spec.name} {spec.version}"
    return report


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = np.asarray(scores, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _cached_cells(sources: list[Any], cache_dir: str) -> dict[tuple[str, int, int, int, int], Cell]:
    """The segmented white cells of the sources (the cache written by extract_crops), by (path, box)."""
    from .data import segment_sources

    found = segment_sources(sources, _cells_file(sources, cache_dir), progress=False)
    out = {}
    for path, entry in found.items():
        for data in entry.get("cells", []):
            if data.get("kind") == "wbc":
                cell = Cell.from_dict(data)
                out[_cell_key(path, cell.bbox)] = cell
    return out


def _cells_file(sources: list[Any], cache_dir: str) -> Path | None:
    """The newest segmentation cache of these sources (the one extract_crops just used or made)."""
    import hashlib
    import json

    listing = hashlib.sha256(
        json.dumps([[str(s.path), s.label, s.group, s.finder, s.boxes, s.labels] for s in sources]).encode()
    ).hexdigest()[:12]
    files = sorted((Path(cache_dir) / "cells").glob(f"taleqani-{listing}-*.json"), key=os.path.getmtime)
    return files[-1] if files else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of a decision table: by field and new label, by field and teacher call, by rule."""
    by_label: Counter[str] = Counter()
    by_teacher: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    for r in rows:
        by_label[f"{r['field']} -> {r['label'] or 'dropped'}"] += 1
        by_teacher[f"{r['field']} / {r['teacher']}"] += 1
        by_rule[f"{r['field']}: {r['rule']}"] += 1
    return {"cells": len(rows), "by_label": dict(sorted(by_label.items())),
            "by_teacher": dict(sorted(by_teacher.items())), "by_rule": dict(sorted(by_rule.items()))}


def read_relabel(path: str | os.PathLike[str]) -> dict[tuple[str, int, int, int, int], str]:
    """A decision table: (source relative to the dataset root, x0, y0, x1, y1) -> label ('' = dropped)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    table = {}
    for row in csv.DictReader(lines):
        key = (row["source"], int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
        table[key] = row["label"]
    return table


def apply_relabel(crops: Any, table: dict[tuple[str, int, int, int, int], str], root: str | os.PathLike[str],
                  tolerance: int = 3) -> tuple[Any, dict[str, Any]]:
    """Relabel (or drop) the crops of a field dataset by a decision table.

    A crop matches the row of its source whose box is the same, or whose
    corners are within ``tolerance`` pixels (a segmentation that moved a
    contour by a pixel); crops without a row are dropped and counted, so a
    changed segmentation shows in the report instead of silently keeping
    field labels.

    Parameters
    ----------
    crops : CropSet
    table : dict
        From :func:`read_relabel`.
    root : path
        The dataset root the table's ``source`` paths are relative to.

    Returns
    -------
    crops : CropSet
        The kept crops with their new labels.
    report : dict
        kept, dropped (by the table), unmatched, relabelled (old -> new counts).
    """
    by_source: dict[str, list[tuple[tuple[int, int, int, int], str]]] = {}
    for (source, *box), label in table.items():
        by_source.setdefault(source, []).append((tuple(box), label))  # type: ignore[arg-type]
    keep, labels = [], []
    unmatched = dropped = 0
    changes: Counter[str] = Counter()
    for i in range(len(crops)):
        source = os.path.relpath(str(crops.sources[i]), root)
        box = tuple(int(v) for v in crops.boxes[i])
        label = table.get((source, *box))  # type: ignore[arg-type]
        if label is None:
            near = [(max(abs(a - b) for a, b in zip(b2, box, strict=True)), lab) for b2, lab in by_source.get(source, [])]
            near = [n for n in near if n[0] <= tolerance]
            label = min(near)[1] if near else None
        if label is None:
            unmatched += 1
            continue
        if not label:
            dropped += 1
            continue
        keep.append(i)
        labels.append(label)
        changes[f"{crops.labels[i]} -> {label}"] += 1
    out = crops.subset(np.array(keep, int))
    out.labels = np.array(labels, dtype=str).reshape(-1)
    report = {"kept": len(keep), "dropped": dropped, "unmatched": unmatched, "relabelled": dict(changes)}
    if unmatched > 0.05 * max(len(crops), 1):
        log.warning("%d of %d cells have no row in the decision table (segmentation changed?)", unmatched, len(crops))
    return out, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.clean", description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, help="white-cell type model folder (e.g. models/wbc-type)")
    parser.add_argument("--out", required=True, help="decision table to write (CSV)")
    parser.add_argument("--data-root", default=os.environ.get("LEUKVIEW_DATA", "../shared/data"))
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--min-nc", type=float, default=CleanRule.min_nc)
    parser.add_argument("--keep-conf", type=float, default=CleanRule.keep_conf)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import json

    rule = CleanRule(min_nc=args.min_nc, keep_conf=args.keep_conf)
    report = clean_fields(args.data_root, args.teacher, args.out, rule, args.cache_dir, progress=False)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

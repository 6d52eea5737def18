"""Figures per source of a shipped model, through the app's own pipeline: ``python -m training.sources``.

Every image is read, segmented and classified by
:func:`leukview.core.analysis.analyze_image` with the model folder as the app
loads it, and every cell is called by :func:`leukview.core.calls.call_cell`,
so these are the numbers a user would see. No torch is needed.

Sets (``--sets``; all by default):

``pbc``, ``zheng``
    The model's held-out images (its ``split.json``): the white cell nearest
    the image centre, accuracy over the dataset's classes.
``taleqani``
    Held-out Taleqani fields: a field is called B-ALL when at least half of
    its white cells are called blast; the truth is its folder (Benign =
    hematogones, normal). Also the cell accuracy against the decision table
    of :mod:`training.clean` when the model's config names one.
``bccd``
    Every annotated white cell of BCCD's single-type images (normal smears):
    accuracy over its 4 main types (neutrophil, eosinophil, lymphocyte,
    monocyte; its 3 basophils are reported, not scored) and the blast false
    alarms (a normal cell called blast).
``txl-bcdd``, ``txl-raabin``
    Annotated white cells of normal donors' fields (two more microscopes):
    every blast call is a false alarm.
``cnmc``
    C-NMC cells on black, by subject: blast sensitivity (ALL cells called
    blast, and called blast or flagged atypical) and specificity (normal
    cells not called blast).

Each set also reports the fraction of its cells flagged ``atypical``.

Usage::

    python -m training.sources models --out models/wbc-mononuclear/sources.json   # the shipped pair, as the app runs it
    python -m training.sources models/wbc-type --sets bccd                        # one model alone
    python -m training.sources --tiled runs/bccd-100.png      # then: leukview analyze runs/bccd-100.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leukview.core.analysis import analyze_image
from leukview.core.calls import FLAG_ATYPICAL, CellCall, call_cell, differential_count
from leukview.core.cells import Cell
from leukview.core.models import Classifier, ModelRegistry
from leukview.core.runs import ModelRun

from .data import (
    bccd_dataset,
    cnmc_dataset,
    load_sources,
    match_box,
    nearest_to,
    read_rgb,
    txl_dataset,
)

SETS = ("pbc", "zheng", "taleqani", "bccd", "txl-bcdd", "txl-raabin", "cnmc")
BCCD_TYPES = ("neutrophil", "eosinophil", "lymphocyte", "monocyte")
BLAST = "blast"


def _loader_args(entry: dict[str, Any]) -> dict[str, Any]:
    from .config import loader_args

    return loader_args(entry)


def _training_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "training-config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def held_out(model_dirs: Sequence[Path], data_root: Path, entry_name: str) -> list[Any]:
    """Sources of one training dataset held out by every model that trained on it (their splits' test parts)."""
    entry = None
    groups: set[str] | None = None
    for model_dir in model_dirs:
        config = _training_config(model_dir)
        mine = next((e for e in config.get("train_data", []) if e.get("name") == entry_name), None)
        if mine is None:
            continue
        entry = entry or mine
        split = json.loads((model_dir / "split.json").read_text(encoding="utf-8"))
        test = {g.split(":", 1)[1] for g in split["groups"]["test"] if g.startswith(f"{entry_name}:")}
        groups = test if groups is None else groups & test
    if entry is None or groups is None:
        return []
    return [s for s in load_sources(_loader_args(entry), data_root) if s.group in groups]


class Tally:
    """Counts of one set: cells, right calls, blast calls, atypical flags, confusion."""

    def __init__(self, models: Sequence[Classifier]) -> None:
        self.runs = _runs_of(models)  # the records the call rule reads, made once per set
        self.cells = 0
        self.right = 0
        self.scored = 0
        self.blast = 0
        self.atypical = 0
        self.confusion: Counter[tuple[str, str]] = Counter()

    def add(self, cell: Cell, truth: str | None, scored: bool = True) -> CellCall:
        """Count one cell; returns its call."""
        call = call_cell(cell, self.runs)
        label = str(call.label)
        self.cells += 1
        self.blast += label == BLAST
        self.atypical += FLAG_ATYPICAL in call.flags
        if truth is not None:
            self.confusion[(truth, label)] += 1
            if scored:
                self.scored += 1
                self.right += label == truth
        return call

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cells": self.cells,
            "blast_calls": self.blast,
            "blast_fraction": self.blast / self.cells if self.cells else None,
            "atypical": self.atypical,
            "atypical_fraction": self.atypical / self.cells if self.cells else None,
        }
        if self.scored:
            out.update(scored=self.scored, accuracy=self.right / self.scored)
        if self.confusion:
            out["confusion"] = {f"{t} -> {p}": n for (t, p), n in sorted(self.confusion.items())}
        return out


def _runs_of(models: Sequence[Classifier]) -> list[ModelRun]:
    return [ModelRun.of(m) for m in models]


def _analyse(image: np.ndarray, models: Sequence[Classifier]) -> list[Cell]:
    return [c for c in analyze_image(image, list(models)).cells if c.kind == "wbc"]


def single_cells(models: Sequence[Classifier], sources: Sequence[Any]) -> dict[str, Any]:
    """One-cell images: the white cell nearest the centre."""
    tally = Tally(models)
    missing = 0
    for source in sources:
        image = read_rgb(source.path)
        h, w = image.shape[:2]
        cell = nearest_to(_analyse(image, models), ((w - 1) / 2, (h - 1) / 2))
        if cell is None:
            missing += 1
            continue
        tally.add(cell, source.label)
    return {"images": len(sources), "images_without_cell": missing, **tally.to_dict()}


def boxed_cells(models: Sequence[Classifier], sources: Sequence[Any], types: Sequence[str] | None = None) -> dict[str, Any]:
    """Fields with annotated white-cell boxes; ``types``: the labels scored (None: no type scored)."""
    tally = Tally(models)
    boxes = missed = 0
    for source in sources:
        cells = _analyse(read_rgb(source.path), models)
        for i, box in enumerate(source.boxes):
            boxes += 1
            cell = match_box(cells, box)
            if cell is None:
                missed += 1
                continue
            truth = source.labels[i] if source.labels else source.label
            tally.add(cell, truth if types is not None else None, types is not None and truth in types)
    return {"images": len(sources), "boxes": boxes, "boxes_missed": missed, **tally.to_dict()}


def taleqani_fields(models: Sequence[Classifier], sources: Sequence[Any], table: dict[tuple[str, int, int, int, int], str] | None,
                    root: Path) -> dict[str, Any]:
    """Held-out fields: field call (>= half of the white cells called blast) and cell accuracy (cleaned labels)."""
    fields = Counter()
    right = empty = 0
    cells_tally = Tally(models)
    per_folder: dict[str, Counter[str]] = defaultdict(Counter)
    for source in sources:
        cells = _analyse(read_rgb(source.path), models)
        folder = source.path.parent.name
        truth = folder != "Benign"
        if not cells:
            empty += 1
            continue
        labels = []
        for cell in cells:
            want = None
            if table is not None:
                want = table.get((os.path.relpath(str(source.path), root), *cell.bbox))
            labels.append(cells_tally.add(cell, want or None, bool(want)).label)
            per_folder[folder][f"cell:{labels[-1]}"] += 1
        called = np.mean([lab == BLAST for lab in labels]) >= 0.5
        fields[(truth, bool(called))] += 1
        right += truth == called
        per_folder[folder]["fields"] += 1
        per_folder[folder]["called_all"] += int(called)
    n = sum(fields.values())
    tp, tn = fields[(True, True)], fields[(False, False)]
    positives = fields[(True, True)] + fields[(True, False)]
    negatives = fields[(False, False)] + fields[(False, True)]
    return {
        "fields": n, "fields_without_cells": empty,
        "field_accuracy": right / n if n else None,
        "field_sensitivity": tp / positives if positives else None,
        "field_specificity": tn / negatives if negatives else None,
        "cells": cells_tally.to_dict(),
        "per_folder": {k: dict(v) for k, v in sorted(per_folder.items())},
    }


def cnmc_subjects(models: Sequence[Classifier], sources: Sequence[Any]) -> dict[str, Any]:
    """C-NMC cells by subject: blast sensitivity and specificity."""
    by_subject: dict[str, Counter[str]] = defaultdict(Counter)
    tally = Tally(models)
    for source in sources:
        image = read_rgb(source.path)
        h, w = image.shape[:2]
        cell = nearest_to(_analyse(image, models), ((w - 1) / 2, (h - 1) / 2))
        key = by_subject[source.group]
        key["cells"] += 1
        key["truth_blast"] += source.label == BLAST
        if cell is None:
            key["not_found"] += 1
            continue
        call = tally.add(cell, None)
        label, atypical = str(call.label), FLAG_ATYPICAL in call.flags
        key[f"called:{label}"] += 1
        key["blast_or_atypical"] += label == BLAST or atypical
        key["called_blast"] += label == BLAST
    all_cells = [(s, k) for s, k in by_subject.items()]
    blasts = sum(k["truth_blast"] for _, k in all_cells)
    normals = sum(k["cells"] - k["truth_blast"] for _, k in all_cells)
    tp = sum(k["called_blast"] for _, k in all_cells if k["truth_blast"])
    tp_or = sum(k["blast_or_atypical"] for _, k in all_cells if k["truth_blast"])
    fp = sum(k["called_blast"] for _, k in all_cells if not k["truth_blast"])
    fp_or = sum(k["blast_or_atypical"] for _, k in all_cells if not k["truth_blast"])
    return {
        **tally.to_dict(),
        "blasts": blasts, "normals": normals,
        "sensitivity": tp / blasts if blasts else None,
        "sensitivity_blast_or_atypical": tp_or / blasts if blasts else None,
        "specificity": 1 - fp / normals if normals else None,
        "specificity_blast_or_atypical": 1 - fp_or / normals if normals else None,
        "subjects": {s: dict(k) for s, k in sorted(all_cells)},
    }


def tiled_bccd(data_root: Path, fields: int = 100, columns: int = 10) -> np.ndarray:
    """The first ``fields`` single-type BCCD fields (normal smears) tiled into one RGB image."""
    sources = bccd_dataset(data_root / "bccd")[:fields]
    images = [read_rgb(s.path) for s in sources]
    h = max(i.shape[0] for i in images)
    w = max(i.shape[1] for i in images)
    rows = (len(images) + columns - 1) // columns
    canvas = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        canvas[r * h : r * h + image.shape[0], c * w : c * w + image.shape[1]] = image
    return canvas


def tiled_differential(models: Sequence[Classifier], image: np.ndarray) -> dict[str, Any]:
    """The differential of one big image as the viewer counts it."""
    analysis = analyze_image(image, list(models))
    diff = differential_count(analysis.cells, analysis.models)
    return {
        "white_cells": diff.total, "counted": diff.leukocytes, "atypical_review": diff.atypical,
        "blast_count": diff.blast_count, "blast_percent": diff.blast_percent,
        "counts": {k: v for k, v in diff.counts.items() if v},
        "domain": None if analysis.domain is None else analysis.domain.to_dict(),
    }


def load_models(path: str | os.PathLike[str]) -> tuple[list[Classifier], list[Path]]:
    """The classifiers of one model folder, or of every usable model in a models folder (as the app loads them)."""
    path = Path(path)
    if (path / "model.json").is_file():
        return [Classifier.load(path, providers=["CPUExecutionProvider"])], [path]
    registry = ModelRegistry(path)
    classifiers, problems = registry.load_usable(providers=["CPUExecutionProvider"])
    if problems:
        raise ValueError("; ".join(f"{p.name}: {p.reason}" for p in problems))
    if not classifiers:
        raise ValueError(f"no model in {path}")
    folders = {e.spec.name: e.folder for e in registry.entries() if e.spec is not None}
    return classifiers, [folders[c.spec.name] for c in classifiers]


def measure(model_dir: str | os.PathLike[str], data_root: str | os.PathLike[str], sets: Sequence[str] = SETS,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Figures of a model folder, or of a models folder's models together, on the sources named in ``sets``."""
    data_root = Path(data_root)
    models, dirs = load_models(model_dir)
    configs = [_training_config(d) for d in dirs]
    names = {e.get("name") for c in configs for e in c.get("train_data", [])}
    out: dict[str, Any] = {"model": " + ".join(f"{m.spec.name} {m.spec.version}" for m in models)}
    for name in sets:
        started = time.time()
        if name in ("pbc", "zheng"):
            if name not in names:
                continue
            out[name] = single_cells(models, held_out(dirs, data_root, name))
        elif name == "taleqani":
            if name not in names:
                continue
            entry = next(e for c in configs for e in c.get("train_data", []) if e.get("name") == "taleqani")
            table = None
            if entry.get("relabel"):
                from .clean import read_relabel
                from .data import repo_path

                table = read_relabel(repo_path(entry["relabel"]))
            out[name] = taleqani_fields(models, held_out(dirs, data_root, name), table,
                                        (data_root / entry["root"]).resolve())
        elif name == "bccd":
            out[name] = boxed_cells(models, bccd_dataset(data_root / "bccd"), BCCD_TYPES)
        elif name in ("txl-bcdd", "txl-raabin"):
            out[name] = boxed_cells(models, txl_dataset(data_root / "txl" / name.split("-", 1)[1]), None)
        elif name == "cnmc":
            out[name] = cnmc_subjects(models, cnmc_dataset(data_root / "cnmc"))
        elif name == "bccd-tiled":
            out[name] = tiled_differential(models, tiled_bccd(data_root))
        else:
            raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}, bccd-tiled")
        say(f"{name}: {json.dumps(_headline(out[name]))} ({time.time() - started:.0f} s)")
    return out


def _headline(figures: dict[str, Any]) -> dict[str, Any]:
    keys = ("cells", "accuracy", "blast_fraction", "atypical_fraction", "field_accuracy", "sensitivity",
            "sensitivity_blast_or_atypical", "specificity", "blast_percent")
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items() if k in keys}


def markdown(figures: dict[str, Any]) -> str:
    """The per-source table of a :func:`measure` result."""
    rows = ["| source | cells | what is measured | figure | blast calls | atypical |", "|---|---|---|---|---|---|"]

    def pct(v: float | None) -> str:
        return "" if v is None else f"{v:.1%}"

    for name, f in figures.items():
        if not isinstance(f, dict):
            continue
        if name == "taleqani":
            c = f["cells"]
            rows.append(f"| Taleqani held-out fields | {f['fields']} fields, {c['cells']} cells | field call (B-ALL when >= half "
                        f"its white cells are blast); cell accuracy vs the cleaned labels | {f['field_accuracy']:.3f}; "
                        f"cells {c.get('accuracy', float('nan')):.3f} | {pct(c['blast_fraction'])} | {pct(c['atypical_fraction'])} |")
        elif name == "cnmc":
            rows.append(f"| C-NMC ({len(f['subjects'])} subjects) | {f['cells']} | blast sensitivity / specificity "
                        f"(blast or atypical: sensitivity {pct(f['sensitivity_blast_or_atypical'])}) | "
                        f"{pct(f['sensitivity'])} / {pct(f['specificity'])} | {pct(f['blast_fraction'])} | {pct(f['atypical_fraction'])} |")
        elif name == "bccd-tiled":
            blast = "" if f["blast_percent"] is None else f"{f['blast_percent']:.1f} %"
            rows.append(f"| 100 BCCD fields tiled | {f['white_cells']} | blast % of the viewer's differential | "
                        f"{blast} | {f['blast_count']} | {f['atypical_review']} in review |")
        else:
            what = "accuracy" if "accuracy" in f else "blast false alarms (normal donors)"
            figure = f"{f['accuracy']:.3f}" if "accuracy" in f else pct(f["blast_fraction"])
            if name == "bccd":
                what = "accuracy over 4 types; blast calls are false alarms"
            rows.append(f"| {name} | {f['cells']} | {what} | {figure} | {pct(f['blast_fraction'])} | {pct(f['atypical_fraction'])} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sources", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", default="models",
                        help="a model folder (models/wbc-type), or a models folder: its models together, as the app runs them")
    parser.add_argument("--data-root", default=os.environ.get("LEUKVIEW_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=list(SETS), help=f"any of {', '.join(SETS)}, bccd-tiled")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--tiled", metavar="PNG", help="only write the first 100 single-type BCCD fields tiled 10 x 10 "
                        "into one image (for `leukview analyze`)")
    args = parser.parse_args(argv)
    if args.tiled:
        import cv2

        image = tiled_bccd(Path(args.data_root))
        Path(args.tiled).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(args.tiled, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        print(f"{args.tiled}: {image.shape[1]} x {image.shape[0]}")
        return 0
    figures = measure(args.model_dir, args.data_root, args.sets)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    print(markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

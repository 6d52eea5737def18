"""Cutting and caching crops: :func:`extract_crops` and the :class:`CropSet` it returns.

Segmentations are cached as JSON per dataset (keyed by the listing of its
sources and the fingerprint of the segmentation code), the uint8 crops as
``.npz`` (keyed also by the crop rule, the size and the crop code), so an
epoch never re-segments.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leukview.core.cells import Cell
from leukview.core.preprocess import CropRule, crop_cell

from ._cells import (
    Segmenter,
    app_segmenter,
    box_cell,
    read_rgb,
    segmenter_fingerprint,
    select_cells,
)
from ._source import DataError, Source, write_json

log = logging.getLogger("training.data")

CACHE_VERSION = 3  # bump when what a cached crop set holds changes


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
                write_json(cache_path, found)
        if cache_path:
            write_json(cache_path, found)
    return found


def _progress(items: Sequence[Any], desc: str, enabled: bool):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, mininterval=5.0, leave=False)


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
    # the crops change when the app's crop function or the cell selection changes
    from leukview.core import preprocess

    text = inspect.getsource(preprocess.crop_cell) + inspect.getsource(select_cells)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


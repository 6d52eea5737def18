"""Cell finders: masks on black, boxes, the cell nearest a point, per-source selection."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from training import data as tdata
from training.data._cells import _source_text


def test_read_rgb_is_rgb(tmp_path: Path, write_image) -> None:
    image = np.zeros((8, 10, 3), np.uint8)
    image[..., 0] = 200  # red
    path = write_image(tmp_path / "red.png", image)
    out = tdata.read_rgb(path)
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    assert np.array_equal(out, image)


def test_cell_from_mask_takes_the_largest_region() -> None:
    mask = np.zeros((60, 80), bool)
    mask[5:10, 5:10] = True  # 25 px
    mask[20:40, 30:60] = True  # 600 px
    cell = tdata.cell_from_mask(mask, cell_id=7)
    assert cell is not None and cell.id == 7 and cell.kind == "wbc"
    assert cell.bbox == (30, 20, 60, 40)
    assert cell.measurements["area"] == 600
    assert cell.centroid == pytest.approx((44.5, 29.5))
    assert cell.contour.shape[1] == 2 and cv2.contourArea(cell.contour) == pytest.approx(19 * 29)
    assert tdata.cell_from_mask(np.zeros((5, 5), bool)) is None


def test_cell_on_black_ignores_dark_noise() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 13, (90, 90, 3)).astype(np.uint8)  # JPEG-like noise near black
    cv2.circle(image, (40, 50), 20, (200, 120, 180), -1)
    disc = np.zeros((90, 90), np.uint8)
    cv2.circle(disc, (40, 50), 20, 1, -1)
    cell = tdata.cell_on_black(image)
    assert cell is not None
    assert abs(cell.measurements["area"] - disc.sum()) < 0.03 * disc.sum()
    assert cell.centroid == pytest.approx((40, 50), abs=0.5)
    assert tdata.cell_on_black(np.zeros((20, 20, 3), np.uint8)) is None


def test_discs_of_the_cnmc_tree_are_found(cnmc_tree: tuple[Path, dict[str, str]]) -> None:
    root, _ = cnmc_tree
    for s in tdata.cnmc_dataset(root)[:4]:
        cell = tdata.cell_on_black(tdata.read_rgb(s.path))
        assert cell is not None and 600 < cell.measurements["area"] < 2100  # radius 15-24


def test_nearest_to_and_match_box() -> None:
    a = tdata.box_cell((0, 0, 10, 10), cell_id=1)  # centroid (5, 5)
    b = tdata.box_cell((20, 0, 30, 10), cell_id=2)  # centroid (25, 5)
    assert a.centroid == (5.0, 5.0) and a.bbox == (0, 0, 10, 10) and len(a.contour) == 0
    assert tdata.nearest_to([a, b], (16, 0)) is b
    assert tdata.nearest_to([], (0, 0)) is None
    assert tdata.match_box([a, b], (0, 0, 40, 10)) is b  # both inside; b nearer the box centre (20, 5)
    assert tdata.match_box([a, b], (0, 0, 5, 10)) is None  # half-open: x = 5 is outside
    assert tdata.match_box([a, b], (4, 4, 6, 6)) is a


def _entry(cells: list[tuple[str, tuple[int, int, int, int]]], shape: tuple[int, int]) -> dict:
    dicts = []
    for i, (kind, box) in enumerate(cells):
        cell = tdata.box_cell(box, cell_id=i + 1)
        cell.kind = kind
        dicts.append(cell.to_dict())
    return {"shape": list(shape), "cells": dicts}


def test_select_cells_per_finder(tmp_path: Path) -> None:
    entry = _entry([("wbc", (0, 0, 20, 20)), ("wbc", (40, 30, 60, 50)), ("platelet", (45, 35, 55, 45))], (80, 100))
    image = tmp_path / "f.png"
    centre = tdata.select_cells(tdata.Source(image, "a", "g", "centre"), entry)
    assert [(c.centroid, label, how) for c, label, how in centre] == [((50.0, 40.0), "a", "segmented")]
    every = tdata.select_cells(tdata.Source(image, "a", "g", "all"), entry)
    assert [c.id for c, _, _ in every] == [1, 2]  # white cells only
    boxes = tdata.Source(image, "a", "g", "box", [(0, 0, 30, 30), (70, 70, 90, 80), (35, 25, 65, 55)], ["x", "y"])
    picks = tdata.select_cells(boxes, entry)
    # the second box holds no cell; the third box has no label of its own
    assert [(c.id, label) for c, label, _ in picks] == [(1, "x"), (2, "a")]
    assert tdata.select_cells(tdata.Source(image, "a", "g", "centre"), None) == []


def test_select_cells_mask_reads_the_image(tmp_path: Path, write_image) -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    image[10:30, 15:40] = 150
    path = write_image(tmp_path / "m.png", image)
    [(cell, label, how)] = tdata.select_cells(tdata.Source(path, "blast", "1", "mask"), None)
    assert (label, how, cell.bbox) == ("blast", "mask", (15, 10, 40, 30))
    assert tdata.select_cells(tdata.Source(path, "blast", "1", "mask"), None, np.zeros_like(image)) == []


def test_fingerprint_covers_every_module_of_a_package(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "fakeseg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from ._a import A\n")
    (package / "_a.py").write_text("A = 'first module'\n")
    (package / "sub" / "_b.py").write_text("B = 'nested module'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fakeseg")
    try:
        text = _source_text(module)
    finally:
        sys.modules.pop("fakeseg", None)
        sys.modules.pop("fakeseg._a", None)
    assert "first module" in text and "nested module" in text and "from ._a import A" in text
    single = importlib.import_module("training.data._split")
    assert _source_text(single) == Path(single.__file__).read_text(encoding="utf-8")
    fingerprint = tdata.segmenter_fingerprint()
    assert len(fingerprint) == 16 and fingerprint == tdata.segmenter_fingerprint()


@pytest.mark.real_data
def test_cnmc_cells_on_black_crop_like_the_app(data_dir: Path) -> None:
    from leukview.core.preprocess import CropRule, crop_cell

    sources = tdata.cnmc_dataset(data_dir / "cnmc")
    image = tdata.read_rgb(sources[0].path)
    cell = tdata.cell_on_black(image)
    assert cell is not None
    inside = image.max(axis=2) > 12
    assert abs(cell.measurements["area"] - inside.sum()) < 0.05 * inside.sum()
    crop = crop_cell(image, cell, CropRule(background="black"), 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8

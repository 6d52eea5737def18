"""extract_crops: the app's crop of the cells each finder picks, cached on disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from leukview.core.preprocess import CropRule, crop_cell
from training import data as tdata
from training.data import _cache

SAMPLES = Path(__file__).resolve().parents[3] / "resources" / "samples"


def test_extract_crops_cuts_the_app_crop_and_caches(tmp_path: Path, monkeypatch) -> None:
    from leukview.core.segment import segment

    images = sorted(SAMPLES.glob("*.jpg"))[:2]
    sources = [tdata.Source(p, "wbc", p.stem, "centre") for p in images]
    rule = CropRule(scale=1.5)
    crops = tdata.extract_crops(sources, rule, 48, cache_dir=tmp_path, name="t", progress=False)
    assert crops.crops.shape == (2, 48, 48, 3) and crops.crops.dtype == np.uint8
    assert crops.how.tolist() == ["segmented", "segmented"]
    assert crops.groups.tolist() == [p.stem for p in images]
    assert crops.report["images"] == 2 and crops.report["cells"] == 2
    assert crops.report["segmenter"] == tdata.segmenter_fingerprint()
    # the same pixels as the app's crop_cell of the white cell nearest the centre
    for i, path in enumerate(images):
        image = tdata.read_rgb(path)
        cells = [c for c in segment(image).cells if c.kind == "wbc"]
        cell = tdata.nearest_to(cells, ((image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2))
        assert np.array_equal(crops.crops[i], crop_cell(image, cell, rule, 48))
        assert tuple(crops.boxes[i]) == cell.bbox
    assert len(list((tmp_path / "cells").glob("t-*.json"))) == 1
    # cached: a second call reads the file and neither segments nor crops
    monkeypatch.setattr(_cache, "crop_cell", None)
    monkeypatch.setattr(_cache, "segment_sources", None)
    again = tdata.extract_crops(sources, rule, 48, cache_dir=tmp_path, name="t", progress=False)
    assert np.array_equal(again.crops, crops.crops) and again.how.tolist() == crops.how.tolist()
    assert Path(again.report["cache_file"]).parent == tmp_path / "crops"


def test_mask_crops_need_no_segmentation(cnmc_tree: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, expected = cnmc_tree
    sources = tdata.cnmc_dataset(root)
    rule = CropRule(background="black")
    crops = tdata.extract_crops(sources, rule, 32, cache_dir=tmp_path / "cache", name="m", progress=False)
    assert len(crops) == len(expected)
    assert crops.report["by_how"] == {"mask": len(expected)} and crops.report["segmenter"] == "none"
    assert not (tmp_path / "cache" / "cells").exists()
    for i in (0, len(crops) - 1):
        image = tdata.read_rgb(sources[i].path)
        assert np.array_equal(crops.crops[i], crop_cell(image, tdata.cell_on_black(image), rule, 32))
    assert crops.sources.tolist() == [str(s.path) for s in sources]
    # a changed rule or size is another cache entry
    tdata.extract_crops(sources, rule, 24, cache_dir=tmp_path / "cache", name="m", progress=False)
    assert len(list((tmp_path / "cache" / "crops").glob("m-*.npz"))) == 2
    with pytest.raises(tdata.DataError, match="no images"):
        tdata.extract_crops([], rule, 32, cache_dir=None)


def _field() -> tuple[np.ndarray, list]:
    """A field with two drawn cells and a segmenter that finds them (and a platelet)."""
    image = np.full((120, 160, 3), 230, np.uint8)
    masks = []
    for centre, radius in (((40, 60), 18), ((115, 50), 14)):
        cv2.circle(image, centre, radius, (120, 60, 160), -1)
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.circle(mask, centre, radius, 1, -1)
        masks.append(mask > 0)
    cells = [tdata.cell_from_mask(m, i + 1) for i, m in enumerate(masks)]
    platelet = tdata.box_cell((70, 100, 74, 104), cell_id=3)
    platelet.kind = "platelet"
    return image, [*cells, platelet]


def test_boxes_all_and_fallback_with_a_custom_segmenter(tmp_path: Path, write_image) -> None:
    image, cells = _field()
    path = write_image(tmp_path / "field.png", image)
    blank = write_image(tmp_path / "blank.png", np.full((100, 80, 3), 230, np.uint8))
    found = {image.shape[:2]: cells, (100, 80): []}  # what the segmenter finds, by field size
    sources = [
        tdata.Source(path, "a", "f", "box", [(20, 40, 60, 80), (0, 0, 10, 10)], ["n", "m"]),
        tdata.Source(path, "b", "f", "all"),
        tdata.Source(blank, "c", "blank", "centre"),
    ]
    rule = CropRule(scale=1.2)
    crops = tdata.extract_crops(sources, rule, 32, cache_dir=tmp_path, segmenter=lambda im: found[im.shape[:2]],
                                progress=False)
    assert crops.labels.tolist() == ["n", "b", "b", "c"]
    assert crops.how.tolist() == ["segmented", "segmented", "segmented", "fallback"]
    report = crops.report
    assert (report["boxes"], report["boxes_missed"], report["segmenter"]) == (2, 1, "custom")
    assert report["images_without_cell"] == {"c": 1}
    assert report["sources_without_cell"] == [[str(blank), "c", "blank"]]
    # the fallback is a centred box of the mean segmented diameter
    mean = np.mean([cells[0].diameter, cells[0].diameter, cells[1].diameter])
    assert report["mean_wbc_diameter_px"] == pytest.approx(mean)
    x0, y0, x1, y1 = crops.boxes[3]
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((39.5, 49.5), abs=0.5)
    assert x1 - x0 == pytest.approx(mean, abs=1)
    assert not (tmp_path / "crops").exists()  # a custom segmenter is not cached
    dropped = tdata.extract_crops(sources[2:], rule, 32, cache_dir=None, segmenter=lambda im: [],
                                  fallback=False, progress=False)
    assert len(dropped) == 0 and dropped.crops.shape == (0, 32, 32, 3)


def test_cropset_subset_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    crops = tdata.CropSet(
        rng.integers(0, 255, (3, 8, 8, 3)).astype(np.uint8), np.array(["a", "b", "a"]), np.array(["1", "2", "3"]),
        np.array(["x", "y", "z"]), np.arange(12, dtype=np.int32).reshape(3, 4), np.array(["mask"] * 3),
        {"cells": 3},
    )
    part = crops.subset(np.array([2, 0]))
    assert len(part) == 2 and part.labels.tolist() == ["a", "a"] and part.groups.tolist() == ["3", "1"]
    assert np.array_equal(part.crops[0], crops.crops[2]) and part.report == crops.report
    crops.save(tmp_path / "c" / "set.npz")
    back = tdata.CropSet.load(tmp_path / "c" / "set.npz")
    assert np.array_equal(back.crops, crops.crops) and np.array_equal(back.boxes, crops.boxes)
    assert back.sources.tolist() == ["x", "y", "z"] and back.report == {"cells": 3}


"""Detection floors on the large annotated sets (../shared/data), and the matching they use.

The floors are a little below what ``bench/eval_segmentation.py --limit 30``
measures on the same subsets, so a regression fails without the test being
flaky; the full figures are in docs/segmentation.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from leukview.core.segment import segment

ROOT = Path(__file__).resolve().parents[3]


def _load_eval():
    path = ROOT / "bench" / "eval_segmentation.py"
    spec = importlib.util.spec_from_file_location("eval_segmentation", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_segmentation"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


EVAL = _load_eval()

# (recall floor, precision floor) on an even spread of 30 images per source.
DETECTION_FLOORS = {"bccd": (0.93, 0.88), "txl/bcdd": (0.84, 0.90), "txl/raabin": (0.93, 0.88)}
# (nucleus Dice floor, cell Dice floor) on 30 images per Zheng dataset.
DICE_FLOORS = {"dataset1": (0.92, 0.85), "dataset2": (0.90, 0.75)}
# On the same 30 images per source: red-cell recall floor and the range of the median
# per-image count ratio (found / annotated; BCCD leaves many red cells unboxed, so
# its ratio is above 1), and the platelet recall floor (None: no platelet boxes).
RBC_FLOORS = {
    "bccd": (0.82, (1.3, 2.4), 0.5),
    "txl/bcdd": (0.75, (0.8, 1.15), 0.3),
    "txl/raabin": (0.78, (0.8, 1.15), None),
}


@pytest.mark.real_data
@pytest.mark.parametrize("source", sorted(DETECTION_FLOORS))
def test_white_cell_detection_floor(data_dir: Path, source: str) -> None:
    items = EVAL.subset(EVAL.detection_sources(data_dir)[source], 30)
    assert len(items) == 30
    result = EVAL.evaluate_detection(source, items)
    recall_floor, precision_floor = DETECTION_FLOORS[source]
    assert result.recall >= recall_floor, (source, result.recall, result.failures)
    assert result.precision >= precision_floor, (source, result.precision, result.failures)


@pytest.mark.real_data
@pytest.mark.parametrize("dataset", sorted(DICE_FLOORS))
def test_zheng_dice_floor(data_dir: Path, dataset: str) -> None:
    items = EVAL.subset(EVAL.zheng_items(data_dir, dataset), 30)
    result = EVAL.evaluate_dice(items)
    nucleus_floor, cell_floor = DICE_FLOORS[dataset]
    assert np.mean(result.nucleus) >= nucleus_floor, result.worst[:3]
    assert np.mean(result.cell) >= cell_floor, result.worst[:3]


@pytest.mark.real_data
@pytest.mark.parametrize("source", sorted(RBC_FLOORS))
def test_red_cell_and_platelet_floors(data_dir: Path, source: str) -> None:
    items = EVAL.subset(EVAL.detection_sources(data_dir)[source], 30)
    kinds = EVAL.evaluate_detection(source, items).kinds
    recall_floor, (ratio_lo, ratio_hi), platelet_floor = RBC_FLOORS[source]
    rbc = kinds["rbc"]
    assert rbc.recall >= recall_floor, (source, rbc.recall, rbc.failures[:5])
    assert ratio_lo <= rbc.ratio <= ratio_hi, (source, rbc.ratio)
    # Giant red-cell objects (a clump or the glass taken as one cell) are the
    # failure a pathologist sees first.
    assert rbc.giant == 0, (source, rbc.giant)
    if platelet_floor is not None:
        assert kinds["platelet"].recall >= platelet_floor, (source, kinds["platelet"].failures[:5])


@pytest.mark.real_data
def test_no_red_cell_covers_several_cells_in_more_bccd_fields(data_dir: Path) -> None:
    """Red cells are split: none larger than about three red-cell areas (BCCD fields)."""
    images = sorted((data_dir / "bccd" / "JPEGImages").glob("*.jpg"))
    for name in ("BloodImage_00003", "BloodImage_00020", "BloodImage_00028", "BloodImage_00048"):
        path = data_dir / "bccd" / "JPEGImages" / f"{name}.jpg"
        assert path in images
        seg = segment(EVAL.read_rgb(path))
        red = seg.cells_of_kind("rbc")
        assert len(red) >= 8, (name, len(red))
        limit = 3.0 * np.pi * seg.rbc_diameter**2 / 4.0
        largest = max(c.measurements["area"] for c in red)
        assert largest <= limit, (name, largest / (np.pi * seg.rbc_diameter**2 / 4.0))


def test_matching_is_one_to_one() -> None:
    truth = [(0, 0, 10, 10)]
    # Two predictions on one truth box: one match, the other is a false positive.
    pairs = EVAL.match([(5, 5), (6, 6)], [(0, 0, 10, 10), (1, 1, 11, 11)], truth)
    assert len(pairs) == 1
    # A predicted box that does not contain the truth centre does not match.
    assert EVAL.match([(9, 9)], [(8, 8, 20, 20)], truth) == []

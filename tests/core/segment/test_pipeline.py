"""segment() end to end: bundled fields and crops of them, cells on black, blank and tiny images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leukview.core.segment import SegmentationParams, estimate_rbc_diameter, segment


def test_bundled_field_kinds_and_records(sample, consistent) -> None:
    seg = segment(sample.rgb, pixel_size_um=0.1)
    consistent(seg, sample.rgb.shape[:2])
    kinds = [c.kind for c in seg.cells]
    assert kinds.count("wbc") == 1  # BCCD boxes one white cell in each of these fields
    assert kinds.count("rbc") >= 5
    wbc = seg.cells[0]
    assert wbc.kind == "wbc"
    x0, y0, x1, y1 = sample.wbc_box
    assert x0 <= wbc.centroid[0] <= x1 and y0 <= wbc.centroid[1] <= y1
    if sample.wbc_type == "neutrophil":
        assert wbc.measurements["lobe_count"] >= 2  # segmented neutrophil
    assert wbc.measurements["area_um2"] == pytest.approx(wbc.measurements["area"] * 0.01)
    # White cells are bigger than red cells, red cells about d across.
    red = seg.cells_of_kind("rbc")
    assert wbc.measurements["area"] > np.median([c.measurements["area"] for c in red])
    rbc_diams = [c.measurements["equivalent_diameter"] for c in red]
    assert 0.5 * seg.rbc_diameter < np.median(rbc_diams) < 1.5 * seg.rbc_diameter


def test_central_cell_of_a_crop_is_found(sample) -> None:
    """A crop around the white cell (as PBC's single-cell images): found near its centre."""
    x0, y0, x1, y1 = sample.wbc_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = 0.65 * max(x1 - x0, y1 - y0)
    h, w = sample.rgb.shape[:2]
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    crop = sample.rgb[top: int(min(h, cy + half)), left: int(min(w, cx + half))]
    wbcs = segment(crop).cells_of_kind("wbc")
    assert wbcs, sample.name
    centre = (cx - left, cy - top)
    nearest = min(np.hypot(c.centroid[0] - centre[0], c.centroid[1] - centre[1]) for c in wbcs)
    assert nearest < 0.2 * crop.shape[1], sample.name


def test_options_switch_kinds_off(samples, consistent) -> None:
    rgb = samples["BloodImage_00214"].rgb
    seg = segment(rgb, SegmentationParams(detect_rbc=False, detect_platelets=False))
    consistent(seg, rgb.shape[:2])
    assert {c.kind for c in seg.cells} == {"wbc"}
    full = segment(rgb)
    assert {c.kind for c in full.cells} == {"wbc", "rbc", "platelet"}
    assert seg.cells[0].bbox == full.cells[0].bbox  # the white cell does not depend on them


def test_cell_on_black_is_one_white_cell(smear, consistent) -> None:
    """A white cell cut out on black (C-NMC): one cell covering the lit part, nothing else."""
    shape = (300, 320)
    for seed, (x, y, size) in enumerate([(150, 160, 200.0), (170, 140, 150.0)]):
        rgb = smear.field(shape, white=[(x, y, size, [(10, -5, 0.6 * size)])], seed=seed)
        rgb[~smear.disc_mask(shape, x, y, size)] = 0
        seg = segment(rgb)
        consistent(seg, shape)
        (wbc,) = seg.cells
        assert wbc.kind == "wbc"
        lit = rgb.max(axis=2) > 40
        cell = seg.labels == wbc.id
        assert (cell & lit).sum() / (cell | lit).sum() > 0.8


def test_blank_image_has_no_cells() -> None:
    for value in (0, 128, 235, 255):
        seg = segment(np.full((240, 320, 3), value, np.uint8))
        assert seg.cells == []
        assert not seg.labels.any() and not seg.nucleus_mask.any()
    rng = np.random.default_rng(0)
    noise = np.clip(230 + rng.normal(0, 2, (240, 320, 3)), 0, 255).astype(np.uint8)
    assert [c for c in segment(noise).cells if c.kind == "wbc"] == []


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 3), (7, 7, 3), (12, 9, 3), (1, 400, 3)])
def test_tiny_images_do_not_crash(consistent, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    seg = segment(img)
    consistent(seg, shape[:2])
    assert estimate_rbc_diameter(img) > 0


@pytest.mark.real_data
def test_cnmc_black_background_cell_is_one_wbc(data_dir: Path, read_rgb, consistent) -> None:
    paths = sorted((data_dir / "cnmc" / "fold_0").glob("*/*.png"))[:6]
    assert paths
    for path in paths:
        rgb = read_rgb(path)
        seg = segment(rgb)
        consistent(seg, rgb.shape[:2])
        wbcs = [c for c in seg.cells if c.kind == "wbc"]
        assert len(wbcs) == 1, path.name
        # The cell covers about the non-black part of the image.
        lit = rgb.max(axis=2) > 40
        cell = seg.labels == wbcs[0].id
        overlap = (cell & lit).sum() / (cell | lit).sum()
        assert overlap > 0.8, (path.name, overlap)


@pytest.mark.real_data
def test_pbc_central_cell_is_found(data_dir: Path, read_rgb) -> None:
    for cls in ("neutrophil", "lymphocyte", "erythroblast", "eosinophil"):
        for path in sorted((data_dir / "pbc" / cls).glob("*.jpg"))[:3]:
            rgb = read_rgb(path)
            h, w = rgb.shape[:2]
            seg = segment(rgb)
            wbcs = [c for c in seg.cells if c.kind == "wbc"]
            assert wbcs, path.name
            off = [np.hypot(c.centroid[0] - w / 2, c.centroid[1] - h / 2) for c in wbcs]
            assert min(off) < 0.2 * w, path.name

"""Similar cells: atlases checked against the model, regions of large images, cached search, cells.json field."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from cell_factory import make_cell
from onnx_factory import make_tiny_classifier

from leukview.core.analysis import Analysis, ModelRun
from leukview.core.atlas import Atlas, cell_crops, default_atlas_dir, embed_cells
from leukview.core.cells import Cell
from leukview.core.models import Classifier
from leukview.core.preprocess import crop_cell
from leukview.core.similar import (
    LAB_ATLAS_ENV,
    NO_ATLAS_FOR_VERSION,
    SimilarSearch,
    add_similar,
    cell_region,
    lab_atlas_dir,
    open_model_atlas,
    similar_search_for,
)

LABELS = ("lymphocyte", "monocyte", "neutrophil")


def field_image(seed: int = 0, size: int = 240) -> np.ndarray:
    """Smooth colour blobs on a pale background: every cell crop differs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.full((size, size, 3), 225.0, np.float32)
    for _ in range(40):
        cx, cy = rng.uniform(0, size, 2)
        radius = rng.uniform(6, 20)
        colour = rng.uniform(40, 220, 3)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))[..., None]
        image = image * (1 - weight) + colour * weight
    return np.clip(image, 0, 255).astype(np.uint8)


def grid_cells(size: int = 240, step: int = 40) -> list[Cell]:
    cells = []
    for n, (y, x) in enumerate((y, x) for y in range(20, size, step) for x in range(20, size, step)):
        cells.append(make_cell(n + 1, x=float(x), y=float(y), half=10.0))
    return cells


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("models") / "wbc-type", LABELS, seed=2)


@pytest.fixture(scope="module")
def tiny(model_folder: Path) -> Classifier:
    return Classifier.load(model_folder)


@pytest.fixture(scope="module")
def shipped(model_folder: Path, tiny: Classifier) -> tuple[Atlas, np.ndarray, list[Cell]]:
    """The model's default atlas: the cells of one field, labelled in turn."""
    image = field_image(0)
    cells = grid_cells()
    atlas = Atlas.create(default_atlas_dir(model_folder), tiny, name="test atlas")
    labels = [LABELS[i % 3] for i in range(len(cells))]
    atlas.add_cells(tiny, image, cells, labels, source="test-set", licence="CC0", file="field-0.png")
    return atlas, image, cells


def test_cell_region_gives_the_same_crop_as_the_whole_image(tiny: Classifier) -> None:
    image = field_image(1, 200)
    rule = tiny.spec.crop
    reads: list[tuple[int, int, int, int]] = []

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        reads.append((x, y, w, h))
        return image[y : y + h, x : x + w]

    for cell in (make_cell(1, x=100, y=100), make_cell(2, x=3, y=5), make_cell(3, x=197, y=120, half=12)):
        region, shifted = cell_region(read, (200, 200), cell, rule)
        np.testing.assert_array_equal(crop_cell(region, shifted, rule, 32), crop_cell(image, cell, rule, 32))
        assert region.shape[0] < 200 and region.shape[1] < 200  # only the part the crop needs
        x, y = reads[-1][:2]
        assert shifted.id == cell.id and shifted.centroid == (cell.centroid[0] - x, cell.centroid[1] - y)
    assert reads[0][:2] != (0, 0)  # the interior cell's region was moved
    assert all(x >= 0 and y >= 0 and x + w <= 200 and y + h <= 200 for x, y, w, h in reads)


def test_open_model_atlas_checks_the_model_version(
    tmp_path: Path, shipped: tuple[Atlas, np.ndarray, list[Cell]], tiny: Classifier
) -> None:
    atlas, why = open_model_atlas(tiny)
    assert atlas is not None and why == "" and len(atlas) == len(shipped[0])
    # the model was replaced by a new version, its old atlas left beside it: refused in words, never used
    other_dir = make_tiny_classifier(tmp_path / "wbc-type", LABELS, seed=9)
    other = Classifier.load(other_dir)
    found, why = open_model_atlas(other)
    assert found is None and "no reference atlas" in why  # none installed yet
    shutil.copytree(shipped[0].folder, default_atlas_dir(other_dir))
    found, why = open_model_atlas(other)
    assert found is None and why.startswith(NO_ATLAS_FOR_VERSION) and "0.0.1" in why
    search, notes = SimilarSearch.for_classifier(other, lab_atlas=False)
    assert search is None and any(n.startswith(NO_ATLAS_FOR_VERSION) for n in notes)
    # a damaged one
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "atlas.json").write_text("{not json")
    found, why = open_model_atlas(other, damaged)
    assert found is None and "damaged" in why


def test_find_is_cached_and_fast(shipped: tuple[Atlas, np.ndarray, list[Cell]], tiny: Classifier) -> None:
    _, image, cells = shipped
    search, notes = SimilarSearch.for_classifier(tiny, lab_atlas=False)
    assert search is not None and notes == []
    read = lambda x, y, w, h: image[y : y + h, x : x + w]  # noqa: E731
    cell = cells[4]
    start = time.perf_counter()
    first = search.find(read, (240, 240), cell, "monocyte", k=5)
    elapsed = time.perf_counter() - start
    print(f"similar cells of one cell: {elapsed * 1000:.1f} ms (embed + search)")
    assert elapsed < 0.5
    assert not first.cached and search.cached(cell)
    again = search.find(read, (240, 240), cell, "monocyte", k=5)
    assert again.cached and [c.atlas_id for c in again.cells] == [c.atlas_id for c in first.cells]
    # the cell itself is in the atlas: it comes first, at (float16) distance ~0
    assert first.cells[0].label == LABELS[4 % 3] and first.cells[0].distance < 1e-2
    distances = [c.distance for c in first.cells]
    assert distances == sorted(distances) and len(distances) == 5
    assert first.agree == sum(c.label == "monocyte" for c in first.cells)
    assert first.votes and first.cells[0].thumbnail().shape == (80, 80, 3)
    assert first.cells[0].licence == "CC0"


def test_lab_atlas_is_searched_with_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: tuple[Atlas, np.ndarray, list[Cell]], tiny: Classifier
) -> None:
    monkeypatch.setenv(LAB_ATLAS_ENV, str(tmp_path / "labs"))
    assert lab_atlas_dir("wbc-type") == tmp_path / "labs" / "wbc-type"
    image = field_image(5)
    cells = grid_cells()[:4]
    lab = Atlas.create(lab_atlas_dir("wbc-type"), tiny, name="lab")
    lab.add_cells(tiny, image, cells, ["neutrophil"] * 4, source="lab review", licence="internal")
    search, notes = SimilarSearch.for_classifier(tiny)
    assert search is not None and len(search.atlases) == 2 and len(search) == len(shipped[0]) + 4
    hits = search.search(embed_cells(tiny, image, cells[:1]), k=3)[0]
    assert hits[0].source == "lab review" and hits[0].atlas is search.atlases[1]
    assert "lab (4 cells)" in search.describe()


def test_add_similar_writes_k_nearest_per_white_cell(
    shipped: tuple[Atlas, np.ndarray, list[Cell]], tiny: Classifier
) -> None:
    atlas, image, atlas_cells = shipped
    run = ModelRun("wbc-type", "0.0.1", "CPUExecutionProvider", list(LABELS))
    cells = [make_cell(1, x=60, y=60), make_cell(2, "rbc", x=140, y=100), make_cell(3, x=180, y=180)]
    analysis = Analysis(240, 240, cells, [run])
    search, _ = similar_search_for([tiny], lab_atlas=False)
    assert search is not None
    document = json.loads(json.dumps(analysis.to_dict()))
    assert add_similar(document, analysis, image, search, 4) == 2
    by_id = {c["id"]: c for c in document["cells"]}
    assert "similar" not in by_id[2]  # red cells get none
    queries = embed_cells(tiny, image, [cells[0], cells[2]])
    for cell_id, query in zip((1, 3), queries, strict=True):
        similar = by_id[cell_id]["similar"]
        assert len(similar) == 4 and set(similar[0]) == {"atlas_id", "label", "source", "distance"}
        distances = [s["distance"] for s in similar]
        assert distances == sorted(distances)
        expected = atlas.search(query, 4)[0]
        assert [s["atlas_id"] for s in similar] == [n.atlas_id for n in expected]
        assert all(s["label"] == atlas.entry(s["atlas_id"]).label for s in similar)
    assert document["similar_atlas"]["model"] == "wbc-type" and document["similar_atlas"]["k"] == 4
    assert len(cell_crops(tiny, image, atlas_cells)) == len(atlas)


def test_similar_search_for_prefers_the_type_model(
    tmp_path: Path, shipped: tuple[Atlas, np.ndarray, list[Cell]], tiny: Classifier
) -> None:
    blast_dir = make_tiny_classifier(tmp_path / "all-blast", ["blast", "normal"], seed=4, positive_class="blast")
    blast = Classifier.load(blast_dir)
    image, cells = shipped[1], shipped[2]
    Atlas.create(default_atlas_dir(blast_dir), blast).add_cells(
        blast, image, cells[:6], ["blast", "normal"] * 3, source="t", licence="CC0"
    )
    search, _ = similar_search_for([blast, tiny], lab_atlas=False)
    assert search is not None and search.model == "wbc-type" and search.votes
    only_blast, _ = similar_search_for([blast], lab_atlas=False)
    assert only_blast is not None and not only_blast.votes  # a flag model's atlas is a gallery
    none, notes = similar_search_for([], lab_atlas=False)
    assert none is None and notes

"""Reference atlases: create, add with dedupe, validate on load, search, thumbnails, index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_tiny_classifier

from leukview.core.atlas import (
    ATLAS_FILE,
    CELLS_FILE,
    EMBEDDINGS_FILE,
    INDEX_FILE,
    OFFSETS_FILE,
    THUMBNAILS_FILE,
    Atlas,
    AtlasError,
    Neighbour,
    cell_crops,
    crop_hash,
    embed_cells,
    embed_crops,
    faiss_module,
    majority_label,
    normalize_rows,
)
from leukview.core.cells import Cell
from leukview.core.models import Classifier

SIZE = 32  # the tiny model's input
DIM = 8  # its feature channels


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    return Classifier.load(make_tiny_classifier(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    return Classifier.load(make_tiny_classifier(tmp_path_factory.mktemp("models") / "tiny", seed=1))


def smooth_crops(count: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Distinct smooth colour gradients (JPEG keeps them well)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    out = np.zeros((count, size, size, 3), np.uint8)
    for i in range(count):
        a, b, c = rng.uniform(20, 235, 3)
        gx, gy = rng.uniform(-60, 60, 2)
        base = np.array([a, b, c], np.float32)
        image = base + gx * ramp[None, :, None] + gy * ramp[:, None, None]
        out[i] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def random_atlas(folder: Path, model: Classifier, count: int, seed: int = 0, **kwargs) -> tuple[Atlas, np.ndarray]:
    rng = np.random.default_rng(seed)
    atlas = Atlas.create(folder, model, **kwargs)
    vectors = normalize_rows(rng.normal(size=(count, model.feature_shape[0])))
    labels = [("lymphocyte", "monocyte", "neutrophil")[i % 3] for i in range(count)]
    result = atlas.add(vectors, smooth_crops(count, seed), labels, source="test-set", licence="CC0",
                       files=[f"img_{i}.png" for i in range(count)], groups=[f"s{i % 4}" for i in range(count)])
    assert len(result.added) == count and not result.duplicates
    return atlas, atlas.embeddings


def brute_force(stored: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    distances = 1.0 - normalize_rows(queries) @ stored.T
    order = np.lexsort((np.broadcast_to(np.arange(stored.shape[0]), distances.shape), distances), axis=1)[:, :k]
    return order, np.take_along_axis(distances, order, axis=1)


# -- create, add, reload -------------------------------------------------------


def test_create_add_and_reload(tmp_path: Path, tiny: Classifier) -> None:
    atlas, stored = random_atlas(tmp_path / "a", tiny, 30, name="demo", description="for tests")
    assert len(atlas) == 30 and stored.shape == (30, DIM) and atlas.dim == DIM
    for name in (ATLAS_FILE, EMBEDDINGS_FILE, CELLS_FILE, THUMBNAILS_FILE, OFFSETS_FILE):
        assert (tmp_path / "a" / name).is_file()
    again = Atlas.load(tmp_path / "a", tiny)
    assert [e.to_dict() for e in again.entries] == [e.to_dict() for e in atlas.entries]
    np.testing.assert_allclose(again.embeddings, stored, atol=1e-6)
    assert np.load(tmp_path / "a" / EMBEDDINGS_FILE).dtype == np.float16
    meta = json.loads((tmp_path / "a" / ATLAS_FILE).read_text())
    assert meta["model"]["sha256"] == tiny.spec.sha256 and meta["dim"] == DIM
    assert meta["counts"]["by_label"] == {"lymphocyte": 10, "monocyte": 10, "neutrophil": 10}
    assert meta["sources"]["test-set"]["licence"] == "CC0"
    entry = again.entries[3]
    assert entry.file == "img_3.png" and entry.group == "s3" and entry.licence == "CC0"
    assert entry.atlas_id == entry.hash[:12] and again.row(entry.atlas_id) == 3
    assert again.ids_by_group()["s3"] == [e.atlas_id for e in again.entries if e.group == "s3"]


def test_create_refuses_to_overwrite(tmp_path: Path, tiny: Classifier) -> None:
    random_atlas(tmp_path, tiny, 3)
    with pytest.raises(AtlasError, match="already exists"):
        Atlas.create(tmp_path, tiny)
    assert len(Atlas.create(tmp_path, tiny, overwrite=True)) == 0
    assert len(Atlas.load(tmp_path)) == 0


def test_add_dedupes_by_content_hash(tmp_path: Path, tiny: Classifier) -> None:
    atlas, _ = random_atlas(tmp_path, tiny, 6)
    crops = smooth_crops(6, seed=0)  # the same six crops again
    fresh = smooth_crops(2, seed=9)
    batch = np.concatenate([crops[:2], fresh, fresh[:1]])  # two known, two new, one repeated in the call
    vectors = embed_crops(tiny, batch)
    result = atlas.add(vectors, batch, ["monocyte"] * 5, source="Lab A review", licence="internal")
    assert len(result.added) == 2
    assert result.duplicates == [
        (0, crop_hash(crops[0])[:12]), (1, crop_hash(crops[1])[:12]), (4, crop_hash(fresh[0])[:12]),
    ]
    assert len(atlas) == 8
    reloaded = Atlas.load(tmp_path, tiny)
    assert len(reloaded) == 8
    assert reloaded.info()["by_source"] == {"Lab A review": 2, "test-set": 6}
    assert reloaded.entry(result.added[0]).label == "monocyte"
    # adding only duplicates changes nothing
    again = reloaded.add(vectors[2:4], batch[2:4], ["monocyte"] * 2, source="Lab A review", licence="internal")
    assert again.added == [] and len(again.duplicates) == 2 and len(Atlas.load(tmp_path)) == 8


def test_add_validates_its_input(tmp_path: Path, tiny: Classifier) -> None:
    atlas, _ = random_atlas(tmp_path, tiny, 2)
    crops = smooth_crops(2, seed=5)
    good = embed_crops(tiny, crops)
    with pytest.raises(ValueError, match="embeddings must be"):
        atlas.add(good[:, :4], crops, ["a", "b"], source="x", licence="y")
    with pytest.raises(ValueError, match="no label"):
        atlas.add(good, crops, ["a", " "], source="x", licence="y")
    with pytest.raises(ValueError, match="source"):
        atlas.add(good, crops, ["a", "b"], source="", licence="y")
    with pytest.raises(ValueError, match="finite and non-zero"):
        atlas.add(np.zeros_like(good), crops, ["a", "b"], source="x", licence="y")
    with pytest.raises(AtlasError, match="licence"):
        atlas.add(good, crops, ["a", "b"], source="test-set", licence="CC BY 4.0")
    assert len(Atlas.load(tmp_path)) == 2


def test_add_cells_embeds_like_the_classifier(tmp_path: Path, tiny: Classifier) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cells = []
    for i, (x, y) in enumerate([(40, 40), (100, 60), (70, 95)], 1):
        contour = np.array([[x - 9, y - 9], [x + 9, y - 9], [x + 9, y + 9], [x - 9, y + 9]], np.int32)
        cells.append(Cell(i, "wbc", contour, (x - 9, y - 9, x + 10, y + 10), (float(x), float(y)),
                          measurements={"area": 361.0}))
    queries = embed_cells(tiny, image, cells)
    assert queries.shape == (3, DIM)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    # the pooled features of Classifier.run, normalised
    crops = cell_crops(tiny, image, cells)
    from leukview.core.preprocess import normalize

    _, features = tiny.run(normalize(crops, tiny.spec.mean, tiny.spec.std))
    pooled = features.mean(axis=(2, 3))
    np.testing.assert_allclose(queries, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), atol=1e-5)

    atlas = Atlas.create(tmp_path, tiny)
    result = atlas.add_cells(tiny, image, cells, ["lymphocyte", "monocyte", "neutrophil"],
                             source="Lab B", licence="internal", file="case7.tif", group="case7")
    assert len(result.added) == 3
    hits = atlas.search(queries, k=1)
    assert [h[0].atlas_id for h in hits] == result.added
    assert all(h[0].distance < 2e-3 for h in hits)  # float16 storage
    assert atlas.entry(result.added[1]).file == "case7.tif"
    assert atlas.add_cells(tiny, image, cells, ["a", "b", "c"], source="Lab B", licence="internal").added == []


def test_add_cells_refuses_another_model(tmp_path: Path, tiny: Classifier, other: Classifier) -> None:
    atlas = Atlas.create(tmp_path, tiny)
    image = np.zeros((64, 64, 3), np.uint8)
    cell = Cell(1, "wbc", np.zeros((0, 2), np.int32), (20, 20, 40, 40), (30.0, 30.0))
    with pytest.raises(AtlasError, match="made with"):
        atlas.add_cells(other, image, [cell], ["a"], source="x", licence="y")


# -- validation on load ---------------------------------------------------------


def test_wrong_model_is_refused(tmp_path: Path, tiny: Classifier, other: Classifier) -> None:
    random_atlas(tmp_path, tiny, 4)
    with pytest.raises(AtlasError, match=r"made with tiny 0\.0\.1.*rebuild"):
        Atlas.load(tmp_path, other)
    Atlas.load(tmp_path, tiny.spec)  # a ModelSpec is enough to check the sha256
    assert len(Atlas.load(tmp_path)) == 4  # without a model: loads, unchecked


def _damage(folder: Path, name: str, how: str) -> None:
    path = folder / name
    if how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "delete":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(b"\x00\x01not what it should be")


@pytest.mark.parametrize(
    ("name", "how", "message"),
    [
        (ATLAS_FILE, "truncate", "not valid JSON"),
        (ATLAS_FILE, "delete", "not an atlas"),
        (EMBEDDINGS_FILE, "truncate", "embeddings.npy is damaged"),
        (EMBEDDINGS_FILE, "delete", "embeddings.npy not found"),
        (CELLS_FILE, "truncate", "cells.jsonl"),
        (CELLS_FILE, "delete", "cells.jsonl not found"),
        (OFFSETS_FILE, "garbage", "thumbnails-offsets.npy is damaged"),
        (THUMBNAILS_FILE, "truncate", "thumbnail offsets do not fit"),
        (THUMBNAILS_FILE, "delete", "thumbnails not found"),
    ],
)
def test_damaged_files_are_a_clear_error(tmp_path: Path, tiny: Classifier, name: str, how: str, message: str) -> None:
    random_atlas(tmp_path, tiny, 5)
    _damage(tmp_path, name, how)
    with pytest.raises(AtlasError, match=message) as info:
        Atlas.load(tmp_path, tiny)
    assert str(tmp_path) in str(info.value)  # names the file or folder


def test_inconsistent_files_are_refused(tmp_path: Path, tiny: Classifier) -> None:
    random_atlas(tmp_path, tiny, 5)
    meta_path = tmp_path / ATLAS_FILE
    meta = json.loads(meta_path.read_text())

    def edit(change: dict) -> None:
        meta_path.write_text(json.dumps({**meta, **change}))

    edit({"count": 6})
    with pytest.raises(AtlasError, match="shape"):
        Atlas.load(tmp_path)
    edit({"dim": 9})
    with pytest.raises(AtlasError, match="9 dimensions"):
        Atlas.load(tmp_path)
    edit({"counts": {"by_label": {"x": 5}, "by_source": {"test-set": 5}}})
    with pytest.raises(AtlasError, match="counts"):
        Atlas.load(tmp_path)
    edit({"sources": {}})
    with pytest.raises(AtlasError, match="not listed"):
        Atlas.load(tmp_path)
    edit({"schema_version": 99})
    with pytest.raises(AtlasError, match="newer"):
        Atlas.load(tmp_path)
    edit({"format": "something-else"})
    with pytest.raises(AtlasError, match="not a LeukView atlas"):
        Atlas.load(tmp_path)
    edit({})
    stored = np.load(tmp_path / EMBEDDINGS_FILE)
    np.save(tmp_path / EMBEDDINGS_FILE, stored * 2)
    with pytest.raises(AtlasError, match="unit vectors"):
        Atlas.load(tmp_path)
    np.save(tmp_path / EMBEDDINGS_FILE, stored)
    Atlas.load(tmp_path, tiny)  # restored: fine again


# -- search ----------------------------------------------------------------------


def test_exact_search_is_nearest_first(tmp_path: Path, tiny: Classifier) -> None:
    atlas, stored = random_atlas(tmp_path, tiny, 40)
    queries = np.random.default_rng(11).normal(size=(7, DIM)).astype(np.float32) * 3.0  # not unit
    hits = atlas.search(queries, k=6)
    order, distances = brute_force(stored, queries, 6)
    assert len(hits) == 7
    for row, found in enumerate(hits):
        assert [n.atlas_id for n in found] == [atlas.entries[i].atlas_id for i in order[row]]
        np.testing.assert_allclose([n.distance for n in found], distances[row], atol=1e-5)
        assert all(a.distance <= b.distance for a, b in zip(found, found[1:], strict=False))
        assert found[0].label == atlas.entries[order[row, 0]].label and found[0].source == "test-set"
    one = atlas.search(queries[0], k=2)  # a single (D,) query
    assert [n.atlas_id for n in one[0]] == [n.atlas_id for n in hits[0][:2]]


def test_search_edge_cases(tmp_path: Path, tiny: Classifier) -> None:
    atlas, stored = random_atlas(tmp_path / "a", tiny, 5)
    queries = stored[:2]
    assert [len(h) for h in atlas.search(queries, k=50)] == [5, 5]  # k > N: all of them
    assert atlas.search(queries, k=1)[0][0].distance == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="k must be"):
        atlas.search(queries, k=0)
    with pytest.raises(ValueError, match="queries must be"):
        atlas.search(queries[:, :3], k=1)
    assert atlas.search(np.zeros((0, DIM)), k=3) == []
    empty = Atlas.create(tmp_path / "empty", tiny)
    assert empty.search(queries, k=3) == [[], []]
    assert Atlas.load(tmp_path / "empty", tiny).search(queries, k=3) == [[], []]


def test_search_can_exclude_cells(tmp_path: Path, tiny: Classifier) -> None:
    atlas, stored = random_atlas(tmp_path, tiny, 12)
    own = atlas.entries[0].atlas_id
    assert atlas.search(stored[:1], k=1)[0][0].atlas_id == own
    np.testing.assert_array_equal(atlas.embedding(own), stored[0])
    like = atlas.search(atlas.embedding(own), k=2, exclude=[{own}])[0]
    assert [n.atlas_id for n in like] == [n.atlas_id for n in atlas.search(stored[:1], k=3)[0][1:]]
    without = atlas.search(stored[:1], k=3, exclude=[{own}])[0]
    assert own not in [n.atlas_id for n in without] and len(without) == 3
    group = set(atlas.ids_by_group()["s0"])
    rest = atlas.search(stored[:1], k=20, exclude=[group])[0]
    assert len(rest) == 12 - len(group) and not group & {n.atlas_id for n in rest}
    with pytest.raises(ValueError, match="exclude"):
        atlas.search(stored[:2], k=1, exclude=[{own}])


def test_majority_label_and_json() -> None:
    near = [Neighbour("a", "monocyte", "pbc", 0.1), Neighbour("b", "lymphocyte", "pbc", 0.2),
            Neighbour("c", "lymphocyte", "lab", 0.3), Neighbour("d", "monocyte", "pbc", 0.4),
            Neighbour("e", "neutrophil", "pbc", 0.5)]
    assert majority_label(near) == ("monocyte", 2)  # a tie goes to the label seen first (nearest)
    assert majority_label(near[1:]) == ("lymphocyte", 2)
    assert majority_label([]) == (None, 0)
    assert near[0].to_dict() == {"atlas_id": "a", "label": "monocyte", "source": "pbc", "distance": 0.1}
    json.dumps([n.to_dict() for n in near])


# -- thumbnails and info -----------------------------------------------------------


def test_thumbnails_are_the_crops_shrunk(tmp_path: Path, tiny: Classifier) -> None:
    atlas, _ = random_atlas(tmp_path, tiny, 4, thumbnail_size=24)
    crops = smooth_crops(4, seed=0)
    import cv2

    for i, entry in enumerate(Atlas.load(tmp_path).entries):
        thumb = atlas.thumbnail(entry.atlas_id)
        assert thumb.shape == (24, 24, 3) and thumb.dtype == np.uint8
        expected = cv2.resize(crops[i], (24, 24), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(thumb.astype(int) - expected).mean() < 4
    with pytest.raises(KeyError, match="no cell"):
        atlas.thumbnail("nope")


def test_damaged_thumbnail_is_an_atlas_error(tmp_path: Path, tiny: Classifier) -> None:
    atlas, _ = random_atlas(tmp_path, tiny, 3)
    path = tmp_path / THUMBNAILS_FILE
    data = bytearray(path.read_bytes())
    start = int(np.load(tmp_path / OFFSETS_FILE)[1])
    data[start : start + 40] = b"\x00" * 40  # the second thumbnail's JPEG header
    path.write_bytes(bytes(data))
    with pytest.raises(AtlasError, match="damaged"):
        Atlas.load(tmp_path).thumbnail(atlas.entries[1].atlas_id)
    assert atlas.thumbnail(atlas.entries[0].atlas_id).shape[2] == 3


def test_info(tmp_path: Path, tiny: Classifier) -> None:
    atlas, _ = random_atlas(tmp_path, tiny, 9, name="demo")
    info = atlas.info()
    assert info["name"] == "demo" and info["count"] == 9 and info["dim"] == DIM
    assert info["model"] == {"name": "tiny", "version": "0.0.1", "sha256": tiny.spec.sha256}
    assert info["by_label"] == {"lymphocyte": 3, "monocyte": 3, "neutrophil": 3}
    assert info["sources"]["test-set"]["licence"] == "CC0"
    assert info["index"] is None and info["thumbnail_size"] == 80
    assert info["size_bytes"] == sum(p.stat().st_size for p in tmp_path.iterdir())
    json.dumps(info)


# -- the optional index ---------------------------------------------------------------


def test_index_equals_exact_search(tmp_path: Path, tiny: Classifier) -> None:
    if faiss_module() is None:
        pytest.skip("faiss is not installed (optional: pip install 'leukview[atlas-index]')")
    rng = np.random.default_rng(5)
    count, dim = 3000, 32
    atlas = Atlas.create(tmp_path, tiny.spec, dim=dim, dtype="float32")
    vectors = normalize_rows(rng.normal(size=(count, dim)))
    crops = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    atlas.add(vectors, crops, ["x"] * count, source="random", licence="CC0")
    atlas.build_index(ef_search=256)
    assert atlas.has_index and (tmp_path / INDEX_FILE).is_file()
    queries = normalize_rows(rng.normal(size=(100, dim)))
    by_index = atlas.search(queries, k=10)
    exact = atlas.search(queries, k=10, exact=True)
    assert [[n.atlas_id for n in row] for row in by_index] == [[n.atlas_id for n in row] for row in exact]
    np.testing.assert_allclose([[n.distance for n in r] for r in by_index],
                               [[n.distance for n in r] for r in exact], atol=1e-5)
    # it survives a reload, follows additions, and honours exclusions
    loaded = Atlas.load(tmp_path, tiny.spec)
    assert loaded.has_index and loaded.info()["index"]["active"]
    more = normalize_rows(rng.normal(size=(50, dim)))
    loaded.add(more, rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8), ["y"] * 50, source="random", licence="CC0")
    assert loaded.info()["index"]["count"] == count + 50
    near_new = loaded.search(more[:5], k=1)
    assert all(row[0].label == "y" and row[0].distance < 1e-5 for row in near_new)
    banned = [{row[0].atlas_id} for row in near_new]
    ids = [[n.atlas_id for n in r] for r in loaded.search(more[:5], k=3, exclude=banned)]
    assert ids == [[n.atlas_id for n in r] for r in loaded.search(more[:5], k=3, exclude=banned, exact=True)]
    assert not any(b & set(r) for b, r in zip(banned, ids, strict=True))
    assert Atlas.load(tmp_path).has_index
    loaded.drop_index()
    assert not Atlas.load(tmp_path).has_index and not (tmp_path / INDEX_FILE).exists()


def test_stale_or_unreadable_index_falls_back_to_exact(tmp_path: Path, tiny: Classifier) -> None:
    atlas, stored = random_atlas(tmp_path, tiny, 20)
    meta = json.loads((tmp_path / ATLAS_FILE).read_text())
    meta["index"] = {"library": "faiss", "file": INDEX_FILE, "count": 20, "ef_search": 64}
    (tmp_path / ATLAS_FILE).write_text(json.dumps(meta))
    (tmp_path / INDEX_FILE).write_bytes(b"not an index")
    loaded = Atlas.load(tmp_path, tiny)
    assert not loaded.has_index
    order, _ = brute_force(stored, stored[:3], 4)
    assert [[n.atlas_id for n in r] for r in loaded.search(stored[:3], k=4)] == [
        [atlas.entries[i].atlas_id for i in row] for row in order
    ]
    # an index that cannot be kept up to date is dropped rather than left stale
    loaded.add(embed_crops(tiny, smooth_crops(1, 7)), smooth_crops(1, 7), ["a"], source="test-set", licence="CC0")
    assert Atlas.load(tmp_path).meta["index"] is None and not (tmp_path / INDEX_FILE).exists()


def test_without_faiss_the_search_is_exact(tmp_path: Path, tiny: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    import leukview.core.atlas._atlas as atlas_module

    atlas, stored = random_atlas(tmp_path, tiny, 15)
    if faiss_module() is not None:
        atlas.build_index()
    else:  # an atlas indexed on a machine that has faiss
        meta = json.loads((tmp_path / ATLAS_FILE).read_text())
        meta["index"] = {"library": "faiss", "file": INDEX_FILE, "count": 15, "ef_search": 64}
        (tmp_path / ATLAS_FILE).write_text(json.dumps(meta))
        (tmp_path / INDEX_FILE).write_bytes(b"index")
    monkeypatch.setattr(atlas_module, "faiss_module", lambda: None)
    loaded = Atlas.load(tmp_path, tiny)
    assert not loaded.has_index and loaded.info()["index"]["active"] is False
    order, _ = brute_force(stored, stored[:4], 3)
    assert [[n.atlas_id for n in r] for r in loaded.search(stored[:4], k=3)] == [
        [atlas.entries[i].atlas_id for i in row] for row in order
    ]
    with pytest.raises(AtlasError, match="needs faiss"):
        loaded.build_index()

"""The default atlases in ``models/<name>/atlas``: they load, fit their model, and hold only what may ship."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leukview.core.atlas import Atlas, default_atlas_dir, load_default_atlas
from leukview.core.models import Classifier

ROOT = Path(__file__).resolve().parents[3]
# every shipped model that makes calls of its own ships an atlas; a second stage (a refining model, which
# re-decides some of the type model's cells) is searched through the type model's atlas
MODELS = sorted(
    p.parent for p in (ROOT / "models").glob("*/model.json") if not json.loads(p.read_text(encoding="utf-8")).get("refines")
)
SHIPPABLE = {"CC BY 4.0", "CC BY 3.0", "MIT", "CC0", "Apache-2.0"}


@pytest.fixture(scope="module", params=MODELS, ids=lambda p: p.name)
def shipped(request: pytest.FixtureRequest) -> tuple[Path, Classifier, Atlas]:
    model_dir = request.param
    if not (default_atlas_dir(model_dir) / "atlas.json").is_file():
        pytest.fail(f"{model_dir.name} ships no atlas (python -m training.atlas --model {model_dir} ...)")
    classifier = Classifier.load(model_dir)
    atlas = load_default_atlas(classifier)
    assert atlas is not None
    return model_dir, classifier, atlas


def test_atlas_matches_its_model(shipped: tuple[Path, Classifier, Atlas]) -> None:
    model_dir, classifier, atlas = shipped
    assert atlas.model_sha256 == classifier.spec.sha256
    assert atlas.dim == classifier.feature_shape[0]
    assert atlas.meta["model"]["version"] == classifier.spec.version
    assert set(atlas.labels) == set(classifier.spec.classes)
    counts = atlas.info()["by_label"]
    assert len(set(counts.values())) == 1  # balanced per class


def test_atlas_is_small_and_redistributable(shipped: tuple[Path, Classifier, Atlas]) -> None:
    model_dir, _, atlas = shipped
    assert atlas.info()["size_bytes"] <= 5.5e6
    for name, source in atlas.sources.items():
        assert source.licence in SHIPPABLE, name
        if source.licence.startswith("CC BY"):
            assert source.attribution, f"{name}: CC BY needs an attribution"
    for entry in atlas.entries:
        assert entry.licence == atlas.sources[entry.source].licence
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert "## Atlas" in card


def test_atlas_holds_no_held_out_cell(shipped: tuple[Path, Classifier, Atlas]) -> None:
    model_dir, _, atlas = shipped
    split = json.loads((model_dir / "split.json").read_text(encoding="utf-8"))
    held_out = set(split["groups"]["test"])
    trained = {g.split(":", 1)[0] for g in split["groups"]["train"]}
    for entry in atlas.entries:
        assert f"{entry.source}:{entry.group}" not in held_out
        if entry.source in trained:  # a training set: only its train groups
            assert f"{entry.source}:{entry.group}" in split["groups"]["train"]


def test_atlas_finds_its_own_cells(shipped: tuple[Path, Classifier, Atlas]) -> None:
    _, _, atlas = shipped
    rows = np.random.default_rng(0).choice(len(atlas), 10, replace=False)
    hits = atlas.search(atlas.embeddings[rows], k=3)
    for row, found in zip(rows, hits, strict=True):
        assert found[0].atlas_id == atlas.entries[row].atlas_id and found[0].distance < 1e-3
    thumb = atlas.thumbnail(atlas.entries[int(rows[0])].atlas_id)
    size = atlas.info()["thumbnail_size"]
    assert thumb.shape == (size, size, 3) and thumb.std() > 5  # a real picture, not a flat tile

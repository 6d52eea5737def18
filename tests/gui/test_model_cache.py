"""The GUI's model list and model cache read the core's registry: damaged models are shown, not hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_factory import make_tiny_classifier

pytest.importorskip("PySide6")

from leukview.gui.worker import ModelCache, installed_models  # noqa: E402


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    make_tiny_classifier(root / "alpha", ["blast", "normal"], name="all-blast")
    make_tiny_classifier(root / "zeta", ["lymphocyte", "neutrophil"], seed=1)
    (root / "bare").mkdir()
    (root / "bare" / "model.onnx").write_bytes((root / "zeta" / "model.onnx").read_bytes())
    return root


def test_installed_models_lists_the_damaged_ones(models: Path) -> None:
    listed = {m.folder: m for m in installed_models(models)}
    assert sorted(listed) == ["alpha", "bare", "zeta"]
    assert listed["alpha"].spec is not None and listed["alpha"].spec.name == "all-blast"
    assert listed["alpha"].error is None
    assert listed["bare"].spec is None and "model.json" in (listed["bare"].error or "")


def test_model_cache_loads_the_good_ones_and_says_why_not_the_others(models: Path) -> None:
    cache = ModelCache(models)
    loaded = cache.load(None)
    assert [c.spec.name for c in loaded.classifiers] == ["all-blast", "zeta"]
    assert len(loaded.notices) == 1 and loaded.notices[0].startswith("model 'bare' skipped:")
    assert cache.load([]) is loaded  # same choice: nothing reloaded

    # by folder or sidecar name; a model the user did not choose raises no notice
    chosen = cache.load(["all-blast"])
    assert [c.path.name for c in chosen.classifiers] == ["alpha"] and chosen.notices == []

    (models / "zeta" / "model.onnx").write_bytes(b"not onnx")  # damaged after listing
    cache.invalidate()
    again = cache.load(["zeta", "alpha"])
    assert [c.spec.name for c in again.classifiers] == ["all-blast"]
    assert len(again.notices) == 1
    assert again.notices[0].startswith(
        "model 'zeta' could not be loaded: model file does not match its sidecar"
    )

"""training.train: which cells count for field calls; one real C-NMC epoch, exported, run like the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from leukview.core.models import Classifier, read_sidecar  # noqa: E402
from training import data as tdata  # noqa: E402
from training.config import config_from_dict  # noqa: E402


def test_field_calls_count_only_field_datasets() -> None:
    """Single-cell images of a second training source (PBC normals) are not smear fields."""
    from training.train import _field_cells

    base = {"name": "x", "model": "effnet-lite0", "classes": ["blast", "normal"], "positive_class": "blast"}
    fields = {"name": "taleqani", "kind": "taleqani", "root": "taleqani", "fields": True}
    cells = {"name": "pbc-normal", "kind": "folder", "root": "pbc"}
    datasets = np.array(["taleqani", "pbc-normal", "taleqani"])
    both = config_from_dict({**base, "train_data": [fields, cells]})
    assert _field_cells(datasets, both).tolist() == [True, False, True]
    only = config_from_dict({**base, "train_data": [fields]})
    assert _field_cells(datasets[[0, 2]], only).all()


@pytest.mark.slow
@pytest.mark.real_data
def test_tiny_train_export_onnxruntime(tiny_cnmc_config, tmp_path: Path) -> None:
    """Real C-NMC cells, one epoch at 64 px, exported and run in onnxruntime like the app."""
    import onnxruntime as ort

    from training.export import export_run
    from training.train import run

    raw = tiny_cnmc_config("tiny-blast")
    raw["eval_data"] = [{"name": "taleqani", "kind": "taleqani", "root": "taleqani", "limit": 1, "fields": True}]
    result = run(config_from_dict(raw), tmp_path / "run", progress=False, command="test")
    assert result["metrics"]["heldout"]["n"] > 0
    assert "fields" in result["metrics"]["taleqani"]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    tdata.assert_disjoint(split["groups"])
    report = export_run(tmp_path / "run", tmp_path / "model")
    assert max(report["parity_max_abs_diff"].values()) <= 1e-4
    spec = read_sidecar(tmp_path / "model" / "model.json")
    assert spec.classes == ["blast", "normal"] and spec.positive_class == "blast"
    assert spec.crop.background == "black" and spec.input_size == 64
    assert spec.cam_weight == "classifier.weight" and spec.opset == 17
    assert spec.training["data"][0]["licence"] == "CC BY 3.0"
    sess = ort.InferenceSession(str(tmp_path / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, features = sess.run(["logits", "features"], {"input": np.zeros((3, 3, 64, 64), np.float32)})
    assert logits.shape == (3, 2) and features.ndim == 4 and features.shape[0] == 3
    classifier = Classifier.load(tmp_path / "model")
    assert classifier.cam_exact is True
    assert (tmp_path / "model" / "README.md").read_text().count("Decision support, not a diagnosis") == 1

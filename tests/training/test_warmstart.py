"""training.warmstart: an exported model's folded weights, loaded into a fresh network, compute the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from leukview.core.models import ModelSpec  # noqa: E402
from leukview.core.preprocess import CropRule  # noqa: E402
from training.export import export_network, sha256_file  # noqa: E402
from training.models import _mark_frozen, build_model  # noqa: E402
from training.warmstart import load_exported  # noqa: E402


@pytest.mark.slow
def test_folded_weights_reproduce_the_exported_logits_and_new_classes_start_at_zero(tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    source = build_model("effnet-lite0", 3, 64, None, lambda _: None, "instance")
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so folding matters
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
        source.classifier.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    source.eval()
    folder = tmp_path / "old"
    export_network(source, folder / "model.onnx", 64)
    old_classes = ["lymphocyte", "neutrophil", "platelet"]
    # the export added a prior correction of -2 to the platelet logit; the warm start takes it out
    spec = ModelSpec(name="old", version="1.0.0", classes=old_classes, input_size=64, mean=[0.5] * 3,
                     std=[0.5] * 3, crop=CropRule(), cam_weight="classifier.weight",
                     sha256=sha256_file(folder / "model.onnx"), training={"logit_bias": {"platelet": -2.0}})
    (folder / "model.json").write_text(json.dumps(spec.to_dict()))

    target = build_model("effnet-lite0", 4, 64, None, lambda _: None, "instance")
    report = load_exported(target, folder, ["neutrophil", "lymphocyte", "blast", "platelet"])
    assert report["classes_copied"] == ["neutrophil", "lymphocyte", "platelet"] and report["classes_new"] == ["blast"]
    target.apply(_mark_frozen)
    target.eval()
    x = np.random.default_rng(0).normal(0, 1, (4, 3, 64, 64)).astype(np.float32)
    (want,) = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"input": x})
    with torch.no_grad():
        got = target(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(got[:, 0], want[:, 1], atol=1e-3)  # reordered by name
    np.testing.assert_allclose(got[:, 1], want[:, 0], atol=1e-3)
    np.testing.assert_allclose(got[:, 3], want[:, 2] + 2.0, atol=1e-3)  # the offset taken back out
    assert np.all(got[:, 2] == 0)  # a new class: zero weights and bias

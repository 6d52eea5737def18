"""training.export: an XGBoost head becomes part of the one ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from training.models import build_model  # noqa: E402


def test_xgboost_head_becomes_one_onnx_graph(tmp_path: Path) -> None:
    """EfficientNet-B0 features -> XGBoost, exported as one graph that matches XGBoost."""
    xgb = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    import onnxruntime as ort

    from training.export import attach_xgboost, export_network

    model = build_model("effnetb0-xgboost", 3, 64, weights=None).eval()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (24, 3, 64, 64)).astype(np.float32)
    net = export_network(model, tmp_path / "net.onnx", 64, pooled=True)
    # the network part alone: torch and onnxruntime agree
    net_sess = ort.InferenceSession(str(net), providers=["CPUExecutionProvider"])
    logits, _features, pooled = net_sess.run(["logits", "features", "pooled"], {"input": x})
    with torch.no_grad():
        assert np.abs(logits - model(torch.from_numpy(x))[0].numpy()).max() <= 1e-4
    # random-init features are tiny: fit the trees on what the graph will feed them
    booster = xgb.XGBClassifier(n_estimators=8, max_depth=2, learning_rate=0.35).fit(pooled, np.arange(24) % 3)
    combined = attach_xgboost(net, booster, model.num_features, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(combined), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    probs, features = sess.run(["probabilities", "features"], {"input": x})
    assert features.shape[:2] == (24, model.num_features)
    assert np.abs(probs - booster.predict_proba(pooled)).max() <= 1e-4


def test_a_second_stage_keeps_only_the_head_rows_it_is_asked_about() -> None:
    from training.config import config_from_dict
    from training.data import DataError
    from training.export import head_classes, keep_head_rows

    base = {"name": "m", "model": "effnet-lite0", "classes": ["a", "b", "c", "blast"], "train_data": [],
            "input_size": 64}
    config = config_from_dict({**base, "export": {"classes": ["c", "blast"], "refines": ["c"]}})
    assert head_classes(config) == ["c", "blast"] and head_classes(config_from_dict(base)) == base["classes"]
    model = build_model("effnet-lite0", 4, 64, weights=None).eval()
    sliced = keep_head_rows(model, config)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (3, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        full, features = model(x)
        kept, kept_features = sliced(x)
    assert kept.shape == (3, 2) and torch.allclose(kept, full[:, [2, 3]], atol=1e-6)
    assert torch.equal(features, kept_features) and model.classifier.out_features == 4  # the original is untouched
    for bad in ({"classes": ["a", "zebra"]}, {"classes": ["a"]}, {"refines": []}, {"head": ["a"]}):
        with pytest.raises(DataError, match=r"\[export\]"):
            config_from_dict({**base, "export": bad})

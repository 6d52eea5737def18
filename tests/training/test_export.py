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

"""Models by name, ImageNet weights loaded by order, heads, static padding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from training.models import build_model, imagenet_lite, load_by_order, static_padding  # noqa: E402


def test_pretrained_lite0_calls_chelsea_a_cat() -> None:
    from skimage.data import chelsea

    model = imagenet_lite("tf_efficientnet_lite0")
    image = chelsea()
    h, w = image.shape[:2]
    side = min(h, w)
    image = image[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(((image / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        top = int(model(x).argmax())
    assert 281 <= top <= 285  # ImageNet's domestic cats


def test_load_by_order_checks_shapes() -> None:
    model = build_model("effnet-lite0", 3, 64, weights=None)
    state = model.backbones[0].state_dict()
    bad = dict(state)
    first = next(iter(bad))
    bad[first] = torch.zeros(1)
    with pytest.raises(ValueError, match="do not fit"):
        load_by_order(model.backbones[0], bad)


def test_heads_and_static_padding() -> None:
    x = torch.randn(2, 3, 64, 64)
    model = build_model("effnet-lite0", 4, 64, weights=None).eval()
    padded = static_padding(model, 64)
    with torch.no_grad():
        (l1, f1), (l2, f2) = model(x), padded(x)
        assert torch.allclose(l1, l2) and torch.allclose(f1, f2)
        # linear head: the logits are the classifier on the averaged features (exact CAM)
        assert torch.allclose(l1, model.classifier(f1.mean(dim=(2, 3))), atol=1e-5)
    b3 = build_model("effnetb3-head", 2, 64, weights=None).eval()
    assert not b3.cam_exact
    with torch.no_grad():
        logits, features = b3(x)
    assert logits.shape == (2, 2) and features.shape[1] == 1536

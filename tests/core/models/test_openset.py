"""A model's open-set score: the sidecar's ``openset`` block, the graph output, each cell's atypicality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_factory import make_tiny_classifier, read_sidecar_dict, resign, write_sidecar

from leukview.core.errors import ModelError
from leukview.core.models import Classifier, ModelSpec, read_sidecar

SAMPLES = Path(__file__).resolve().parents[3] / "resources" / "samples"


def add_score_output(folder: Path, name: str = "atypicality") -> None:
    """Give a tiny model an open-set output: the mean squared feature of each cell, shape (N,)."""
    model = onnx.load(str(folder / "model.onnx"))
    model.graph.node.append(helper.make_node("Mul", ["features", "features"], ["squared"]))
    model.graph.node.append(helper.make_node("ReduceMean", ["squared"], [name], axes=[1, 2, 3], keepdims=0))
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"]))
    onnx.checker.check_model(model)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    resign(folder)


def with_openset(folder: Path, **block: object) -> None:
    data = read_sidecar_dict(folder)
    data["openset"] = {"score": "mahalanobis", "output": "atypicality", "threshold": 1.0,
                       "fitted_on": "test", "flagged_fraction_heldout": 0.02, **block}
    write_sidecar(folder, data)


def test_a_sidecar_without_openset_has_no_score(tmp_path: Path) -> None:
    spec = read_sidecar(make_tiny_classifier(tmp_path / "m") / "model.json")
    assert spec.openset is None and spec.openset_output is None and spec.openset_threshold is None
    assert "openset" not in spec.to_dict()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": "2"}, "threshold"),
        ({"output": ""}, "output"),
        ({"output": "logits"}, "must differ"),
        ({"output": "features"}, "must differ"),
        ({"flagged_fraction_heldout": 1.5}, "flagged_fraction_heldout"),
    ],
)
def test_a_bad_openset_block_is_refused_with_its_field_named(tmp_path: Path, block: dict, message: str) -> None:
    folder = make_tiny_classifier(tmp_path / "m")
    with_openset(folder, **block)
    with pytest.raises(ModelError, match=message):
        read_sidecar(folder / "model.json")


def test_openset_block_round_trips(tmp_path: Path) -> None:
    folder = make_tiny_classifier(tmp_path / "m")
    with_openset(folder, threshold=2.5)
    spec = read_sidecar(folder / "model.json")
    assert spec.openset_output == "atypicality" and spec.openset_threshold == 2.5
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.openset == spec.openset


def test_a_sidecar_naming_a_missing_output_is_refused_at_load(tmp_path: Path) -> None:
    folder = make_tiny_classifier(tmp_path / "m")
    with_openset(folder)
    with pytest.raises(ModelError, match="not an output of the graph"):
        Classifier.load(folder)


def test_each_prediction_carries_its_score_over_the_threshold(tmp_path: Path) -> None:
    from leukview.core.analysis import Analysis, analyze_image
    from leukview.core.io import read_image

    folder = make_tiny_classifier(tmp_path / "m", input_size=32)
    add_score_output(folder)
    fields = [read_image(path) for path in sorted(SAMPLES.glob("BloodImage_*.jpg"))]
    h, w = min(f.shape[0] for f in fields), min(f.shape[1] for f in fields)
    image = np.vstack([np.hstack([f[:h, :w] for f in fields])] * 2)  # 8 fields, a white cell or two each
    # raw scores of the sample's white cells, then a threshold at their median: about half flagged
    with_openset(folder, threshold=1.0)
    plain = analyze_image(image, [Classifier.load(folder)])
    raw = np.array([c.predictions["m"].atypicality for c in plain.cells if "m" in c.predictions])
    assert len(raw) >= 4 and np.all(np.isfinite(raw)) and raw.std() > 0
    threshold = float(np.median(raw))
    with_openset(folder, threshold=threshold)
    model = Classifier.load(folder)
    analysis = analyze_image(image, [model])
    scores = np.array([c.predictions["m"].atypicality for c in analysis.cells if "m" in c.predictions])
    np.testing.assert_allclose(scores, raw / threshold, rtol=1e-5)
    flagged = [c for c in analysis.cells if "m" in c.predictions and c.predictions["m"].atypical]
    assert 0 < len(flagged) < len(scores)

    # the image's domain entry counts them, cells.json keeps both, an old file without it still loads
    domain = analysis.domain
    assert domain is not None and domain.cells == len(scores) and domain.atypical == len(flagged)
    assert domain.expected_fraction == pytest.approx(0.02)
    data = analysis.to_dict()
    assert data["domain"]["atypical"] == len(flagged)
    assert len(flagged) >= 3 and domain.warning is not None  # about half flagged: far over 3 x 2 %
    flags = [c["flags"] for c in data["cells"] if "m" in c["predictions"]]
    assert sum("atypical" in f for f in flags) == len(flagged)
    back = Analysis.from_dict(json.loads(json.dumps(data)))
    assert back.domain == domain
    assert next(c for c in back.cells if c.id == flagged[0].id).predictions["m"].atypical
    del data["domain"]
    assert Analysis.from_dict(data).domain is None

    # a threshold over every score: nothing atypical, no warning
    with_openset(folder, threshold=float(raw.max()) * 1.01)
    quiet = analyze_image(image, [Classifier.load(folder)])
    assert quiet.domain is not None and quiet.domain.atypical == 0 and quiet.domain.warning is None

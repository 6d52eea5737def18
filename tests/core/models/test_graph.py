"""The graph checked against its sidecar: what its scores really are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_factory import BIAS_NAME, make_tiny_classifier, read_sidecar_dict, resign, write_sidecar

from leukview.core.errors import ModelError
from leukview.core.models import ModelSpec, read_sidecar
from leukview.core.models._graph import check_scores, probe_inputs

CLASSES = ["lymphocyte", "monocyte", "neutrophil"]


def _declare(folder: Path, **outputs: object) -> None:
    data = read_sidecar_dict(folder)
    data["outputs"].update(outputs)
    write_sidecar(folder, data)


def test_logits_declared_as_probabilities_are_refused(tmp_path: Path) -> None:
    from leukview.core.models import Classifier

    folder = make_tiny_classifier(tmp_path / "liar", CLASSES)
    _declare(folder, scores_kind="probabilities")  # the output is still the raw logits
    with pytest.raises(ModelError) as info:
        Classifier.load(folder)
    reason = info.value.reason
    assert "outputs.scores_kind 'probabilities'" in reason and "'logits'" in reason
    assert "not probabilities" in reason and "values from" in reason
    assert info.value.path == str(folder / "model.onnx")


def test_true_probabilities_load_and_probabilities_declared_as_logits_are_allowed(
    tmp_path: Path,
) -> None:
    from leukview.core.models import Classifier

    honest = make_tiny_classifier(tmp_path / "honest", CLASSES, scores_kind="probabilities")
    assert Classifier.load(honest).spec.scores_kind == "probabilities"
    # a softmax output declared as logits cannot be told from logits reliably: allowed
    modest = make_tiny_classifier(tmp_path / "modest", CLASSES, scores_kind="probabilities")
    _declare(modest, scores_kind="logits")
    assert Classifier.load(modest).spec.scores_kind == "logits"


def test_non_finite_scores_are_refused(tmp_path: Path) -> None:
    from leukview.core.models import Classifier

    folder = make_tiny_classifier(tmp_path / "nan", CLASSES)
    model = onnx.load(folder / "model.onnx")
    bias = next(t for t in model.graph.initializer if t.name == BIAS_NAME)
    values = numpy_helper.to_array(bias).copy()
    values[1] = np.nan
    bias.CopyFrom(numpy_helper.from_array(values, BIAS_NAME))
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    resign(folder)
    with pytest.raises(ModelError, match=r"non-finite scores \(NaN or infinity\)"):
        Classifier.load(folder)


def test_probe_inputs_are_the_mid_grey_crop_and_fixed_random_crops(tmp_path: Path) -> None:
    spec = read_sidecar(make_tiny_classifier(tmp_path / "m", CLASSES, input_size=48) / "model.json")
    probe = probe_inputs(spec)
    assert probe.shape == (3, 3, 48, 48) and probe.dtype == np.float32
    grey = (128 / 255 - 0.5) / 0.25
    np.testing.assert_allclose(probe[0], grey, atol=1e-5)
    assert probe[1].std() > 1 and not np.allclose(probe[1], probe[2])
    np.testing.assert_array_equal(probe, probe_inputs(spec))  # deterministic


def _spec(kind: str) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "name": "m",
            "version": "1",
            "classes": ["a", "b", "c"],
            "input": {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3},
            "outputs": {"scores": "out", "scores_kind": kind},
        }
    )


@pytest.mark.parametrize(
    ("scores", "ok"),
    [
        ([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], True),
        ([[0.2, 0.3, 0.5005], [0.9995, 0.0, 0.0]], True),  # rounding within 1e-3
        ([[0.2, 0.3, 0.6], [0.2, 0.3, 0.5]], False),  # one row sums to 1.1
        ([[0.5, 0.5, 0.5], [0.3, 0.3, 0.3]], False),  # independent sigmoids
        ([[1.5, -0.5, 0.0], [0.2, 0.3, 0.5]], False),  # rows sum to 1 but values are no probabilities
        ([[2.3, -1.2, 0.4], [0.1, 0.7, -3.0]], False),  # logits
    ],
)
def test_check_scores_of_declared_probabilities(scores: list, ok: bool) -> None:
    where = Path("model.onnx")
    array = np.asarray(scores, np.float32)
    if ok:
        check_scores(array, _spec("probabilities"), where)
    else:
        with pytest.raises(ModelError, match="not probabilities"):
            check_scores(array, _spec("probabilities"), where)
    check_scores(array, _spec("logits"), where)  # any finite logits are allowed

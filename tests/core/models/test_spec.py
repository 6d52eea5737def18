"""The model sidecar: round trip and readable errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from onnx_factory import make_tiny_classifier, read_sidecar_dict

from leukview.core.errors import ModelError
from leukview.core.models import ModelSpec, read_sidecar
from leukview.core.preprocess import CropRule

FULL = {
    "schema_version": 1,
    "name": "all-blast",
    "version": "1.2.0",
    "description": "ALL blast vs normal lymphoid cell",
    "architecture": "tf_efficientnet_lite0",
    "classes": ["blast", "normal"],
    "applies_to": ["wbc"],
    "input": {"name": "pixels", "size": 128, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "crop": {"scale": 1.3, "min_side": 24, "background": "black"},
    "outputs": {"scores": "probs", "scores_kind": "probabilities", "features": "fmap"},
    "cam": {"weight": "head.fc.weight"},
    "positive_class": "blast",
    "opset": 17,
    "training": {"data": [{"name": "C-NMC 2019", "licence": "CC BY 3.0"}], "split": "by subject"},
    "metrics": {"cnmc_heldout": {"balanced_accuracy": 0.81}},
    "licence": "Apache-2.0",
    "sha256": "ab" * 32,
}


def test_round_trip() -> None:
    spec = ModelSpec.from_dict(FULL)
    assert spec.input_name == "pixels" and spec.scores_kind == "probabilities"
    assert spec.crop == CropRule(scale=1.3, min_side=24, background="black")
    assert spec.cam_weight == "head.fc.weight" and spec.positive_class == "blast"
    assert spec.to_dict() == FULL
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_defaults_and_round_trip_without_cam(tmp_path: Path) -> None:
    minimal = {
        "name": "m",
        "version": 1,
        "classes": ["a", "b"],
        "input": {"size": 64, "mean": [0, 0, 0], "std": [1, 1, 1]},
    }
    spec = ModelSpec.from_dict(minimal)
    assert spec.version == "1" and spec.input_name == "input" and spec.scores_output == "logits"
    assert spec.cam_weight is None and spec.crop == CropRule() and spec.applies_to == ["wbc"]
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_read_sidecar_of_a_factory_model(tmp_path: Path) -> None:
    folder = make_tiny_classifier(tmp_path / "tiny", ["x", "y", "z"], input_size=48)
    spec = read_sidecar(folder / "model.json")
    assert spec.name == "tiny" and spec.classes == ["x", "y", "z"] and spec.input_size == 48
    assert spec.to_dict() == read_sidecar_dict(folder)


def _with(path: str, value: object) -> dict:
    data = copy.deepcopy(FULL)
    target = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["not", "an", "object"], "not a JSON object"),
        (_with("name", KeyError), "lacks 'name'"),
        (_with("version", KeyError), "lacks 'version'"),
        (_with("classes", KeyError), "lacks 'classes'"),
        (_with("input", KeyError), "lacks 'input'"),
        (_with("input.mean", KeyError), "lacks 'input.mean'"),
        (_with("input.size", "big"), "invalid value"),
        (_with("input.size", 4), "too small"),
        (_with("input.std", [0.2, 0.0, 0.2]), "std > 0"),
        (_with("input.mean", [0.5, 0.5]), "3 values"),
        (_with("input", "pixels"), "'input' must be a JSON object"),
        (_with("classes", ["blast"]), "at least two distinct"),
        (_with("classes", ["blast", "blast"]), "at least two distinct"),
        (_with("classes", "blast,normal"), "at least two distinct"),
        (_with("classes", [["blast"], "normal"]), "at least two distinct"),
        (_with("outputs.scores_kind", "odds"), "scores_kind"),
        (_with("outputs", ["probs"]), "'outputs' must be a JSON object"),
        (_with("outputs.features", 3), "outputs.features must be an output name"),
        (_with("positive_class", "leukaemia"), "positive_class 'leukaemia'"),
        (_with("schema_version", 2), "schema_version 2"),
        (_with("crop.background", "white"), "invalid value"),
        (_with("crop.scale", -1), "invalid value"),
        (_with("crop.min_side", 0), "invalid value"),
        (_with("cam", "head.fc.weight"), "'cam' must be a JSON object"),
        (_with("cam.weight", ["a"]), "cam.weight must be"),
        (_with("applies_to", "wbc"), "applies_to"),
        (_with("applies_to", ["neutrophil"]), "applies_to"),
        (_with("applies_to", [["wbc"]]), "applies_to"),
        (_with("training", []), "'training' must be a JSON object"),
    ],
)
def test_invalid_sidecars(data: object, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        ModelSpec.from_dict(data)  # type: ignore[arg-type]


def test_read_sidecar_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found") as info:
        read_sidecar(tmp_path / "model.json")
    assert info.value.path == str(tmp_path / "model.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "name": "x",\n  "classes": [\n', encoding="utf-8")
    with pytest.raises(ModelError, match=r"not valid JSON \(line 4"):
        read_sidecar(bad)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelError, match="cannot read model sidecar"):
        read_sidecar(binary)
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"architectures": ["BertModel"], "hidden_size": 768}), encoding="utf-8")
    with pytest.raises(ModelError, match="lacks 'input'"):
        read_sidecar(other)

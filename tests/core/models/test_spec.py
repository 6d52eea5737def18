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
        "version": "1",
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
        (["not", "an", "object"], r"not a JSON object \(it is a list\)"),
        (_with("name", KeyError), "lacks 'name'"),
        (_with("version", KeyError), "lacks 'version'"),
        (_with("classes", KeyError), "lacks 'classes'"),
        (_with("input", KeyError), "lacks 'input'"),
        (_with("input.mean", KeyError), "lacks 'input.mean'"),
        (_with("input.size", "big"), "'input.size' is \"big\"; it must be an integer from 8 to 1024"),
        (_with("input.size", 4), "'input.size' is 4; it must be an integer from 8 to 1024"),
        (_with("input.std", [0.2, 0.0, 0.2]), r"'input.std' is \[0.2, 0.0, 0.2\]; .* from 0.001 to 10"),
        (_with("input.mean", [0.5, 0.5]), "list of 3 numbers"),
        (_with("input", "pixels"), "'input' is \"pixels\"; it must be a JSON object"),
        (_with("classes", ["blast"]), "2 to 1000 distinct"),
        (_with("classes", ["blast", "blast"]), r"distinct class names \(blast twice\)"),
        (_with("classes", "blast,normal"), "2 to 1000 distinct"),
        (_with("classes", [["blast"], "normal"]), r"'classes\[0\]' is \[\"blast\"\]; it must be non-empty text"),
        (_with("outputs.scores_kind", "odds"), "scores_kind"),
        (_with("outputs", ["probs"]), "'outputs' is .*; it must be a JSON object"),
        (_with("outputs.features", 3), "'outputs.features' is 3; it must be non-empty text"),
        (_with("positive_class", "leukaemia"), "'positive_class' is \"leukaemia\"; it must be null or one of its classes"),
        (_with("schema_version", 2), "schema_version 2"),
        (_with("crop.background", "white"), "'crop.background' is \"white\"; it must be one of"),
        (_with("crop.scale", -1), "'crop.scale' is -1; it must be a number from 0.5 to 4"),
        (_with("crop.min_side", 0), "'crop.min_side' is 0; it must be an integer from 1 to 512"),
        (_with("cam", "head.fc.weight"), "'cam' is \"head.fc.weight\"; it must be a JSON object"),
        (_with("cam.weight", ["a"]), "'cam.weight' is"),
        (_with("applies_to", "wbc"), "applies_to"),
        (_with("applies_to", ["neutrophil"]), "applies_to"),
        (_with("applies_to", [["wbc"]]), "applies_to"),
        (_with("training", []), "'training' is \\[\\]; it must be a JSON object"),
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


# Every field is checked against its type and a range wide enough for any real model and narrow
# enough that nothing downstream can blow up (a crop scale of 1000 asked OpenCV for 89.6 GB).
@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("schema_version", True, "the integer 1"),
        ("schema_version", "1", "the integer 1"),
        ("schema_version", 1.0, "the integer 1"),
        ("name", "", "non-empty text"),
        ("name", "   ", "non-empty text"),
        ("name", 7, "non-empty text"),
        ("name", "wbc\ntype", "control characters"),
        ("name", "x" * 101, "at most 100 characters"),
        ("version", 1, "text"),
        ("version", None, "text"),
        ("version", True, "text"),
        ("description", ["a"], "text"),
        ("licence", {"a": 1}, "text"),
        ("architecture", 3, "text"),
        ("classes", [], "2 to 1000 distinct"),
        ("classes", ["blast", ""], "non-empty text"),
        ("classes", ["blast", 3], "non-empty text"),
        ("classes", [f"c{i}" for i in range(1001)], "2 to 1000 distinct"),
        ("applies_to", [], "non-empty list"),
        ("applies_to", ["wbc", "wbc"], "distinct"),
        ("applies_to", None, "non-empty list"),
        ("input.name", "", "non-empty text"),
        ("input.name", 0, "non-empty text"),
        ("input.size", True, "integer from 8 to 1024"),
        ("input.size", 64.0, "integer from 8 to 1024"),
        ("input.size", 4, "integer from 8 to 1024"),
        ("input.size", 100000, "integer from 8 to 1024"),
        ("input.size", 10**30, "integer from 8 to 1024"),
        ("input.size", "128", "integer from 8 to 1024"),
        ("input.mean", [0.5, 0.5, float("nan")], "3 numbers from 0 to 1"),
        ("input.mean", [0.5, 0.5, float("inf")], "3 numbers from 0 to 1"),
        ("input.mean", [0.5, 0.5, "0.5"], "3 numbers from 0 to 1"),
        ("input.mean", [0.5, 0.5, True], "3 numbers from 0 to 1"),
        ("input.mean", [0.5, 0.5, 1e300], "3 numbers from 0 to 1"),
        ("input.mean", 0.5, "3 numbers from 0 to 1"),
        ("input.std", [0.2, 1e-30, 0.2], "3 numbers from 0.001 to 10"),
        ("input.std", [0.2, -0.2, 0.2], "3 numbers from 0.001 to 10"),
        ("input.std", [0.2, 0.2, 0.2, 0.2], "3 numbers from 0.001 to 10"),
        ("input.std", [0.2, 0.2, float("nan")], "3 numbers from 0.001 to 10"),
        ("crop.scale", 1000, "number from 0.5 to 4"),
        ("crop.scale", 0.01, "number from 0.5 to 4"),
        ("crop.scale", float("inf"), "number from 0.5 to 4"),
        ("crop.scale", float("nan"), "number from 0.5 to 4"),
        ("crop.scale", "1.5", "number from 0.5 to 4"),
        ("crop.scale", True, "number from 0.5 to 4"),
        ("crop.min_side", 10**6, "integer from 1 to 512"),
        ("crop.min_side", True, "integer from 1 to 512"),
        ("crop.min_side", 16.5, "integer from 1 to 512"),
        ("crop.background", 0, "one of"),
        ("crop", [1.5], "JSON object"),
        ("outputs.scores", "", "non-empty text"),
        ("outputs.scores", None, "non-empty text"),
        ("outputs.scores_kind", True, "one of"),
        ("cam.weight", "", "non-empty text"),
        ("positive_class", 1, "one of its classes"),
        ("positive_class", True, "one of its classes"),
        ("opset", True, "integer from 1 to 100"),
        ("opset", "17", "integer from 1 to 100"),
        ("opset", 10**9, "integer from 1 to 100"),
        ("sha256", "ab" * 31, "64 hexadecimal digits"),
        ("sha256", "zz" * 32, "64 hexadecimal digits"),
        ("sha256", 12, "64 hexadecimal digits"),
        ("metrics", "good", "JSON object"),
    ],
)
def test_every_field_is_checked_against_its_type_and_range(
    field: str, value: object, rule: str
) -> None:
    with pytest.raises(ModelError) as info:
        ModelSpec.from_dict(_with(field, value))
    reason = info.value.reason
    assert f"'{field}" in reason, reason  # names the field
    assert rule in reason, reason  # and what is allowed
    shown = [json.dumps(value)[:40]]
    if isinstance(value, list):  # a bad element is shown alone
        shown += [json.dumps(v) for v in value]
    assert any(text in reason for text in shown), reason  # and the value found


def test_the_range_limits_themselves_are_accepted() -> None:
    for field, value in [
        ("input.size", 8),
        ("input.size", 1024),
        ("crop.scale", 0.5),
        ("crop.scale", 4),
        ("crop.min_side", 512),
        ("input.mean", [0, 1, 0.5]),
        ("input.std", [0.001, 10, 1]),
        ("opset", None),
        ("sha256", ""),
        ("sha256", "AB" * 32),
        ("positive_class", None),
        ("cam", None),
        ("applies_to", ["wbc", "rbc", "platelet"]),
        ("name", "wbc-type v2 (8 classes)"),
    ]:
        spec = ModelSpec.from_dict(_with(field, value))
        assert ModelSpec.from_dict(spec.to_dict()) == spec, (field, value)


def test_a_sidecar_too_deep_or_too_large_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(ModelError, match="not valid JSON"):
        read_sidecar(deep)
    digits = tmp_path / "digits.json"
    digits.write_text('{"name": ' + "1" * 5000 + "}", encoding="utf-8")
    with pytest.raises(ModelError, match="not valid JSON"):
        read_sidecar(digits)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({**FULL, "description": "x" * (5 << 20)}), encoding="utf-8")
    with pytest.raises(ModelError, match="larger than"):
        read_sidecar(big)


def test_a_sidecar_that_is_no_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it would block for ever
    with pytest.raises(ModelError, match="not a regular file"):
        read_sidecar(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(ModelError, match="not a regular file"):
        read_sidecar(zero)
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(ModelError, match="cannot read model sidecar"):
        read_sidecar(loop)
    folder = tmp_path / "dir.json"
    folder.mkdir()
    with pytest.raises(ModelError, match="not a regular file"):
        read_sidecar(folder)


def test_a_second_stage_sidecar_names_the_classes_it_refines() -> None:
    data = {k: v for k, v in FULL.items() if k != "positive_class"}
    data.update(name="wbc-mononuclear", classes=["lymphocyte", "monocyte", "blast"], refines=["lymphocyte", "monocyte"])
    spec = ModelSpec.from_dict(data)
    assert spec.refines == ["lymphocyte", "monocyte"] and spec.role == "refine"
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_dict(FULL).role == "flag" and "refines" not in ModelSpec.from_dict(FULL).to_dict()
    for bad in ([], "lymphocyte", ["lymphocyte", "lymphocyte"], [""], [3]):
        with pytest.raises(ModelError, match="'refines'"):
            ModelSpec.from_dict({**data, "refines": bad})
    with pytest.raises(ModelError, match="no positive_class"):  # one role per model
        ModelSpec.from_dict({**data, "positive_class": "blast"})

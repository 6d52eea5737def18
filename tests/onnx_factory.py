"""Tiny ONNX classifiers built with ``onnx.helper``, for tests and benchmarks.

The standard model is the smallest network with the shape of the real ones::

    input (N, 3, S, S) -> Conv 4x4 stride 4 -> Relu -> features (N, C, S/4, S/4)
        -> GlobalAveragePool -> Flatten -> Gemm(classifier.weight (K, C), classifier.bias)
        -> logits (N, K)          [-> Softmax -> probabilities (N, K)]

so its class-activation maps are exact. :func:`make_tiny_classifier` writes
``model.onnx`` and a valid sidecar (with the file's sha256) into a folder;
:func:`write_sidecar` and :func:`resign` help tests damage one or the other.

Import it from a test as ``from onnx_factory import make_tiny_classifier``
(pytest puts ``tests/`` on the path); scripts add ``tests/`` to ``sys.path``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from leukview.core.models import ModelSpec
from leukview.core.preprocess import CropRule

WEIGHT_NAME = "classifier.weight"
BIAS_NAME = "classifier.bias"
OPSET = 17
IR_VERSION = 8  # old enough for any onnxruntime >= 1.14


def build_tiny_graph(
    n_classes: int,
    input_size: int = 32,
    channels: int = 8,
    seed: int = 0,
    *,
    scores_kind: str = "logits",
    features: bool = True,
    features_before_relu: bool = False,
    fixed_batch: int | None = None,
    dynamic_spatial: bool = False,
    input_name: str = "input",
) -> onnx.ModelProto:
    """The tiny conv + GAP + linear classifier as an ONNX model.

    Parameters
    ----------
    n_classes : int
    input_size : int
        Side S of the input; a multiple of 4.
    channels : int
        Feature channels C.
    seed : int
        Seeds the random weights.
    scores_kind : {'logits', 'probabilities'}
        'probabilities' ends in a Softmax whose output is named ``probabilities``.
    features : bool
        Expose the feature maps as the output ``features``.
    features_before_relu : bool
        Expose the maps *before* the ReLU that the pooling sees, so that a
        CAM computed from them is not exact (to test that this is detected).
    fixed_batch : int, optional
        Static batch size instead of a symbolic one.
    dynamic_spatial : bool
        Symbolic height and width.

    Returns
    -------
    model : onnx.ModelProto
        Checked with ``onnx.checker``.
    """
    if input_size % 4:
        raise ValueError("input_size must be a multiple of 4")
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0.0, 0.5, (channels, 3, 4, 4)).astype(np.float32)
    conv_b = rng.normal(0.0, 0.1, channels).astype(np.float32)
    fc_w = rng.normal(0.0, 1.0, (n_classes, channels)).astype(np.float32)
    fc_b = rng.normal(0.0, 0.5, n_classes).astype(np.float32)
    batch: int | str = fixed_batch if fixed_batch else "batch"
    side: int | str = "height" if dynamic_spatial else input_size
    grid: int | str = "grid" if dynamic_spatial else input_size // 4

    nodes = [
        helper.make_node(
            "Conv", [input_name, "conv.weight", "conv.bias"], ["conv_out"], strides=[4, 4]
        ),
        helper.make_node("Relu", ["conv_out"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", WEIGHT_NAME, BIAS_NAME], ["logits"], transB=1),
    ]
    outputs = []
    if scores_kind == "probabilities":
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        outputs.append(
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, n_classes])
        )
    elif scores_kind == "logits":
        outputs.append(
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, n_classes])
        )
    else:
        raise ValueError(f"unknown scores_kind {scores_kind!r}")
    if features:
        name = "conv_out" if features_before_relu else "features"
        outputs.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, channels, grid, grid])
        )
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, side, side])],
        outputs,
        [
            numpy_helper.from_array(conv_w, "conv.weight"),
            numpy_helper.from_array(conv_b, "conv.bias"),
            numpy_helper.from_array(fc_w, WEIGHT_NAME),
            numpy_helper.from_array(fc_b, BIAS_NAME),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="onnx_factory"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def tiny_weights(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    """The (K, C) weights and (K,) bias of a tiny model's linear head."""
    found = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return found[WEIGHT_NAME], found[BIAS_NAME]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_sidecar(folder: Path, data: dict[str, Any]) -> Path:
    """Write a sidecar dictionary as ``folder/model.json``."""
    path = Path(folder) / "model.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def read_sidecar_dict(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "model.json").read_text(encoding="utf-8"))


def resign(folder: Path) -> None:
    """Set the sidecar's sha256 to that of the current ``model.onnx`` (after a test altered it)."""
    data = read_sidecar_dict(folder)
    data["sha256"] = sha256_file(Path(folder) / "model.onnx")
    write_sidecar(folder, data)


def make_tiny_classifier(
    path_dir: str | Path,
    classes: Sequence[str] = ("lymphocyte", "monocyte", "neutrophil"),
    input_size: int = 32,
    channels: int = 8,
    seed: int = 0,
    cam: bool = True,
    *,
    name: str | None = None,
    scores_kind: str = "logits",
    features: bool = True,
    features_before_relu: bool = False,
    fixed_batch: int | None = None,
    dynamic_spatial: bool = False,
    crop: CropRule | None = None,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.25, 0.25, 0.25),
    applies_to: Sequence[str] = ("wbc",),
    positive_class: str | None = None,
) -> Path:
    """Write a tiny working model (``model.onnx`` + ``model.json``) into a folder.

    Parameters
    ----------
    path_dir : path
        Created if needed; its name is the model's name unless ``name`` is given.
    classes : sequence of str
    input_size, channels, seed, scores_kind, features, features_before_relu, fixed_batch, dynamic_spatial
        See :func:`build_tiny_graph`.
    cam : bool
        Name ``classifier.weight`` as the sidecar's ``cam.weight``.
    crop, mean, std, applies_to, positive_class
        Sidecar fields.

    Returns
    -------
    folder : Path
    """
    folder = Path(path_dir)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_tiny_graph(
        len(classes),
        input_size,
        channels,
        seed,
        scores_kind=scores_kind,
        features=features,
        features_before_relu=features_before_relu,
        fixed_batch=fixed_batch,
        dynamic_spatial=dynamic_spatial,
    )
    onnx_path = folder / "model.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    features_name = None
    if features:
        features_name = "conv_out" if features_before_relu else "features"
    spec = ModelSpec(
        name=name or folder.name,
        version="0.0.1",
        classes=list(classes),
        input_size=input_size,
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        crop=crop or CropRule(scale=1.5, min_side=16, background="keep"),
        input_name="input",
        scores_output="probabilities" if scores_kind == "probabilities" else "logits",
        scores_kind=scores_kind,
        features_output=features_name,
        cam_weight=WEIGHT_NAME if cam else None,
        applies_to=list(applies_to),
        positive_class=positive_class,
        architecture="tiny-conv-gap-linear",
        description="test model built by tests/onnx_factory.py",
        licence="Apache-2.0",
        sha256=sha256_file(onnx_path),
        opset=OPSET,
        training={"data": [], "command": "tests/onnx_factory.py"},
        metrics={},
    )
    write_sidecar(folder, spec.to_dict())
    return folder

"""The model sidecar: what a model is, read from ``models/<name>/model.json``.

A model folder holds :data:`MODEL_FILE` (the ONNX graph) and its sidecar
:data:`SIDECAR_FILE`; these two names are the whole folder layout.

Modelled on timm's ``pretrained_cfg``: everything the app needs to feed a
model and to explain it is in the sidecar, so no model is hard-coded. The
training package writes it with :meth:`ModelSpec.to_dict`.

Example sidecar (``schema_version`` 1)::

    {
      "schema_version": 1,
      "name": "wbc-type", "version": "1.0.0",
      "description": "White-cell type, 8 PBC classes",
      "architecture": "tf_efficientnet_lite0",
      "classes": ["basophil", "eosinophil", ...],
      "applies_to": ["wbc"],
      "input": {"name": "input", "size": 128, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
      "crop": {"scale": 1.5, "min_side": 16, "background": "keep"},
      "outputs": {"scores": "logits", "scores_kind": "logits", "features": "features"},
      "cam": {"weight": "classifier.weight"},
      "positive_class": null,
      "opset": 17,
      "training": {"data": [{"name": ..., "licence": ..., "citation": ...}],
                   "split": "...", "command": "...", "wall_time_s": ..., "machine": "..."},
      "metrics": {"pbc_heldout": {"accuracy": ...}},
      "licence": "Apache-2.0 (weights: trained on CC BY 4.0 data)",
      "sha256": "<hex digest of model.onnx>"
    }
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cells import CELL_KINDS
from ..errors import ModelError
from ..preprocess import CropRule

MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
SIDECAR_SCHEMA_VERSION = 1
SCORES_KINDS = ("logits", "probabilities")


@dataclass
class ModelSpec:
    """Parsed, validated sidecar of one ONNX model."""

    name: str
    version: str
    classes: list[str]
    input_size: int
    mean: list[float]
    std: list[float]
    crop: CropRule
    input_name: str = "input"
    scores_output: str = "logits"
    scores_kind: str = "logits"
    features_output: str | None = "features"
    cam_weight: str | None = None
    applies_to: list[str] = field(default_factory=lambda: ["wbc"])
    positive_class: str | None = None
    architecture: str = ""
    description: str = ""
    licence: str = ""
    sha256: str = ""
    opset: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], path: str | os.PathLike[str] | None = None
    ) -> ModelSpec:
        """Build a spec from a sidecar dictionary, with readable errors."""

        def need(mapping: dict[str, Any], key: str, where: str = "") -> Any:
            if key not in mapping:
                raise ModelError(f"model sidecar lacks '{where}{key}'", path)
            return mapping[key]

        if not isinstance(data, dict):
            raise ModelError("model sidecar is not a JSON object", path)
        version = data.get("schema_version", SIDECAR_SCHEMA_VERSION)
        if version != SIDECAR_SCHEMA_VERSION:
            raise ModelError(
                f"model sidecar schema_version {version} is not supported (expected {SIDECAR_SCHEMA_VERSION})",
                path,
            )
        inp = need(data, "input")
        for key in ("input", "outputs", "cam", "crop", "training", "metrics"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise ModelError(f"sidecar '{key}' must be a JSON object", path)
        outputs = data.get("outputs") or {}
        cam = data.get("cam") or {}
        classes = need(data, "classes")
        if (
            not isinstance(classes, list)
            or not all(isinstance(c, str) for c in classes)
            or len(classes) < 2
            or len(set(classes)) != len(classes)
        ):
            raise ModelError("sidecar 'classes' must list at least two distinct names", path)
        try:
            mean = [float(v) for v in need(inp, "mean", "input.")]
            std = [float(v) for v in need(inp, "std", "input.")]
            size = int(need(inp, "size", "input."))
            crop = CropRule.from_dict(data.get("crop") or {})
        except (TypeError, ValueError) as exc:
            raise ModelError(f"sidecar has an invalid value: {exc}", path) from exc
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ModelError("sidecar input.mean and input.std need 3 values each, std > 0", path)
        if size < 8:
            raise ModelError(f"sidecar input.size {size} is too small", path)
        scores_kind = outputs.get("scores_kind", "logits")
        if scores_kind not in SCORES_KINDS:
            raise ModelError(f"sidecar outputs.scores_kind must be one of {SCORES_KINDS}", path)
        positive = data.get("positive_class")
        if positive is not None and positive not in classes:
            raise ModelError(f"sidecar positive_class '{positive}' is not one of its classes", path)
        applies_to = data.get("applies_to", ["wbc"])
        if not isinstance(applies_to, list) or not all(kind in CELL_KINDS for kind in applies_to):
            raise ModelError(f"sidecar 'applies_to' must be a list drawn from {CELL_KINDS}", path)
        for key in ("scores", "features"):
            if outputs.get(key) is not None and not isinstance(outputs[key], str):
                raise ModelError(f"sidecar outputs.{key} must be an output name", path)
        if cam.get("weight") is not None and not isinstance(cam["weight"], str):
            raise ModelError("sidecar cam.weight must be an initializer name", path)
        return cls(
            name=str(need(data, "name")),
            version=str(need(data, "version")),
            classes=[str(c) for c in classes],
            input_size=size,
            mean=mean,
            std=std,
            crop=crop,
            input_name=str(inp.get("name", "input")),
            scores_output=str(outputs.get("scores", "logits")),
            scores_kind=scores_kind,
            features_output=outputs.get("features"),
            cam_weight=cam.get("weight"),
            applies_to=list(applies_to),
            positive_class=positive,
            architecture=str(data.get("architecture", "")),
            description=str(data.get("description", "")),
            licence=str(data.get("licence", "")),
            sha256=str(data.get("sha256", "")),
            opset=data.get("opset"),
            training=dict(data.get("training") or {}),
            metrics=dict(data.get("metrics") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The sidecar dictionary (inverse of :meth:`from_dict`)."""
        return {
            "schema_version": SIDECAR_SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "architecture": self.architecture,
            "classes": list(self.classes),
            "applies_to": list(self.applies_to),
            "input": {
                "name": self.input_name,
                "size": self.input_size,
                "mean": self.mean,
                "std": self.std,
            },
            "crop": self.crop.to_dict(),
            "outputs": {
                "scores": self.scores_output,
                "scores_kind": self.scores_kind,
                "features": self.features_output,
            },
            "cam": {"weight": self.cam_weight} if self.cam_weight else None,
            "positive_class": self.positive_class,
            "opset": self.opset,
            "training": self.training,
            "metrics": self.metrics,
            "licence": self.licence,
            "sha256": self.sha256,
        }


def read_sidecar(path: str | os.PathLike[str]) -> ModelSpec:
    """Read and validate a ``model.json`` sidecar.

    Raises
    ------
    ModelError
        If the file is missing, not JSON, or lacks a required field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError("model sidecar not found", path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read model sidecar ({exc})", path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"model sidecar is not valid JSON (line {exc.lineno}: {exc.msg})", path
        ) from exc
    return ModelSpec.from_dict(data, path)

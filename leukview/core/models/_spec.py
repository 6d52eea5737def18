"""The model sidecar: what a model is, read from ``models/<name>/model.json``.

A model folder holds :data:`MODEL_FILE` (the ONNX graph) and its sidecar
:data:`SIDECAR_FILE`; these two names are the whole folder layout.

Modelled on timm's ``pretrained_cfg``: everything the app needs to feed a
model and to explain it is in the sidecar, so no model is hard-coded. The
training package writes it with :meth:`ModelSpec.to_dict`.

Reading it (:meth:`ModelSpec.from_dict`) checks every field against its type
and a sane range (``INPUT_SIZE_RANGE``, ``CROP_SCALE_RANGE``, ...), and each
refusal names the field, the value found and what is allowed.

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
      "refines": null,          # or e.g. ["lymphocyte", "monocyte", "erythroblast"]: a second stage
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
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

from ..cells import CELL_KINDS
from ..errors import ModelError
from ..preprocess import BACKGROUNDS, CropRule
from ..roles import model_role

MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
SIDECAR_SCHEMA_VERSION = 1
SCORES_KINDS = ("logits", "probabilities")

# Allowed ranges of the sidecar's fields (bounds included): wide enough for any real model, narrow
# enough that nothing downstream can blow up (a crop scale of 1000 asked OpenCV for 89.6 GB).
INPUT_SIZE_RANGE = (8, 1024)
CROP_SCALE_RANGE = (0.5, 4.0)
CROP_MIN_SIDE_RANGE = (1, 512)
MEAN_RANGE = (0.0, 1.0)  # timm's convention: on the [0, 1] pixel scale
STD_RANGE = (1e-3, 10.0)
CLASS_COUNT_RANGE = (2, 1000)
OPSET_RANGE = (1, 100)
MAX_NAME_LENGTH = 100  # name, class names
MAX_VERSION_LENGTH = 64
MAX_LABEL_LENGTH = 1000  # graph input, output and initialiser names
MAX_TEXT_LENGTH = 100_000  # description, architecture, licence
MAX_SIDECAR_BYTES = 4 << 20
MAX_MODEL_BYTES = 2 << 30  # protobuf's limit: no single-file ONNX model is larger


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
    # A second-stage model: it re-decides the cells the primary (type) model calls one of these
    # classes, e.g. lymphocyte, monocyte, erythroblast -> which mononuclear cell, or blast.
    refines: list[str] | None = None
    architecture: str = ""
    description: str = ""
    licence: str = ""
    sha256: str = ""
    opset: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # open-set score: {"score", "output", "threshold", "fitted_on", "flagged_fraction_heldout", ...}
    openset: dict[str, Any] | None = None

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], path: str | os.PathLike[str] | None = None
    ) -> ModelSpec:
        """Build a spec from a sidecar dictionary, every field checked.

        Each field must have its type (a JSON ``true`` is not the integer 1)
        and lie in a range wide enough for any real model and narrow enough
        that nothing downstream can blow up (see the ``*_RANGE`` constants);
        unknown fields are ignored, for sidecars written by a later LeukView.

        Raises
        ------
        ModelError
            Naming the first field that is missing or wrong, its value and
            what is allowed.
        """
        check = _Checker(path)
        if not isinstance(data, dict):
            raise ModelError(f"model sidecar is not a JSON object (it is {_json_kind(data)})", path)
        version = data.get("schema_version", SIDECAR_SCHEMA_VERSION)
        if _is_int(version) and version != SIDECAR_SCHEMA_VERSION:
            raise ModelError(
                f"model sidecar schema_version {version} is not supported "
                f"(expected {SIDECAR_SCHEMA_VERSION})",
                path,
            )
        if not _is_int(version):
            check.fail(
                "schema_version", version, f"it must be the integer {SIDECAR_SCHEMA_VERSION}"
            )
        for key in ("input", "outputs", "cam", "crop", "training", "metrics"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                check.fail(key, data[key], "it must be a JSON object")
        inp = check.need(data, "input")
        outputs = data.get("outputs") or {}
        cam = data.get("cam") or {}
        crop = data.get("crop") or {}
        classes = check.classes(check.need(data, "classes"))
        applies_to = data.get("applies_to", ["wbc"])
        if (
            not isinstance(applies_to, list)
            or not applies_to
            or not all(isinstance(kind, str) and kind in CELL_KINDS for kind in applies_to)
            or len(set(applies_to)) != len(applies_to)
        ):
            check.fail(
                "applies_to",
                applies_to,
                f"it must be a non-empty list of distinct kinds from {CELL_KINDS}",
            )
        positive = data.get("positive_class")
        if positive is not None and (not isinstance(positive, str) or positive not in classes):
            check.fail("positive_class", positive, "it must be null or one of its classes")
        refines = data.get("refines")
        if refines is not None and (
            not isinstance(refines, list)
            or not refines
            or not all(isinstance(name, str) and name for name in refines)
            or len(set(refines)) != len(refines)
            or positive is not None
        ):
            check.fail(
                "refines",
                refines,
                "it must be null or a non-empty list of distinct class names, "
                "and a refining model has no positive_class",
            )
        scores_kind = outputs.get("scores_kind", "logits")
        if not isinstance(scores_kind, str) or scores_kind not in SCORES_KINDS:
            check.fail("outputs.scores_kind", scores_kind, f"it must be one of {SCORES_KINDS}")
        background = crop.get("background", CropRule.background)
        if not isinstance(background, str) or background not in BACKGROUNDS:
            check.fail("crop.background", background, f"it must be one of {BACKGROUNDS}")
        features = outputs.get("features")
        cam_weight = cam.get("weight")
        opset = data.get("opset")
        sha256 = data.get("sha256", "")
        if not isinstance(sha256, str) or (sha256 and not _SHA256.fullmatch(sha256)):
            check.fail("sha256", sha256, "it must be 64 hexadecimal digits (or empty)")
        return cls(
            name=check.name("name", check.need(data, "name")),
            version=check.name("version", check.need(data, "version"), MAX_VERSION_LENGTH),
            classes=classes,
            input_size=check.integer(
                "input.size", check.need(inp, "size", "input."), INPUT_SIZE_RANGE
            ),
            mean=check.triple("input.mean", check.need(inp, "mean", "input."), MEAN_RANGE),
            std=check.triple("input.std", check.need(inp, "std", "input."), STD_RANGE),
            crop=CropRule(
                scale=check.number(
                    "crop.scale", crop.get("scale", CropRule.scale), CROP_SCALE_RANGE
                ),
                min_side=check.integer(
                    "crop.min_side", crop.get("min_side", CropRule.min_side), CROP_MIN_SIDE_RANGE
                ),
                background=background,
            ),
            input_name=check.label("input.name", inp.get("name", "input")),
            scores_output=check.label("outputs.scores", outputs.get("scores", "logits")),
            scores_kind=scores_kind,
            features_output=None if features is None else check.label("outputs.features", features),
            cam_weight=None if cam_weight is None else check.label("cam.weight", cam_weight),
            applies_to=list(applies_to),
            positive_class=positive,
            refines=None if refines is None else list(refines),
            architecture=check.text("architecture", data.get("architecture", "")),
            description=check.text("description", data.get("description", "")),
            licence=check.text("licence", data.get("licence", "")),
            sha256=sha256,
            opset=None if opset is None else check.integer("opset", opset, OPSET_RANGE),
            training=dict(data.get("training") or {}),
            metrics=dict(data.get("metrics") or {}),
            openset=_openset(data.get("openset"), outputs, path),
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
            **({"refines": list(self.refines)} if self.refines else {}),
            "opset": self.opset,
            "training": self.training,
            "metrics": self.metrics,
            "licence": self.licence,
            "sha256": self.sha256,
            **({"openset": dict(self.openset)} if self.openset else {}),
        }

    @property
    def role(self) -> str:
        """``"type"``, ``"refine"`` or ``"flag"`` (:func:`leukview.core.roles.model_role`)."""
        return model_role(self.positive_class, self.refines)

    @property
    def openset_output(self) -> str | None:
        """The graph output of the open-set score (N,), or None."""
        return None if not self.openset else str(self.openset["output"])

    @property
    def openset_threshold(self) -> float | None:
        """Scores above this are atypical (None without an open-set score)."""
        return None if not self.openset else float(self.openset["threshold"])


def _openset(block: Any, outputs: dict[str, Any], path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The validated ``openset`` block of a sidecar (None when absent).

    ``output`` names a graph output of one score per cell, higher = more
    unlike the training cells; ``threshold`` (finite, > 0) separates
    atypical cells; ``flagged_fraction_heldout``, when given, is the fraction
    of held-out training-source cells over it, in [0, 1].
    """
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ModelError("sidecar 'openset' must be a JSON object", path)
    output = block.get("output")
    if not isinstance(output, str) or not output:
        raise ModelError("sidecar openset.output must name a graph output", path)
    if output in (outputs.get("scores", "logits"), outputs.get("features")):
        raise ModelError(f"sidecar openset.output '{output}' must differ from the scores and features", path)
    threshold = block.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or threshold <= 0:
        raise ModelError(f"sidecar openset.threshold must be a finite number > 0, got {threshold!r}", path)
    fraction = block.get("flagged_fraction_heldout")
    if fraction is not None and (
        isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0
    ):
        raise ModelError(f"sidecar openset.flagged_fraction_heldout must be in [0, 1], got {fraction!r}", path)
    return dict(block)


def read_sidecar(path: str | os.PathLike[str]) -> ModelSpec:
    """Read and validate a ``model.json`` sidecar.

    Only a regular file (or a link to one) of at most :data:`MAX_SIDECAR_BYTES`
    is read, so a link to ``/dev/zero`` or a FIFO cannot hang the app.

    Raises
    ------
    ModelError
        If the file is missing, no regular file, too large, not JSON (too deeply
        nested JSON included), or a field is missing or wrong
        (:meth:`ModelSpec.from_dict`).
    """
    path = Path(path)
    raw = read_regular_file(path, MAX_SIDECAR_BYTES, "model sidecar")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"cannot read model sidecar (not UTF-8 text: {exc.reason})", path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"model sidecar is not valid JSON (line {exc.lineno}: {exc.msg})", path
        ) from exc
    except (ValueError, RecursionError) as exc:  # a 5000-digit number, [[[[...]]]] 100000 deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise ModelError(f"model sidecar is not valid JSON ({reason})", path) from exc
    return ModelSpec.from_dict(data, path)


def check_regular_file(path: Path, limit: int, what: str) -> int:
    """Check, without opening it, that a path is a regular file (links followed) within a size.

    Returns
    -------
    size : int
        The file's size in bytes.

    Raises
    ------
    ModelError
        Named after ``what`` (e.g. ``'model sidecar'``): missing (or a link to
        nothing), unreadable, a folder, FIFO, device or socket, or larger than
        ``limit``.
    """
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise ModelError(
                f"{what} is a link to a missing file ({os.readlink(path)})", path
            ) from exc
        raise ModelError(f"{what} not found", path) from exc
    except OSError as exc:
        raise ModelError(f"cannot read {what} ({exc.strerror or exc})", path) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ModelError(f"{what} is not a regular file ({_file_kind(info.st_mode)})", path)
    if info.st_size > limit:
        raise ModelError(
            f"{what} is larger than {_size_text(limit)} ({_size_text(info.st_size)})", path
        )
    return info.st_size


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file (links followed) of at most ``limit`` bytes.

    Devices, FIFOs, folders and sockets are refused before they are opened
    (:func:`check_regular_file`); the read itself stops past ``limit`` in
    case the file grows meanwhile.

    Raises
    ------
    ModelError
        Named after ``what`` (e.g. ``'model sidecar'``).
    """
    check_regular_file(path, limit, what)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ModelError(f"cannot read {what} ({exc.strerror or exc})", path) from exc
    if len(data) > limit:
        raise ModelError(f"{what} is larger than {_size_text(limit)} (it grew while read)", path)
    return data


# -- field checks --------------------------------------------------------------

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_kind(value: object) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    """A field's value as JSON, cut short for the message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _range_text(bounds: tuple[float, float]) -> str:
    return f"from {bounds[0]:g} to {bounds[1]:g}"


def _size_text(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size} bytes"


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


class _Checker:
    """Field checks that raise a :class:`ModelError` naming the field, its value and the rule."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = path

    def fail(self, field: str, value: object, rule: str) -> NoReturn:
        raise ModelError(f"sidecar field '{field}' is {_show(value)}; {rule}", self.path)

    def need(self, mapping: dict[str, Any], key: str, where: str = "") -> Any:
        if key not in mapping:
            raise ModelError(f"model sidecar lacks '{where}{key}'", self.path)
        return mapping[key]

    def integer(self, field: str, value: object, bounds: tuple[int, int]) -> int:
        if not _is_int(value) or not bounds[0] <= value <= bounds[1]:
            self.fail(field, value, f"it must be an integer {_range_text(bounds)}")
        return int(value)

    def number(self, field: str, value: object, bounds: tuple[float, float]) -> float:
        # NaN fails both comparisons; JSON's Infinity is above every bound
        if not _is_number(value) or not bounds[0] <= value <= bounds[1]:
            self.fail(field, value, f"it must be a number {_range_text(bounds)}")
        return float(value)

    def triple(self, field: str, value: object, bounds: tuple[float, float]) -> list[float]:
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(_is_number(v) and bounds[0] <= v <= bounds[1] for v in value)
        ):
            self.fail(
                field, value, f"it must be a list of 3 numbers {_range_text(bounds)} (R, G, B)"
            )
        return [float(v) for v in value]

    def name(self, field: str, value: object, limit: int = MAX_NAME_LENGTH) -> str:
        """A name a person reads and a CSV column holds: short, one line, not blank."""
        if not isinstance(value, str) or not value.strip():
            self.fail(field, value, f"it must be non-empty text of at most {limit} characters")
        if len(value) > limit:
            self.fail(field, value, f"it must be non-empty text of at most {limit} characters")
        if _CONTROL.search(value):
            self.fail(field, value, "it must be one line of text, without control characters")
        return value

    def label(self, field: str, value: object) -> str:
        """A graph's input, output or initialiser name."""
        if not isinstance(value, str) or not value or len(value) > MAX_LABEL_LENGTH:
            self.fail(
                field, value, f"it must be non-empty text of at most {MAX_LABEL_LENGTH} characters"
            )
        return value

    def text(self, field: str, value: object) -> str:
        if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
            self.fail(field, value, f"it must be text of at most {MAX_TEXT_LENGTH} characters")
        return value

    def classes(self, value: object) -> list[str]:
        low, high = CLASS_COUNT_RANGE
        if not isinstance(value, list) or not low <= len(value) <= high:
            self.fail("classes", value, f"it must list {low} to {high} distinct class names")
        names = [self.name(f"classes[{i}]", item) for i, item in enumerate(value)]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            self.fail(
                "classes",
                value,
                f"it must list {low} to {high} distinct class names ({', '.join(twice)} twice)",
            )
        return names

"""An ONNX graph checked against its sidecar, before and after a session starts.

:func:`parse_onnx` refuses what is not a single-file ONNX model;
:func:`check_signature` compares the session's inputs and outputs with what
the sidecar says; :func:`read_cam_weights` reads the linear head named by
``cam.weight``; :func:`cam_is_exact` checks, on two inputs, that the scores
are that head applied to the averaged features; :func:`check_scores` checks,
on :func:`probe_inputs`, that the scores are finite and that declared
probabilities are probabilities. Every refusal is a
:class:`~leukview.core.errors.ModelError` a person can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from ..errors import ModelError
from ..preprocess import normalize
from ._runtime import error_line
from ._spec import ModelSpec


def _dims(shape: object) -> list[int | None]:
    """ORT shape -> list of int (static) or None (symbolic / unknown)."""
    if not isinstance(shape, (list, tuple)):
        return []
    return [d if isinstance(d, int) and d >= 0 else None for d in shape]


def _shape_text(dims: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def parse_onnx(data: bytes, where: Path) -> onnx.ModelProto:
    """Parse a model file's bytes; refuse an empty, truncated or multi-file model."""
    if not data:
        raise ModelError("model file is empty", where)
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError, RuntimeWarning, ... all mean the same
        raise ModelError(
            f"not a valid ONNX model (cannot be parsed: {error_line(exc)})", where
        ) from exc
    if not proto.graph.node or not proto.graph.output:
        raise ModelError("not a valid ONNX model (no graph, or a truncated file)", where)
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelError(
                "model keeps its weights in external files; LeukView needs a single-file model",
                where,
            )
    return proto


def read_cam_weights(proto: onnx.ModelProto, spec: ModelSpec, where: Path) -> np.ndarray:
    """The (K, C) matrix named by the sidecar's ``cam.weight`` (an initialiser or a Constant)."""
    name = spec.cam_weight
    tensor = next((t for t in proto.graph.initializer if t.name == name), None)
    if tensor is None:  # some exporters store parameters as Constant nodes
        for node in proto.graph.node:
            if node.op_type == "Constant" and node.output and node.output[0] == name:
                tensor = next((a.t for a in node.attribute if a.name == "value"), None)
    if tensor is None:
        candidates = [
            t.name
            for t in proto.graph.initializer
            if len(t.dims) == 2 and t.dims[0] == len(spec.classes)
        ]
        hint = (
            f" (2-D initialisers with {len(spec.classes)} rows: {', '.join(candidates[:5])})"
            if candidates
            else ""
        )
        raise ModelError(
            f"model has no initialiser '{name}' named in the sidecar's cam.weight{hint}", where
        )
    try:
        weights = numpy_helper.to_array(tensor).astype(np.float32)
    except Exception as exc:
        raise ModelError(f"cannot read cam weight '{name}': {error_line(exc)}", where) from exc
    if weights.ndim != 2 or weights.shape[0] != len(spec.classes):
        hint = (
            " (stored transposed? the sidecar needs the (classes, channels) matrix)"
            if (weights.ndim == 2 and weights.shape[1] == len(spec.classes))
            else ""
        )
        raise ModelError(
            f"cam weight '{name}' has shape {weights.shape}; expected ({len(spec.classes)}, channels){hint}",
            where,
        )
    return weights


def check_signature(session: ort.InferenceSession, spec: ModelSpec, where: Path) -> int | None:
    """Check a session's inputs and declared outputs against the sidecar.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    spec : ModelSpec
    where : Path
        The model file, named in errors.

    Returns
    -------
    fixed_batch : int or None
        The graph's static batch size, None when the batch is symbolic.

    Raises
    ------
    ModelError
        If an input or output the sidecar names is missing, is not float, or
        has a shape that contradicts the sidecar.
    """
    inputs = {i.name: i for i in session.get_inputs()}
    if spec.input_name not in inputs:
        raise ModelError(
            f"model has no input '{spec.input_name}' named in its sidecar (its inputs: {', '.join(inputs)})",
            where,
        )
    extra = [name for name in inputs if name != spec.input_name]
    if extra:
        raise ModelError(f"model needs inputs LeukView does not feed: {', '.join(extra)}", where)
    meta = inputs[spec.input_name]
    if meta.type != "tensor(float)":
        raise ModelError(
            f"model input '{meta.name}' is {meta.type}; LeukView feeds tensor(float)", where
        )
    dims = _dims(meta.shape)
    expected = [None, 3, spec.input_size, spec.input_size]
    if len(dims) != 4 or any(
        d is not None and e is not None and d != e for d, e in zip(dims, expected, strict=True)
    ):
        raise ModelError(
            f"model input '{meta.name}' has shape {_shape_text(dims)}, but the sidecar says "
            f"(N, 3, {spec.input_size}, {spec.input_size})",
            where,
        )
    fixed_batch = dims[0]
    outputs = {o.name: o for o in session.get_outputs()}
    wanted = [("scores", spec.scores_output)]
    if spec.features_output:
        wanted.append(("features", spec.features_output))
    for role, name in wanted:
        if name not in outputs:
            raise ModelError(
                f"model has no output '{name}' (sidecar outputs.{role}); its outputs: {', '.join(outputs)}",
                where,
            )
        if outputs[name].type != "tensor(float)":
            raise ModelError(
                f"model output '{name}' is {outputs[name].type}, not tensor(float)", where
            )
    scores = _dims(outputs[spec.scores_output].shape)
    if scores and (len(scores) != 2 or scores[1] not in (None, len(spec.classes))):
        raise ModelError(
            f"model output '{spec.scores_output}' has shape {_shape_text(scores)}, but the sidecar "
            f"lists {len(spec.classes)} classes",
            where,
        )
    if spec.features_output:
        features = _dims(outputs[spec.features_output].shape)
        if features and len(features) != 4:
            raise ModelError(
                f"features output '{spec.features_output}' has shape {_shape_text(features)}; "
                "it must be feature maps (N, C, h, w)",
                where,
            )
    return fixed_batch


def cam_is_exact(
    scores: np.ndarray,
    features: np.ndarray,
    weights: np.ndarray,
    scores_kind: str = "logits",
    rtol: float = 2e-2,
) -> bool | None:
    """Check that scores are a linear function of the averaged feature maps.

    For a global-average-pool + linear head, ``logits = W @ mean_hw(F) + b``,
    so the difference between two inputs' logits is ``W`` times the
    difference of their pooled features, whatever the bias. Probabilities
    (softmax output) are compared through their logarithms, centred over the
    classes, which removes softmax's per-row constant.

    Parameters
    ----------
    scores : ndarray of float, shape (2, K)
        Outputs for two different inputs.
    features : ndarray of float, shape (2, C, h, w)
    weights : ndarray of float, shape (K, C)
    scores_kind : {'logits', 'probabilities'}
    rtol : float
        Allowed error relative to the largest difference (room for TF32 on GPUs).

    Returns
    -------
    exact : bool or None
        None when the two inputs give (nearly) the same scores, or when
        probabilities saturate so that their logarithms say nothing.
    """
    scores = np.asarray(scores, np.float64)
    if scores_kind == "probabilities":
        if scores.min() <= 1e-6:
            return None
        scores = np.log(scores)
    pooled = np.asarray(features, np.float64).mean(axis=(2, 3))
    predicted = pooled @ np.asarray(weights, np.float64).T
    observed_diff = scores[0] - scores[1]
    predicted_diff = predicted[0] - predicted[1]
    observed_diff -= observed_diff.mean()
    predicted_diff -= predicted_diff.mean()
    scale = max(np.abs(observed_diff).max(), np.abs(predicted_diff).max())
    if scale < 1e-6:
        return None
    return bool(np.abs(observed_diff - predicted_diff).max() <= rtol * scale)


#: How far declared probabilities may stray from [0, 1] and rows from summing to 1 (rounding).
PROBABILITY_TOLERANCE = 1e-3


def probe_inputs(spec: ModelSpec, count: int = 3) -> np.ndarray:
    """Fixed test inputs: the mid-grey crop, then deterministic random crops, normalised.

    Parameters
    ----------
    spec : ModelSpec
        Its input size, mean and std.
    count : int
        Number of crops (at least 1).

    Returns
    -------
    batch : ndarray of float32, shape (count, 3, S, S)
        What :func:`~leukview.core.preprocess.normalize` makes of uint8 crops:
        the first all 128, the others uniform noise from a fixed seed.
    """
    size = spec.input_size
    crops = np.random.default_rng(20240).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    crops[0] = 128
    return normalize(crops, spec.mean, spec.std)


def check_scores(scores: np.ndarray, spec: ModelSpec, where: Path) -> None:
    """Refuse scores that are not what the sidecar's ``outputs.scores_kind`` says.

    Logits may be any finite numbers (probabilities declared as logits cannot
    be told apart reliably, and softmax is harmless on them); declared
    ``probabilities`` must lie in [0, 1] and sum to 1 per row, within
    :data:`PROBABILITY_TOLERANCE`: a logits output declared as probabilities
    would otherwise be clipped and renormalised into confident nonsense.

    Parameters
    ----------
    scores : ndarray of float, shape (N, K)
        The scores output for test inputs (e.g. :func:`probe_inputs`).
    spec : ModelSpec
    where : Path
        The model file, named in errors.

    Raises
    ------
    ModelError
        If the scores are not one row of K per input, a score is NaN or
        infinite, or declared probabilities are not.
    """
    scores = np.asarray(scores, np.float64)
    name = spec.scores_output
    if scores.ndim != 2 or scores.shape[1] != len(spec.classes):
        raise ModelError(
            f"model output '{name}' gives shape {scores.shape[1:]} per cell, but the sidecar "
            f"lists {len(spec.classes)} classes",
            where,
        )
    if not np.isfinite(scores).all():
        raise ModelError(
            f"model output '{name}' gives non-finite scores (NaN or infinity) on test crops", where
        )
    if spec.scores_kind != "probabilities" or scores.size == 0:
        return
    sums = scores.sum(axis=1)
    tol = PROBABILITY_TOLERANCE
    if scores.min() >= -tol and scores.max() <= 1 + tol and np.abs(sums - 1).max() <= tol:
        return
    raise ModelError(
        f"the sidecar's outputs.scores_kind 'probabilities' does not fit output '{name}': on test "
        f"crops it gives values from {scores.min():.4g} to {scores.max():.4g}, rows summing to "
        f"{sums.min():.4g} to {sums.max():.4g}, which are not probabilities (each in [0, 1], each "
        f"row summing to 1 within {tol:g}); if the output is logits, the sidecar must say 'logits'",
        where,
    )

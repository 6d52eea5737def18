"""ONNX white-cell classifiers: loading, validation, batched inference, CAMs.

A model is a folder ``models/<name>/`` holding ``model.onnx`` and its sidecar
``model.json`` (:mod:`leukview.core.models`). :meth:`Classifier.load`
refuses a model whose file does not match its sidecar, or whose graph does
not match what the sidecar says (input name and size, outputs, number of
classes, feature maps, classifier weights), with a :class:`ModelError` that
a person can read. Sessions start through
:func:`~leukview.core.models.create_session`; the provider a model really
runs on is :attr:`Classifier.provider`.

Class-activation maps
---------------------
Each :class:`~leukview.core.cells.Prediction` carries the map of its label
on the model's feature grid (:mod:`leukview.core.explain`); it is exact for
a global-average-pool + linear head whose weights the sidecar names as
``cam.weight``. At load time the classifier checks this identity on two
random inputs and records the result in :attr:`Classifier.cam_exact`.
Without ``cam.weight`` (e.g. a gradient-boosted head) the map is the channel
mean of the features: where the network responds, not what speaks for the
class.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import explain
from ..cells import Cell, Prediction
from ..errors import ModelError
from ..preprocess import crop_box, preprocess_cells
from ..progress import CancelCheck, ProgressCallback, checkpoint
from ._graph import (
    cam_is_exact,
    check_scores,
    check_signature,
    parse_onnx,
    probe_inputs,
    read_cam_weights,
)
from ._runtime import CPU, create_session, error_line, select_providers
from ._spec import (
    MAX_MODEL_BYTES,
    MODEL_FILE,
    SIDECAR_FILE,
    ModelSpec,
    read_regular_file,
    read_sidecar,
)

log = logging.getLogger(__name__)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax.

    Parameters
    ----------
    scores : ndarray of float, shape (N, K)

    Returns
    -------
    probabilities : ndarray of float32, shape (N, K), rows summing to 1
    """
    scores = np.asarray(scores, np.float64)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def sha256_of(data: bytes) -> str:
    """Hex SHA-256 digest of a model file's bytes (what the sidecar records)."""
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# the classifier


class Classifier:
    """One loaded, validated ONNX model and its sidecar.

    Build it with :meth:`load`. Sessions are safe to share between threads.

    Attributes
    ----------
    spec : ModelSpec
        The sidecar.
    provider : str
        Execution provider the session really runs on, e.g.
        ``'CPUExecutionProvider'`` or ``'CUDAExecutionProvider'``.
    path : Path
        The model's folder.
    cam_weights : ndarray of float32, shape (K, C), or None
        The linear head's weights named by ``cam.weight``.
    cam_exact : bool or None
        Whether the scores were verified, on random inputs, to be a linear
        function of the averaged features with ``cam_weights`` (so the CAM
        decomposes the logits exactly); None when this could not be checked.
    feature_shape : tuple of int or None
        (C, h, w) of the feature output at the sidecar's input size.
    """

    def __init__(
        self,
        spec: ModelSpec,
        session: ort.InferenceSession,
        path: Path,
        model_bytes: bytes,
        cam_weights: np.ndarray | None = None,
    ) -> None:
        self.spec = spec
        self.session = session
        self.path = path
        self.cam_weights = cam_weights
        self.cam_exact: bool | None = None
        self.feature_shape: tuple[int, int, int] | None = None
        self.fixed_batch: int | None = None  # batch size of a graph exported with a static batch
        # kept to rebuild a CPU session if the GPU fails at run time
        self._bytes = model_bytes if session.get_providers()[0] != CPU else None

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def __repr__(self) -> str:
        return f"Classifier({self.spec.name!r} {self.spec.version}, {len(self.spec.classes)} classes, {self.provider})"

    # -- loading ------------------------------------------------------------

    @classmethod
    def load(
        cls, model_dir: str | os.PathLike[str], providers: Sequence[str] | None = None
    ) -> Classifier:
        """Load and validate ``model_dir/model.onnx`` against ``model_dir/model.json``.

        Parameters
        ----------
        model_dir : path
            The model's folder (a path to its ``model.onnx`` or
            ``model.json`` is accepted too).
        providers : sequence of str, optional
            onnxruntime execution providers; :func:`select_providers` when None.

        Returns
        -------
        Classifier

        Raises
        ------
        ModelError
            If a file is missing, unreadable, empty, no regular file (a FIFO,
            a device; a link to a regular file is followed) or larger than
            :data:`MAX_MODEL_BYTES`, the model file does not match the
            sidecar's sha256, the file is not an ONNX model, or the graph
            does not match the sidecar.
        """
        folder = Path(model_dir)
        if folder.is_file() and folder.name in (MODEL_FILE, SIDECAR_FILE):
            folder = folder.parent
        if not folder.is_dir():
            raise ModelError("model folder not found", folder)
        onnx_path = folder / MODEL_FILE
        spec = read_sidecar(folder / SIDECAR_FILE)
        if not os.path.lexists(onnx_path):
            raise ModelError(f"{MODEL_FILE} not found beside its sidecar", onnx_path)
        # a link is followed (its bytes must still match the sha256); a FIFO or a device is not read
        data = read_regular_file(onnx_path, MAX_MODEL_BYTES, "model file")
        if not data:
            raise ModelError("model file is empty (0 bytes)", onnx_path)
        if not spec.sha256:
            raise ModelError("model sidecar has no sha256 of its model file", folder / SIDECAR_FILE)
        digest = sha256_of(data)
        if digest.lower() != spec.sha256.strip().lower():
            raise ModelError(
                f"model file does not match its sidecar (sha256 {digest[:12]}... on disk, "
                f"{spec.sha256[:12]}... in {SIDECAR_FILE}): damaged, or replaced without its sidecar",
                onnx_path,
            )
        proto = parse_onnx(data, onnx_path)
        session = create_session(
            data, list(providers) if providers is not None else select_providers(), where=onnx_path
        )
        classifier = cls(spec, session, folder, data)
        classifier.fixed_batch = check_signature(session, spec, onnx_path)
        if spec.cam_weight:
            classifier.cam_weights = read_cam_weights(proto, spec, onnx_path)
        del proto
        classifier._check_outputs(onnx_path)
        return classifier

    def _check_outputs(self, where: Path) -> None:
        """Run test inputs: real output shapes, scores as declared, whether the CAM is exact.

        Two random inputs check the shapes and the CAM; they and the probe crops
        (:func:`probe_inputs`: mid-grey, fixed noise) must give finite scores,
        and probabilities where the sidecar says so (:func:`check_scores`).
        """
        spec = self.spec
        rng = np.random.default_rng(0)
        batch = rng.normal(0.0, 1.0, (2, 3, spec.input_size, spec.input_size)).astype(np.float32)
        try:
            scores, features = self.run(batch, with_features=True)
            probe, _ = self.run(probe_inputs(spec), with_features=False)
        except ModelError:
            raise
        except Exception as exc:  # e.g. an operator that fails on the sidecar's input size
            raise ModelError(f"model fails on a test input: {error_line(exc)}", where) from exc
        if scores.shape != (2, len(spec.classes)):
            raise ModelError(
                f"model output '{spec.scores_output}' gives shape {scores.shape[1:]} per cell, but the "
                f"sidecar lists {len(spec.classes)} classes",
                where,
            )
        for test_scores in (probe, scores):  # a logits output declared as probabilities is refused
            check_scores(test_scores, spec, where)
        if spec.openset_output:
            self._check_openset(batch, where)
        if features is None:
            return
        if features.ndim != 4 or features.shape[0] != 2:
            raise ModelError(
                f"features output '{spec.features_output}' has shape {features.shape}; "
                "it must be feature maps (N, C, h, w)",
                where,
            )
        self.feature_shape = tuple(int(v) for v in features.shape[1:])  # type: ignore[assignment]
        weights = self.cam_weights
        if weights is None:
            return
        if weights.shape[1] != features.shape[1]:
            raise ModelError(
                f"cam weight '{spec.cam_weight}' has shape {weights.shape}, but the features have "
                f"{features.shape[1]} channels: expected ({len(spec.classes)}, {features.shape[1]})",
                where,
            )
        self.cam_exact = cam_is_exact(scores, features, weights, spec.scores_kind)
        if self.cam_exact is False:
            log.warning(
                "%s: the scores are not a linear function of the averaged features with '%s'; "
                "its class-activation maps are approximate",
                spec.name,
                spec.cam_weight,
            )

    def _check_openset(self, batch: np.ndarray, where: Path) -> None:
        """The sidecar's open-set output exists and gives one score per cell."""
        name = self.spec.openset_output
        declared = [o.name for o in self.session.get_outputs()]
        if name not in declared:
            raise ModelError(
                f"sidecar openset.output '{name}' is not an output of the graph (outputs: {', '.join(declared)})",
                where,
            )
        try:
            (score,) = self.run_outputs(batch, [str(name)])
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"open-set output '{name}' fails on a test input: {error_line(exc)}", where) from exc
        if score.size != 2 or score.shape[0] != 2:
            raise ModelError(
                f"open-set output '{name}' gives shape {score.shape[1:]} per cell; it must be one score per cell",
                where,
            )

    # -- inference ----------------------------------------------------------

    def run(
        self, batch: np.ndarray, with_features: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw model outputs for a normalised batch.

        Parameters
        ----------
        batch : ndarray of float32, shape (N, 3, S, S)
            From :func:`leukview.core.preprocess.preprocess_cells`.
        with_features : bool
            Also return the feature maps (when the sidecar names them).

        Returns
        -------
        scores : ndarray of float32, shape (N, K)
            Logits or probabilities, as ``spec.scores_kind`` says.
        features : ndarray of float32, shape (N, C, h, w), or None
        """
        spec = self.spec
        names = [spec.scores_output]
        if with_features and spec.features_output:
            names.append(spec.features_output)
        outputs = self.run_outputs(batch, names)
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def run_outputs(self, batch: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
        """The named graph outputs for a normalised batch (N, 3, S, S), as float32 arrays.

        A graph with a fixed batch is fed chunks of that size; a GPU failure
        moves the model to the CPU and runs again.
        """
        spec = self.spec
        names = list(names)
        batch = np.ascontiguousarray(batch, np.float32)
        count = len(batch)
        if self.fixed_batch and count != self.fixed_batch:
            # a graph exported with a fixed batch: feed it chunks of that size, padding the last
            chunks = [self.run_outputs(part, names) for part in _padded_chunks(batch, self.fixed_batch)]
            return [np.concatenate([c[i] for c in chunks])[:count] for i in range(len(names))]
        try:
            outputs = self.session.run(names, {spec.input_name: batch})
        except Exception as exc:
            if self.provider == CPU:
                raise ModelError(f"model failed: {error_line(exc)}", self.path) from exc
            log.warning(
                "%s failed on %s (%s); continuing on the CPU",
                spec.name,
                self.provider,
                error_line(exc),
            )
            data = self._bytes or (self.path / MODEL_FILE).read_bytes()
            self.session = create_session(data, [CPU], where=self.path / MODEL_FILE)
            self._bytes = None
            outputs = self.session.run(names, {spec.input_name: batch})
        return [np.asarray(out, np.float32) for out in outputs]

    def predict(
        self,
        image: np.ndarray,
        cells: Sequence[Cell],
        *,
        batch_size: int = 32,
        with_cam: bool = True,
        should_cancel: CancelCheck | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Prediction]:
        """Classify cells of an image, with a class-activation map per cell.

        Parameters
        ----------
        image : ndarray of uint8, shape (H, W, 3)
            RGB field the cells were found in.
        cells : sequence of Cell
            Cropped by the sidecar's crop rule
            (:func:`leukview.core.preprocess.preprocess_cells`).
        batch_size : int
            Cells per inference call.
        with_cam : bool
            Compute ``Prediction.cam`` (float32 (h, w) in [0, 1], on the
            model's feature grid) and ``Prediction.cam_box`` (the crop square
            in image pixels); both None otherwise or when the model has no
            features output.
        should_cancel : callable() -> bool, optional
            Polled before each batch; True raises
            :class:`leukview.core.progress.AnalysisCancelled`.
        progress : callable(fraction, message), optional
            Told before each batch the fraction of the cells done, and 1.0 at the end.

        Returns
        -------
        predictions : list of Prediction
            One per cell, in order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        spec = self.spec
        results: list[Prediction] = []
        total = len(cells)
        for start in range(0, total, batch_size):
            message = f"{spec.name}: cells {start + 1}-{min(start + batch_size, total)} of {total}"
            checkpoint(progress, should_cancel, start / total, message)
            part = cells[start : start + batch_size]
            batch = preprocess_cells(image, part, spec.crop, spec.input_size, spec.mean, spec.std)
            want_cam = with_cam and spec.features_output is not None
            names = [spec.scores_output]
            if want_cam and spec.features_output:
                names.append(spec.features_output)
            openset, threshold = spec.openset_output, spec.openset_threshold
            outputs = self.run_outputs(batch, names + ([openset] if openset else []))
            scores = outputs[0]
            features = outputs[1] if len(names) > 1 else None
            # the open-set score as a multiple of its threshold: above 1 is atypical
            atypicality = (
                outputs[-1].reshape(len(part)) / threshold if openset and threshold else None
            )
            probabilities = (
                softmax(scores) if spec.scores_kind == "logits" else _as_probabilities(scores)
            )
            for index, cell in enumerate(part):
                row = probabilities[index]
                best = int(np.argmax(row))
                cam = box = None
                if features is not None:
                    if self.cam_weights is not None:
                        cam = explain.class_activation_map(features[index], self.cam_weights, best)
                    else:
                        cam = explain.feature_activation_map(features[index])
                    box = tuple(float(v) for v in crop_box(cell, spec.crop))
                results.append(
                    Prediction(
                        label=spec.classes[best],
                        probabilities={
                            name: float(p) for name, p in zip(spec.classes, row, strict=True)
                        },
                        cam=cam,
                        cam_box=box,  # type: ignore[arg-type]
                        atypicality=None if atypicality is None else _finite(atypicality[index]),
                    )
                )
        if progress is not None:
            progress(1.0, f"{spec.name}: {total} cells classified")
        return results


def _finite(value: float) -> float:
    # a NaN score (a blank crop, an overflow) is as unlike the training cells as it gets
    value = float(value)
    return value if np.isfinite(value) else float("inf")


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    # A probabilities output may drift from 1 by rounding (or by an ML head's calibration).
    scores = np.clip(np.nan_to_num(np.asarray(scores, np.float32)), 0.0, None)
    total = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / scores.shape[1])
    return np.where(total > 0, scores / np.where(total > 0, total, 1.0), uniform).astype(np.float32)


def _padded_chunks(batch: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(batch), size):
        part = batch[start : start + size]
        if len(part) < size:
            pad = np.zeros((size - len(part), *part.shape[1:]), part.dtype)
            part = np.concatenate([part, pad])
        yield part

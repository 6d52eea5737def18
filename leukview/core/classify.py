"""ONNX white-cell classifiers: loading, validation, batched inference, CAMs.

A model is a folder ``models/<name>/`` holding ``model.onnx`` and its sidecar
``model.json`` (:mod:`leukview.core.modelspec`). :meth:`Classifier.load`
refuses a model whose file does not match its sidecar, or whose graph does
not match what the sidecar says (input name and size, outputs, number of
classes, feature maps, classifier weights), with a :class:`ModelError` that
a person can read.

Execution providers
-------------------
:func:`select_providers` returns an explicit list: CUDA first only when
onnxruntime offers it *and* a probe session really runs on it, else the CPU
alone. The environment variable ``LEUKVIEW_PROVIDER`` overrides the choice:
``cpu`` forces the CPU; ``cuda`` asks for CUDA even when the caller prefers
the CPU (with a logged warning and the CPU when CUDA does not work);
``auto`` or unset is the default. ``LEUKVIEW_THREADS`` overrides the number
of intra-op threads, which is otherwise the number of physical cores
(:func:`physical_cores`). The provider a model really runs on is
:attr:`Classifier.provider`.

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

import contextlib
import hashlib
import io
import logging
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from . import explain
from .cells import Cell, Prediction
from .errors import ModelError
from .modelspec import ModelSpec, read_sidecar
from .paths import models_dir as default_models_dir
from .preprocess import crop_box, preprocess_cells
from .progress import CancelCheck, ProgressCallback, checkpoint

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
PROVIDER_ENV = "LEUKVIEW_PROVIDER"
THREADS_ENV = "LEUKVIEW_THREADS"

# onnxruntime logs warnings (unused initialisers, CUDA libraries it cannot
# find) straight to stderr; a pathologist should see none of it.
_ORT_SEVERITY = 3  # errors only
_SILENT = 4  # fatal only
ort.set_default_logger_severity(_ORT_SEVERITY)

# ---------------------------------------------------------------------------
# threads and providers


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Number of physical CPU cores this process may use.

    Hyper-threads share a core's arithmetic units, so one intra-op thread
    per physical core is as fast as one per logical CPU and leaves the
    siblings to the GUI. Linux: the distinct (package, core) pairs of the
    CPUs in this process's affinity mask (sysfs, else ``/proc/cpuinfo``),
    capped by a cgroup CPU quota. macOS: ``hw.physicalcpu``. Elsewhere
    (Windows): half the logical CPUs, assuming two threads per core.
    ``$LEUKVIEW_THREADS`` overrides all of this.

    Returns
    -------
    n : int
        At least 1.
    """
    override = os.environ.get(THREADS_ENV, "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            log.warning("ignoring %s=%r: not an integer", THREADS_ENV, override)
    logical = os.cpu_count() or 1
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(logical))
    count: int | None = None
    if sys.platform.startswith("linux"):
        count = _linux_cores(allowed)
        quota = _cgroup_cpu_limit()
        if count is not None and quota is not None:
            count = min(count, quota)
    elif sys.platform == "darwin":
        with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
            out = subprocess.run(
                ["sysctl", "-n", "hw.physicalcpu"],
                capture_output=True,
                text=True,
                timeout=2,
                check=True,
            )
            count = int(out.stdout.strip())
    else:
        count = logical // 2
    return max(1, count if count else len(allowed))


def _linux_cores(cpus: Sequence[int]) -> int | None:
    pairs = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            pairs.add(
                (
                    (topo / "physical_package_id").read_text().strip(),
                    (topo / "core_id").read_text().strip(),
                )
            )
        except OSError:
            pairs = set()
            break
    if pairs:
        return len(pairs)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    wanted = set(cpus)
    for block in text.split("\n\n"):
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(":") for line in block.splitlines())
        )
        processor = fields.get("processor", "")
        if processor.isdigit() and int(processor) in wanted and "core id" in fields:
            pairs.add((fields.get("physical id", "0"), fields["core id"]))
    return len(pairs) or None


def _cgroup_cpu_limit() -> int | None:
    # A container limited to 2 CPUs on a 64-core host still sees 64 in its affinity mask.
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return None


def session_options() -> ort.SessionOptions:
    """Session options LeukView runs every model with.

    Returns
    -------
    options : onnxruntime.SessionOptions
        ``intra_op_num_threads`` = :func:`physical_cores`, one inter-op
        thread (the graphs are sequential), every graph optimisation,
        errors-only logging.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = _ORT_SEVERITY
    return options


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """Keep onnxruntime's own chatter (C++ log, EP fallback prints, warnings) from the user."""
    captured = io.StringIO()
    ort.set_default_logger_severity(_SILENT)
    try:
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        ort.set_default_logger_severity(_ORT_SEVERITY)
        if captured.getvalue().strip():
            log.debug("onnxruntime said: %s", captured.getvalue().strip())


def _probe_model() -> bytes:
    # A convolution exercises cuDNN, which is what goes missing on half-installed CUDA machines.
    weight = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 8, 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


@lru_cache(maxsize=1)
def cuda_works() -> bool:
    """Whether a session really starts and runs on onnxruntime's CUDA provider.

    ``onnxruntime-gpu`` lists CUDA even when the CUDA or cuDNN libraries are
    missing, and then falls back to the CPU with a screenful of errors; this
    probe runs a small convolution with that noise silenced. Cached.
    """
    if CUDA not in ort.get_available_providers():
        return False
    try:
        with _quiet_onnxruntime():
            options = ort.SessionOptions()
            options.log_severity_level = _SILENT
            session = ort.InferenceSession(_probe_model(), options, providers=[CUDA, CPU])
            if session.get_providers()[0] != CUDA:
                return False
            session.disable_fallback()
            out = session.run(None, {"x": np.ones((1, 3, 8, 8), np.float32)})[0]
        return bool(np.allclose(out[0, 0, 4, 4], 27.0))
    except Exception as exc:  # any failure at all means: not usable
        log.debug("CUDA probe failed: %s", exc)
        return False


def select_providers(prefer_gpu: bool = True) -> list[str]:
    """The execution providers to run models with, best first.

    Parameters
    ----------
    prefer_gpu : bool
        Try CUDA first. ``$LEUKVIEW_PROVIDER`` (``cpu``, ``cuda``, ``auto``)
        overrides this.

    Returns
    -------
    providers : list of str
        ``['CUDAExecutionProvider', 'CPUExecutionProvider']`` when CUDA
        really works (:func:`cuda_works`), else ``['CPUExecutionProvider']``.
    """
    choice = os.environ.get(PROVIDER_ENV, "").strip().lower()
    if choice not in ("", "auto", "cpu", "cuda"):
        log.warning("ignoring %s=%r (expected cpu, cuda or auto)", PROVIDER_ENV, choice)
        choice = "auto"
    if choice == "cpu" or (not prefer_gpu and choice != "cuda"):
        return [CPU]
    if cuda_works():
        return [CUDA, CPU]
    if choice == "cuda":
        log.warning("%s=cuda, but CUDA does not work on this machine: using the CPU", PROVIDER_ENV)
    return [CPU]


# ---------------------------------------------------------------------------
# pure helpers


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    # "[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model ... failed:..." -> the reason only
    if line.startswith("[ONNXRuntimeError]"):
        line = line.split(" : ", 3)[-1]
    return line[:300]


def _dims(shape: object) -> list[int | None]:
    """ORT shape -> list of int (static) or None (symbolic / unknown)."""
    if not isinstance(shape, (list, tuple)):
        return []
    return [d if isinstance(d, int) and d >= 0 else None for d in shape]


def _shape_text(dims: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


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
            If a file is missing or unreadable, the model file does not match
            the sidecar's sha256, the file is not an ONNX model, or the graph
            does not match the sidecar.
        """
        folder = Path(model_dir)
        if folder.is_file() and folder.name in (MODEL_FILE, SIDECAR_FILE):
            folder = folder.parent
        if not folder.is_dir():
            raise ModelError("model folder not found", folder)
        onnx_path = folder / MODEL_FILE
        spec = read_sidecar(folder / SIDECAR_FILE)
        try:
            data = onnx_path.read_bytes()
        except FileNotFoundError as exc:
            raise ModelError(f"{MODEL_FILE} not found beside its sidecar", onnx_path) from exc
        except OSError as exc:
            raise ModelError(f"cannot read model file ({exc.strerror or exc})", onnx_path) from exc
        if not spec.sha256:
            raise ModelError("model sidecar has no sha256 of its model file", folder / SIDECAR_FILE)
        digest = sha256_of(data)
        if digest.lower() != spec.sha256.strip().lower():
            raise ModelError(
                f"model file does not match its sidecar (sha256 {digest[:12]}... on disk, "
                f"{spec.sha256[:12]}... in {SIDECAR_FILE}): damaged, or replaced without its sidecar",
                onnx_path,
            )
        proto = _parse_onnx(data, onnx_path)
        session = _make_session(
            data, list(providers) if providers is not None else select_providers(), onnx_path
        )
        classifier = cls(spec, session, folder, data)
        classifier._check_signature(onnx_path)
        if spec.cam_weight:
            classifier.cam_weights = _cam_weights(proto, spec, onnx_path)
        del proto
        classifier._check_outputs(onnx_path)
        return classifier

    def _check_signature(self, where: Path) -> None:
        spec = self.spec
        inputs = {i.name: i for i in self.session.get_inputs()}
        if spec.input_name not in inputs:
            raise ModelError(
                f"model has no input '{spec.input_name}' named in its sidecar (its inputs: {', '.join(inputs)})",
                where,
            )
        extra = [name for name in inputs if name != spec.input_name]
        if extra:
            raise ModelError(
                f"model needs inputs LeukView does not feed: {', '.join(extra)}", where
            )
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
        self.fixed_batch = dims[0]
        outputs = {o.name: o for o in self.session.get_outputs()}
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

    def _check_outputs(self, where: Path) -> None:
        """Run two random inputs: real output shapes, and whether the CAM is exact."""
        spec = self.spec
        rng = np.random.default_rng(0)
        batch = rng.normal(0.0, 1.0, (2, 3, spec.input_size, spec.input_size)).astype(np.float32)
        try:
            scores, features = self.run(batch, with_features=True)
        except ModelError:
            raise
        except Exception as exc:  # e.g. an operator that fails on the sidecar's input size
            raise ModelError(f"model fails on a test input: {_first_line(exc)}", where) from exc
        if scores.shape != (2, len(spec.classes)):
            raise ModelError(
                f"model output '{spec.scores_output}' gives shape {scores.shape[1:]} per cell, but the "
                f"sidecar lists {len(spec.classes)} classes",
                where,
            )
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
        batch = np.ascontiguousarray(batch, np.float32)
        count = len(batch)
        if self.fixed_batch and count != self.fixed_batch:
            # a graph exported with a fixed batch: feed it chunks of that size, padding the last
            chunks = [
                self.run(part, with_features) for part in _padded_chunks(batch, self.fixed_batch)
            ]
            scores = np.concatenate([c[0] for c in chunks])[:count]
            features = (
                np.concatenate([c[1] for c in chunks])[:count] if chunks[0][1] is not None else None
            )
            return scores, features
        try:
            outputs = self.session.run(names, {spec.input_name: batch})
        except Exception as exc:
            if self.provider == CPU:
                raise ModelError(f"model failed: {_first_line(exc)}", self.path) from exc
            log.warning(
                "%s failed on %s (%s); continuing on the CPU",
                spec.name,
                self.provider,
                _first_line(exc),
            )
            data = self._bytes or (self.path / MODEL_FILE).read_bytes()
            self.session = _make_session(data, [CPU], self.path / MODEL_FILE)
            self._bytes = None
            outputs = self.session.run(names, {spec.input_name: batch})
        scores = np.asarray(outputs[0], np.float32)
        features = np.asarray(outputs[1], np.float32) if len(outputs) > 1 else None
        return scores, features

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
            scores, features = self.run(batch, with_features=want_cam)
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
                    )
                )
        if progress is not None:
            progress(1.0, f"{spec.name}: {total} cells classified")
        return results


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


def _parse_onnx(data: bytes, where: Path) -> onnx.ModelProto:
    if not data:
        raise ModelError("model file is empty", where)
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError, RuntimeWarning, ... all mean the same
        raise ModelError(
            f"not a valid ONNX model (cannot be parsed: {_first_line(exc)})", where
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


def _cam_weights(proto: onnx.ModelProto, spec: ModelSpec, where: Path) -> np.ndarray:
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
        raise ModelError(f"cannot read cam weight '{name}': {_first_line(exc)}", where) from exc
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


def _make_session(data: bytes, providers: list[str], where: Path) -> ort.InferenceSession:
    available = set(ort.get_available_providers())
    wanted = [p for p in providers if p in available] or [CPU]
    try:
        with _quiet_onnxruntime():
            session = ort.InferenceSession(data, session_options(), providers=wanted)
    except Exception as exc:
        if wanted != [CPU]:
            log.warning(
                "cannot start %s on %s (%s); using the CPU", where, wanted[0], _first_line(exc)
            )
            return _make_session(data, [CPU], where)
        raise ModelError(f"onnxruntime cannot load the model: {_first_line(exc)}", where) from exc
    # run-time provider failures raise (Classifier.run falls back) instead of printing to stdout
    session.disable_fallback()
    return session


# ---------------------------------------------------------------------------
# installed models


def find_models(models_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders of installed models (those holding a ``model.json``), sorted by name.

    Parameters
    ----------
    models_dir : path, optional
        Defaults to :func:`leukview.core.paths.models_dir`.

    Returns
    -------
    folders : list of Path
        Empty when the folder does not exist.
    """
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / SIDECAR_FILE).is_file()), key=lambda p: p.name)


def load_models(
    names: Sequence[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    providers: Sequence[str] | None = None,
) -> list[Classifier]:
    """Load installed models.

    Parameters
    ----------
    names : sequence of str, optional
        Folder names (or sidecar names) to load, in this order; every
        installed model when None.
    models_dir : path, optional
        Defaults to :func:`leukview.core.paths.models_dir`.
    providers : sequence of str, optional
        Chosen once by :func:`select_providers` when None.

    Returns
    -------
    classifiers : list of Classifier

    Raises
    ------
    ModelError
        If a name is not installed (the message lists those that are), or a
        model fails to load.
    """
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    folders = find_models(root)
    if providers is None:
        providers = select_providers()
    if names is None:
        return [Classifier.load(folder, providers) for folder in folders]
    by_name = {folder.name: folder for folder in folders}
    chosen = []
    for name in names:
        folder = by_name.get(name)
        if folder is None:  # maybe the sidecar's name differs from its folder's
            for candidate in folders:
                with contextlib.suppress(ModelError):
                    if read_sidecar(candidate / SIDECAR_FILE).name == name:
                        folder = candidate
                        break
        if folder is None:
            installed = ", ".join(sorted(by_name)) or "none"
            raise ModelError(f"no model named '{name}' (installed: {installed})", root)
        chosen.append(folder)
    return [Classifier.load(folder, providers) for folder in chosen]

"""onnxruntime as LeukView runs it: providers, threads, session options, sessions.

Execution providers
-------------------
:func:`select_providers` returns an explicit list: CUDA first only when
onnxruntime offers it *and* a probe session really runs on it
(:func:`cuda_works`), else the CPU alone. The environment variable
``LEUKVIEW_PROVIDER`` overrides the choice: ``cpu`` forces the CPU; ``cuda``
asks for CUDA even when the caller prefers the CPU (with a logged warning and
the CPU when CUDA does not work); ``auto`` or unset is the default.

Threads
-------
``LEUKVIEW_THREADS`` overrides the number of intra-op threads, which is
otherwise the number of physical cores (:func:`physical_cores`).

Sessions
--------
:func:`create_session` is the one place that starts an
``onnxruntime.InferenceSession``: with :func:`session_options`, onnxruntime's
own chatter silenced, the CPU when the wanted provider cannot start, and
readable :class:`~leukview.core.errors.ModelError` messages.
"""

from __future__ import annotations

import contextlib
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

from ..errors import ModelError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PROVIDER_ENV = "LEUKVIEW_PROVIDER"
THREADS_ENV = "LEUKVIEW_THREADS"
#: "1" lets onnxruntime's idle intra-op threads spin (they sleep by default).
SPIN_ENV = "LEUKVIEW_ORT_SPIN"

# onnxruntime logs warnings (unused initialisers, CUDA libraries it cannot
# find) straight to stderr; a pathologist should see none of it.
_ORT_SEVERITY = 3  # errors only
_SILENT = 4  # fatal only
ort.set_default_logger_severity(_ORT_SEVERITY)


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
        errors-only logging, no spinning of idle threads (``LEUKVIEW_ORT_SPIN=1``
        lets them spin).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = _ORT_SEVERITY
    if os.environ.get(SPIN_ENV, "").strip() != "1":
        # idle intra-op threads sleep instead of spinning: the same speed on a batch, and the CPU goes to
        # the segmentation, the GUI and the other workers (a 44 Mpx slide: 15.0 / 14.6 s of CPU instead of
        # 18.0 / 16.8 s, wall 12.8 / 12.5 s instead of 14.2 / 13.0 s, two pairs on an idle 2-core host)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[None]:
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
        with quiet_onnxruntime():
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


def error_line(exc: BaseException) -> str:
    """The first line of an exception's message, without onnxruntime's prefix, for a person."""
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    # "[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model ... failed:..." -> the reason only
    if line.startswith("[ONNXRuntimeError]"):
        line = line.split(" : ", 3)[-1]
    return line[:300]


def create_session(
    model: bytes | str | os.PathLike[str],
    providers: Sequence[str] | None = None,
    *,
    where: str | os.PathLike[str] | None = None,
) -> ort.InferenceSession:
    """Start an onnxruntime session for a model, as LeukView runs every model.

    Parameters
    ----------
    model : bytes or path
        The ONNX file, or its bytes.
    providers : sequence of str, optional
        Wanted execution providers, best first; :func:`select_providers` when
        None. Those this onnxruntime lacks are dropped; when the first cannot
        start the session (a logged warning), the CPU is used.
    where : path, optional
        The file to name in errors (defaults to ``model`` when it is a path).

    Returns
    -------
    session : onnxruntime.InferenceSession
        With :func:`session_options`; fallback disabled, so that a provider
        failing at run time raises instead of printing to stdout.

    Raises
    ------
    ModelError
        If onnxruntime cannot load the model even on the CPU.
    """
    if where is None and not isinstance(model, bytes):
        where = model
    source = model if isinstance(model, bytes) else os.fspath(model)
    wanted_list = list(providers) if providers is not None else select_providers()
    available = set(ort.get_available_providers())
    wanted = [p for p in wanted_list if p in available] or [CPU]
    try:
        with quiet_onnxruntime():
            session = ort.InferenceSession(source, session_options(), providers=wanted)
    except Exception as exc:
        if wanted != [CPU]:
            log.warning(
                "cannot start %s on %s (%s); using the CPU", where, wanted[0], error_line(exc)
            )
            return create_session(model, [CPU], where=where)
        raise ModelError(f"onnxruntime cannot load the model: {error_line(exc)}", where) from exc
    session.disable_fallback()
    return session

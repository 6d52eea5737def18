"""Size of the built bundle and how fast it starts (Linux).

    python bench/bench_bundle.py [dist/leukview] [--runs 5]

Prints:

- the bundle size (every file once, links not followed; MiB as ``du -sh`` counts them) and its
  largest parts;
- ``--version``: process start to exit, i.e. the bootloader and interpreter start-up, the floor
  under every other figure;
- ``analyze``: the headless analysis of the bundled sample, process start to exit;
- time to first window: process start until ``--screenshot`` has written its PNG, with
  ``QT_QPA_PLATFORM=offscreen``. The screenshot is taken after the window was shown *and* the
  sample analysed, so this is an upper bound of the time to the first window.

Each time is the median of ``--runs`` runs (the min and max are printed too), the first run
being a warm-up that is not counted (it fills the OS file cache, as any earlier use of the
PC would have). Runs happen in a clean environment (no Python on PATH, a temporary HOME).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "installer"))

import bundlecheck  # noqa: E402

SAMPLE = Path("_internal") / "resources" / "samples" / "BloodImage_00214.jpg"


def size_report(bundle: Path, top: int = 8) -> None:
    total = bundlecheck.bundle_size_bytes(bundle)
    parts: dict[str, int] = defaultdict(int)
    for path in bundlecheck.bundle_files(bundle):
        rel = path.relative_to(bundle).parts
        if rel[0] == "_internal":
            key = f"_internal/{rel[1]}" if len(rel) > 2 else "_internal/*.so* (shared libraries)"
        else:
            key = rel[0]
        parts[key] += path.lstat().st_size
    print(f"bundle: {bundle}")
    print(
        f"bundle size: {total / 2**20:.0f} MiB ({total / 1e6:.0f} MB), {len(bundlecheck.bundle_files(bundle))} files"
    )
    for name, size in sorted(parts.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {size / 2**20:6.1f} MiB  {name}")


def timed(
    command: list[str], env: dict[str, str], cwd: Path, wait_for: Path | None = None
) -> float:
    """Seconds from process start to exit, or to ``wait_for`` appearing (then the run goes on)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen = None
    while process.poll() is None:
        if wait_for is not None and seen is None and wait_for.exists():
            seen = time.perf_counter() - start
        time.sleep(0.005)
    ended = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"bench_bundle: {' '.join(command)} exited {process.returncode}\n{stderr}")
    if wait_for is not None and seen is None:
        seen = ended if wait_for.exists() else None
        if seen is None:
            raise SystemExit(f"bench_bundle: {wait_for} was never written")
    return ended if wait_for is None else seen


def median_of(runs: int, fn) -> tuple[float, float, float]:  # noqa: ANN001
    fn()  # warm-up
    values = [fn() for _ in range(runs)]
    return statistics.median(values), min(values), max(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=ROOT / "dist" / "leukview")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    bundle = args.bundle.resolve()
    exe = bundle / "leukview"
    if not exe.is_file():
        print(f"bench_bundle: no bundle at {bundle} (run `make bundle`)", file=sys.stderr)
        return 1
    size_report(bundle)
    info = bundle / "BUILD_INFO.txt"
    if info.is_file():
        print("build: " + " | ".join(info.read_text(encoding="utf-8").splitlines()[:2]))
    print(f"cpu: {os.cpu_count()} logical core(s); runs: median of {args.runs} after 1 warm-up")

    with tempfile.TemporaryDirectory(prefix="leukview bench ") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "bin").mkdir()
        (tmp / "home").mkdir()
        env = {
            "PATH": str(tmp / "bin"),
            "HOME": str(tmp / "home"),
            "LANG": "C.UTF-8",
            "QT_QPA_PLATFORM": "offscreen",
        }
        (tmp / "xdg").mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(tmp / "xdg")

        med, lo, hi = median_of(args.runs, lambda: timed([str(exe), "--version"], env, tmp))
        print(f"--version (start-up floor): {med:.2f} s (min {lo:.2f}, max {hi:.2f})")

        out = tmp / "out"

        def analyze() -> float:
            shutil.rmtree(out, ignore_errors=True)
            return timed(
                [str(exe), "analyze", str(bundle / SAMPLE), "--out", str(out), "--quiet"], env, tmp
            )

        med, lo, hi = median_of(args.runs, analyze)
        print(
            f"analyze bundled sample (headless, start to exit): {med:.2f} s (min {lo:.2f}, max {hi:.2f})"
        )

        shot = tmp / "shot.png"

        def screenshot() -> float:
            shot.unlink(missing_ok=True)
            return timed([str(exe), "--screenshot", str(shot)], env, tmp, wait_for=shot)

        med, lo, hi = median_of(args.runs, screenshot)
        print(
            f"time to first window (upper bound: start until --screenshot wrote the window, "
            f"sample analysed): {med:.2f} s (min {lo:.2f}, max {hi:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the classical segmentation (median over repeated runs).

Targets (issue 2, section 7), on the 2-core development machine:

* a 640 x 480 BCCD field in at most 50 ms;
* a 2592 x 1944 field (tiled from real BCCD fields) in at most 400 ms.

Usage::

    .venv/bin/python bench/bench_segment.py [--data ../shared/data] [--repeat 15] [--profile]

It prints the median and the quartiles per size, and the time of each stage
with ``--profile``. Numbers, not a test: they depend on the machine and on
what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leukview.core.segment import estimate_rbc_diameter, segment  # noqa: E402

FIELDS = ["BloodImage_00003", "BloodImage_00056", "BloodImage_00100", "BloodImage_00214", "BloodImage_00305"]


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def tiled_field(fields: list[np.ndarray], width: int = 2592, height: int = 1944) -> np.ndarray:
    """A large field made of real 640 x 480 fields side by side (cycled), cropped to size."""
    h, w = fields[0].shape[:2]
    rows, cols = -(-height // h), -(-width // w)
    grid = [[fields[(r * cols + c) % len(fields)] for c in range(cols)] for r in range(rows)]
    big = np.vstack([np.hstack(row) for row in grid])
    return np.ascontiguousarray(big[:height, :width])


CPU_TIMES: dict[int, list[float]] = {}


def timeit(fn, repeat: int) -> list[float]:
    """Wall-clock seconds per call; the process CPU seconds go to CPU_TIMES[id(result)]."""
    fn()  # warm-up (imports, caches)
    out, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU_TIMES[id(out)] = cpu
    return out


def report(name: str, times: list[float], target_ms: float | None) -> None:
    """Median wall time (the target's measure) and median CPU time of this process.

    On a shared machine the wall time grows with the other processes' load; the
    CPU time (both of OpenCV's threads counted) does much less.
    """
    ms = sorted(1000 * t for t in times)
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    cpu = CPU_TIMES.get(id(times))
    cpu_txt = f", cpu {1000 * statistics.median(cpu):.1f} ms" if cpu else ""
    verdict = ""
    if target_ms is not None:
        verdict = f"  target <= {target_ms:.0f} ms: {'met' if med <= target_ms else 'NOT met'}"
    print(f"{name:34s} median {med:7.1f} ms  (q1 {q1:.1f}, q3 {q3:.1f}, n={len(ms)}{cpu_txt}){verdict}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--profile", action="store_true", help="also time the stages (cProfile, top 15)")
    args = ap.parse_args(argv)

    fields = [read_rgb(args.data / "bccd" / "JPEGImages" / f"{name}.jpg") for name in FIELDS]
    big = tiled_field(fields)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpu cores: {os.cpu_count()}, opencv threads: {cv2.getNumThreads()}, load average {load:.2f}")
    print(f"fields: {', '.join(FIELDS)} (BCCD); large field {big.shape[1]}x{big.shape[0]} tiled from them")
    seg = segment(fields[0])
    kinds = [c.kind for c in seg.cells]
    print(
        f"640x480 example: d = {seg.rbc_diameter:.1f} px, {kinds.count('wbc')} wbc, "
        f"{kinds.count('rbc')} rbc, {kinds.count('platelet')} platelets"
    )
    seg_big = segment(big)
    kinds = [c.kind for c in seg_big.cells]
    print(
        f"2592x1944 example: d = {seg_big.rbc_diameter:.1f} px, {kinds.count('wbc')} wbc, "
        f"{kinds.count('rbc')} rbc, {kinds.count('platelet')} platelets"
    )

    small_times: list[float] = []
    small_cpu: list[float] = []
    for f in fields:
        t = timeit(lambda f=f: segment(f), max(1, args.repeat // len(fields)))
        small_times += t
        small_cpu += CPU_TIMES[id(t)]
    CPU_TIMES[id(small_times)] = small_cpu
    report("segment 640x480 (5 fields)", small_times, 50)
    report("  estimate_rbc_diameter 640x480", timeit(lambda: estimate_rbc_diameter(fields[0]), args.repeat), None)
    report("segment 2592x1944 (tiled)", timeit(lambda: segment(big), max(3, args.repeat // 2)), 400)
    report("  estimate_rbc_diameter 2592x1944", timeit(lambda: estimate_rbc_diameter(big), args.repeat), None)
    print(f"median of all 640x480 runs: {1000 * statistics.median(small_times):.1f} ms")

    if args.profile:
        import cProfile
        import pstats

        for name, img in (("640x480", fields[0]), ("2592x1944", big)):
            print(f"\nprofile {name}:")
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(5):
                segment(img)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    print("\ncommand: python bench/bench_segment.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

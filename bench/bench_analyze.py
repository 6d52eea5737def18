"""Whole-pipeline speed: ``analyze_image`` per 640x480 BCCD field, models included.

Prints the median over repeated runs (not a test: speed targets live here).
Target: <= 150 ms per 640x480 field with the shipped models on a 2-core CPU.

    .venv/bin/python bench/bench_analyze.py [--repeats 5] [--images 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from leukview.core.analysis import analyze_image
from leukview.core.io import read_image
from leukview.core.models import load_models

DATA = Path(os.environ.get("LEUKVIEW_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    paths = sorted((DATA / "bccd" / "JPEGImages").glob("*.jpg"))[: args.images]
    images = [read_image(p) for p in paths]
    classifiers = load_models()
    names = ", ".join(f"{c.spec.name} {c.spec.version} ({c.provider})" for c in classifiers) or "none"
    analyze_image(images[0], classifiers)  # warm-up: session and allocator start-up
    per_field: list[float] = []
    wbc = 0
    for _ in range(args.repeats):
        start = time.perf_counter()
        for image in images:
            result = analyze_image(image, classifiers)
            wbc += sum(c.kind == "wbc" for c in result.cells)
        per_field.append((time.perf_counter() - start) / len(images))
    print(f"models: {names}")
    print(f"fields: {len(images)} BCCD 640x480, repeats: {args.repeats}, cpu cores: {os.cpu_count()}")
    print(f"analyze per 640x480 field: median {statistics.median(per_field) * 1000:.1f} ms "
          f"(min {min(per_field) * 1000:.1f}, max {max(per_field) * 1000:.1f}); "
          f"{wbc / (args.repeats * len(images)):.1f} white cells per field")


if __name__ == "__main__":
    main()

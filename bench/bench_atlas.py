"""Atlas speed on this machine: embedding a cell, and k-nearest search, exact and indexed.

For each shipped atlas it times :func:`leukview.core.atlas.embed_cells` on the
white cells of a bundled sample field and one search of the default atlas
(what the viewer does when a cell is selected). Then, for synthetic atlases
of growing size (random unit vectors of the shipped models' dimension), one
query's exact numpy search against the faiss HNSW index (when faiss is
installed), with the index's build time and its agreement with the exact
answer (recall@k). The float32 GEMM rate measured in the same run puts the
figures in proportion.

Usage::

    .venv/bin/python bench/bench_atlas.py [--sizes 1000 20000 100000] [--k 5] [--queries 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_explain import gemm_gflops  # noqa: E402

from leukview.core.atlas import (  # noqa: E402
    Atlas,
    embed_cells,
    faiss_module,
    load_default_atlas,
    normalize_rows,
)
from leukview.core.models import Classifier  # noqa: E402

SAMPLE = ROOT / "resources" / "samples" / "BloodImage_00214.jpg"


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_shipped(k: int, repeats: int) -> int:
    from leukview.core.io import read_image
    from leukview.core.segment import segment

    image = read_image(SAMPLE)
    cells = [c for c in segment(image).cells if c.kind == "wbc"]
    dim = 0
    for folder in sorted(p.parent for p in (ROOT / "models").glob("*/model.json")):
        classifier = Classifier.load(folder)
        started = time.perf_counter()
        atlas = load_default_atlas(classifier)
        load_ms = 1000 * (time.perf_counter() - started)
        if atlas is None:
            print(f"{classifier.spec.name}: no atlas")
            continue
        dim = atlas.dim
        embed_ms = _median_ms(lambda c=classifier: embed_cells(c, image, cells[:1]), repeats)
        query = embed_cells(classifier, image, cells[:1])
        search_ms = _median_ms(lambda a=atlas, q=query: a.search(q, k), repeats)
        thumbs_ms = _median_ms(
            lambda a=atlas, q=query: [a.thumbnail(n.atlas_id) for n in a.search(q, k)[0]], repeats
        )
        print(f"{classifier.spec.name}: atlas of {len(atlas)} cells loads in {load_ms:.0f} ms; "
              f"one selected cell: embed {embed_ms:.1f} ms + search {search_ms:.2f} ms + "
              f"{k} thumbnails {thumbs_ms:.1f} ms (exact search)")
    return dim or 1280


def bench_sizes(sizes: list[int], dim: int, k: int, queries: int) -> None:
    rng = np.random.default_rng(0)
    faiss = faiss_module()
    print(f"synthetic atlases, {dim} dims, float16 storage, k={k}, {queries} single queries; "
          f"faiss {'installed' if faiss is not None else 'not installed: exact only'}")
    print("| cells | exact search per query | index build | index search per query | recall@k |")
    print("|---|---|---|---|---|")
    probe = normalize_rows(rng.normal(size=(queries, dim)))
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = Path(tmp) / f"a{size}"
            atlas = _synthetic(folder, size, dim, rng)
            atlas.search(probe[:1], k, exact=True)  # the float32 copy is made once
            exact_ms = _median_ms(lambda a=atlas: [a.search(q, k, exact=True) for q in probe], 1) / queries
            exact = [[n.atlas_id for n in a] for a in atlas.search(probe, k, exact=True)]
            if faiss is None:
                print(f"| {size} | {exact_ms:.2f} ms | – | – | – |")
                continue
            started = time.perf_counter()
            atlas.build_index()
            build_s = time.perf_counter() - started
            index_ms = _median_ms(lambda a=atlas: [a.search(q, k) for q in probe], 1) / queries
            found = [[n.atlas_id for n in a] for a in atlas.search(probe, k)]
            recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact, strict=True)])
            print(f"| {size} | {exact_ms:.2f} ms | {build_s:.1f} s | {index_ms:.3f} ms | {recall:.3f} |")


def _synthetic(folder: Path, size: int, dim: int, rng: np.random.Generator) -> Atlas:
    from leukview.core.models import ModelSpec
    from leukview.core.preprocess import CropRule

    spec = ModelSpec("synthetic", "0", ["x"], 8, [0.5] * 3, [0.5] * 3, CropRule(), sha256="0" * 64)
    atlas = Atlas.create(folder, spec, dim=dim)
    step = 20000
    for start in range(0, size, step):
        count = min(step, size - start)
        vectors = normalize_rows(rng.normal(size=(count, dim)))
        crops = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
        atlas.add(vectors, crops, ["x"] * count, source="synthetic", licence="none")
    return atlas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 20000, 100000])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"float32 GEMM {gemm_gflops():.1f} GFLOP/s (numpy, 1024^3)")
    dim = bench_shipped(args.k, args.repeats)
    if args.sizes:
        bench_sizes(args.sizes, dim, args.k, args.queries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

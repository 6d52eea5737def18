"""Atlas speed on this machine: embedding a cell, and k-nearest search, exact and indexed.

For each shipped atlas it times :func:`leukview.core.atlas.embed_cells` on the
white cells of a bundled sample field and one search of the default atlas
(what the viewer does when a cell is selected). Then, for synthetic atlases
of growing size (the largest shipped atlas's embeddings plus noise), one
query's exact numpy search against the faiss HNSW index (when faiss is
installed), with the index's build time and its agreement with the exact
answer (recall@k). The float32 GEMM rate measured in the same run puts the
figures in proportion.

Usage::

    .venv/bin/python bench/bench_atlas.py [--sizes 1000 20000 50000] [--k 5] [--queries 50]
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


def bench_shipped(k: int, repeats: int) -> np.ndarray:
    from leukview.core.io import read_image
    from leukview.core.segment import segment

    image = read_image(SAMPLE)
    cells = [c for c in segment(image).cells if c.kind == "wbc"]
    centres = np.zeros((0, 0), np.float32)
    for folder in sorted(p.parent for p in (ROOT / "models").glob("*/model.json")):
        classifier = Classifier.load(folder)
        started = time.perf_counter()
        atlas = load_default_atlas(classifier)
        load_ms = 1000 * (time.perf_counter() - started)
        if atlas is None:
            print(f"{classifier.spec.name}: no atlas")
            continue
        if len(atlas) > len(centres):
            centres = atlas.embeddings
        embed_ms = _median_ms(lambda c=classifier: embed_cells(c, image, cells[:1]), repeats)
        query = embed_cells(classifier, image, cells[:1])
        search_ms = _median_ms(lambda a=atlas, q=query: a.search(q, k), repeats)
        thumbs_ms = _median_ms(
            lambda a=atlas, q=query: [a.thumbnail(n.atlas_id) for n in a.search(q, k)[0]], repeats
        )
        print(f"{classifier.spec.name}: atlas of {len(atlas)} cells loads in {load_ms:.0f} ms; "
              f"one selected cell: embed {embed_ms:.1f} ms + search {search_ms:.2f} ms + "
              f"{k} thumbnails {thumbs_ms:.1f} ms (exact search)")
    return centres


def bench_sizes(sizes: list[int], centres: np.ndarray, k: int, queries: int, spread: float) -> None:
    rng = np.random.default_rng(0)
    faiss = faiss_module()
    dim = centres.shape[1]
    print(f"synthetic atlases: {dim} dims, float16 storage, each vector a real atlas embedding plus "
          f"noise ({spread} of its norm), k={k}, {queries} single queries; "
          f"faiss {'installed' if faiss is not None else 'not installed: exact only'}")
    print("| cells | exact search per query | index build | index search per query | recall@k |")
    print("|---|---|---|---|---|")
    probe = _like(centres, queries, spread, rng)
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = Path(tmp) / f"a{size}"
            atlas = _synthetic(folder, size, centres, spread, rng)
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


def _like(centres: np.ndarray, count: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors scattered around real embeddings (real atlases cluster; random vectors do not)."""
    picks = centres[rng.integers(0, len(centres), count)]
    noise = rng.normal(size=picks.shape) * spread / np.sqrt(centres.shape[1])
    return normalize_rows(picks + noise)


def _synthetic(folder: Path, size: int, centres: np.ndarray, spread: float, rng: np.random.Generator) -> Atlas:
    from leukview.core.models import ModelSpec
    from leukview.core.preprocess import CropRule

    spec = ModelSpec("synthetic", "0", ["x"], 8, [0.5] * 3, [0.5] * 3, CropRule(), sha256="0" * 64)
    atlas = Atlas.create(folder, spec, dim=centres.shape[1])
    step = 20000
    for start in range(0, size, step):
        count = min(step, size - start)
        vectors = _like(centres, count, spread, rng)
        crops = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
        atlas.add(vectors, crops, ["x"] * count, source="synthetic", licence="none")
    return atlas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 20000, 50000])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--spread", type=float, default=0.5, help="noise around the real embeddings")
    args = parser.parse_args()
    print(f"float32 GEMM {gemm_gflops():.1f} GFLOP/s (numpy, 1024^3)")
    centres = bench_shipped(args.k, args.repeats)
    if args.sizes and len(centres):
        bench_sizes(args.sizes, centres, args.k, args.queries, args.spread)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

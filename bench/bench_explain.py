"""Explanation maps on this machine: occlusion time per cell, and faithfulness.

Speed (no data needed): the white cells that the app's segmentation finds in
a bundled sample field, per installed model: the time of one occlusion map
per cell (all windows batched) and of a CAM (one ordinary inference), beside
this machine's float32 GEMM rate measured in the same run, so that figures
from different machines can be compared.

Faithfulness (``--faithfulness N``, needs ../shared/data): deletion curves
(:func:`leukview.core.explain.deletion_curve`) of the CAM and the occlusion
map of N PBC cells that the model's ``split.json`` held out (balanced per
class), against random orders of the same pixels. Lower area = the map
found what the model relies on sooner.

Usage::

    .venv/bin/python bench/bench_explain.py [--models-dir models] [--repeats 3]
    .venv/bin/python bench/bench_explain.py --faithfulness 100 [--model models/wbc-type] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leukview.core import explain  # noqa: E402
from leukview.core.models import Classifier, physical_cores  # noqa: E402
from leukview.core.preprocess import normalize  # noqa: E402

SAMPLES = ROOT / "resources" / "samples"
DATA = Path(os.environ.get("LEUKVIEW_DATA", ROOT.parent / "shared" / "data"))


def gemm_gflops(size: int = 1024, repeats: int = 5) -> float:
    """Median float32 matrix-product rate (GFLOP/s) of numpy's BLAS on this machine."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def bench_speed(models_dir: Path, repeats: int, max_cells: int) -> None:
    from leukview.core.io import read_image
    from leukview.core.segment import segment

    fields = []
    for path in sorted(SAMPLES.glob("*.jpg")):
        image = read_image(path)
        fields += [(image, c) for c in segment(image).cells if c.kind == "wbc"]
    fields = fields[:max_cells]
    print(f"machine: {os.cpu_count()} logical cores, onnxruntime threads {physical_cores()} "
          f"(LEUKVIEW_THREADS={os.environ.get('LEUKVIEW_THREADS', 'unset')}); "
          f"float32 GEMM {gemm_gflops():.1f} GFLOP/s (numpy, 1024^3)")
    print(f"{len(fields)} white cells of the bundled sample fields ({SAMPLES.relative_to(ROOT)})")
    for folder in sorted(p.parent for p in models_dir.glob("*/model.json")):
        classifier = Classifier.load(folder)
        size = classifier.spec.input_size
        explain.occlusion_map(classifier, *fields[0])  # warm-up
        occlusion, cam = [], []
        for _ in range(repeats):
            for image, cell in fields:
                start = time.perf_counter()
                explain.occlusion_map(classifier, image, cell)
                occlusion.append(time.perf_counter() - start)
                start = time.perf_counter()
                explain.cam_map(classifier, image, cell)
                cam.append(time.perf_counter() - start)
        patch, stride = explain.occlusion_window(size)
        windows = len(explain._window_starts(size, patch, stride)) ** 2
        print(f"{classifier.spec.name} ({size} px, {windows} windows + 1): occlusion "
              f"{1000 * statistics.median(occlusion):.0f} ms per cell (max {1000 * max(occlusion):.0f}), "
              f"CAM {1000 * statistics.median(cam):.1f} ms per cell")


def bench_faithfulness(
    model_dir: Path, count: int, randoms: int, steps: int, json_path: str | None, stride: int | None = None
) -> None:
    from training.atlas import model_parts
    from training.data import extract_crops

    classifier = Classifier.load(model_dir)
    spec = classifier.spec
    part = next(p for p in model_parts(model_dir, DATA, "evaluate") if p.name == "pbc")
    rng = np.random.default_rng(0)
    per_class = max(1, count // len(spec.classes))
    picked = []
    for cls in spec.classes:
        members = [s for s in part.sources if s.label == cls]
        picked += [members[i] for i in rng.permutation(len(members))[:per_class]]
    crops = extract_crops(picked, spec.crop, spec.input_size, cache_dir="cache",
                          name=f"faithfulness-{spec.name}", progress=False)
    predict = explain.classifier_predictor(classifier)
    rows = {"cam": [], "occlusion": [], "random": []}
    wins = {"cam": 0, "occlusion": 0}
    started = time.perf_counter()
    for crop in crops.crops:
        batch = normalize(crop, spec.mean, spec.std)[0]
        cam = explain.cam_map_of_input(classifier, batch)
        occlusion = explain.occlusion_map_of_input(classifier, batch, stride=stride)
        index = cam.class_index
        random_auc = float(np.mean([
            explain.deletion_curve(predict, batch, index, None, steps=steps, seed=s).auc
            for s in range(randoms)
        ]))
        rows["random"].append(random_auc)
        for kind, saliency in (("cam", cam.grid), ("occlusion", occlusion.grid)):
            auc = explain.deletion_curve(predict, batch, index, saliency, steps=steps).auc
            rows[kind].append(auc)
            wins[kind] += auc < random_auc
    elapsed = time.perf_counter() - started
    n = len(crops)
    print(f"{spec.name} {spec.version}: {n} held-out PBC cells ({per_class} per class), "
          f"{steps} deletion steps, {randoms} random orders per cell, {elapsed:.0f} s")
    print("| map | mean deletion AUC (lower = more faithful) | sd | cells where it beats random |")
    print("|---|---|---|---|")
    summary = {}
    for kind in ("cam", "occlusion", "random"):
        values = np.array(rows[kind])
        beats = f"{wins[kind]} / {n} ({100 * wins[kind] / n:.0f}%)" if kind in wins else "–"
        print(f"| {kind} | {values.mean():.3f} | {values.std():.3f} | {beats} |")
        summary[kind] = {"mean_auc": float(values.mean()), "sd": float(values.std()),
                         "beats_random": wins.get(kind)}
    labels = [str(v) for v in crops.labels]
    print("| class | n | CAM beats random | occlusion beats random |")
    print("|---|---|---|---|")
    for cls in spec.classes:
        idx = [i for i, v in enumerate(labels) if v == cls]
        cam_wins = sum(rows["cam"][i] < rows["random"][i] for i in idx)
        occ_wins = sum(rows["occlusion"][i] < rows["random"][i] for i in idx)
        print(f"| {cls} | {len(idx)} | {cam_wins} | {occ_wins} |")
    if json_path:
        Path(json_path).write_text(json.dumps({"n": n, "steps": steps, "randoms": randoms, "labels": labels,
                                               "summary": summary, "per_cell": rows}, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, default=8, help="white cells timed per repeat")
    parser.add_argument("--faithfulness", type=int, default=0, metavar="N",
                        help="deletion curves of N held-out PBC cells (needs the data)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "wbc-type")
    parser.add_argument("--randoms", type=int, default=3, help="random orders per cell")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--occlusion-stride", type=int, help="occlusion stride in pixels (default: 5 x 5 windows)")
    parser.add_argument("--json", help="write the faithfulness figures here")
    args = parser.parse_args()
    if args.faithfulness:
        bench_faithfulness(args.model, args.faithfulness, args.randoms, args.steps, args.json, args.occlusion_stride)
    else:
        bench_speed(args.models_dir, args.repeats, args.cells)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Classification speed of every installed model on this machine.

For each model in ``models/`` (``--models-dir``; a tiny test model when none
is installed) it prints the model file's size, the load time, and cells per
second at batch 32 (median of repeats after a warm-up):

- ``predict``: the whole :meth:`Classifier.predict` path (crop, normalise,
  inference, softmax, class-activation map) on real BCCD cells;
- ``infer``: onnxruntime alone on an already preprocessed batch;
- ``GFLOP/cell`` (multiply-adds x 2 of every Conv, Gemm and MatMul, from the
  graph's inferred shapes) and ``of GEMM``: the FLOP rate ``infer`` reaches as
  a fraction of this machine's float32 matrix-product rate measured in the
  same run (numpy, 1024^3), comparable across hosts.

Usage::

    .venv/bin/python bench/bench_models.py [--models-dir DIR] [--batch 32] [--cells 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from leukview.core.cells import Cell  # noqa: E402
from leukview.core.models import Classifier, find_models, physical_cores  # noqa: E402
from leukview.core.paths import models_dir  # noqa: E402
from leukview.core.preprocess import preprocess_cells  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FIELD = "BloodImage_00003"


def field_and_cells(count: int) -> tuple[np.ndarray, list[Cell], str]:
    """A real BCCD field with its annotated cells repeated to ``count``; synthetic without the data."""
    image_path = DATA / "bccd" / "JPEGImages" / f"{FIELD}.jpg"
    xml_path = DATA / "bccd" / "Annotations" / f"{FIELD}.xml"
    cells: list[Cell] = []
    if image_path.is_file() and xml_path.is_file():
        image = cv2.cvtColor(cv2.imread(str(image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        for obj in ET.parse(xml_path).getroot().iter("object"):
            box = obj.find("bndbox")
            x0, y0, x1, y1 = (
                int(float(box.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            centre, axes = (
                ((x0 + x1) // 2, (y0 + y1) // 2),
                (max((x1 - x0) // 2, 1), max((y1 - y0) // 2, 1)),
            )
            contour = cv2.ellipse2Poly(centre, axes, 0, 0, 360, 10).astype(np.int32)
            cells.append(
                Cell(
                    len(cells) + 1, "wbc", contour, (x0, y0, x1, y1), ((x0 + x1) / 2, (y0 + y1) / 2)
                )
            )
        source = f"BCCD {FIELD} ({len(cells)} annotated cells)"
    else:
        rng = np.random.default_rng(0)
        image = rng.integers(120, 230, (480, 640, 3), dtype=np.uint8)
        for index in range(20):
            cx, cy = rng.uniform(40, 600), rng.uniform(40, 440)
            contour = cv2.ellipse2Poly((int(cx), int(cy)), (30, 30), 0, 0, 360, 10).astype(np.int32)
            cells.append(
                Cell(
                    index + 1,
                    "wbc",
                    contour,
                    (int(cx) - 30, int(cy) - 30, int(cx) + 30, int(cy) + 30),
                    (cx, cy),
                )
            )
        source = "synthetic field (../shared/data not found)"
    repeated = [cells[i % len(cells)] for i in range(count)]
    return image, repeated, source


def median_seconds(action, repeats: int) -> float:
    action()  # warm-up: first runs allocate and pick kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def graph_gflops(path: Path, input_size: int) -> float:
    """GFLOP per cell of an ONNX graph: 2 x the multiply-adds of its Conv, Gemm and MatMul nodes.

    The output shapes are those of a real run on one cell (the graph's computed
    padding defeats static shape inference).
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    known = {o.name for o in model.graph.output}
    for node in nodes:
        if node.output[0] not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(node.output[0]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {session.get_inputs()[0].name: np.zeros((1, 3, input_size, input_size), np.float32)}
    shapes = dict(zip(names, (np.shape(v) for v in session.run(names, feed)), strict=True))
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    flops = 0.0
    for node in nodes:
        out = shapes[node.output[0]]
        if node.op_type == "Conv":  # weight (Cout, Cin/groups, kh, kw): each output is one dot product
            flops += 2.0 * float(np.prod(out)) * float(np.prod(weights[node.input[1]][1:]))
        else:
            inner = weights.get(node.input[1])
            k = inner[0] if inner and node.op_type == "MatMul" else (inner[1] if inner else 0)
            flops += 2.0 * float(np.prod(out)) * k
    return flops / 1e9


def bench(
    folder: Path, label: str, image: np.ndarray, cells: list[Cell], batch: int, repeats: int
) -> dict:
    start = time.perf_counter()
    model = Classifier.load(folder)
    load_s = time.perf_counter() - start
    spec = model.spec
    predict_s = median_seconds(lambda: model.predict(image, cells, batch_size=batch), repeats)
    inputs = preprocess_cells(image, cells[:batch], spec.crop, spec.input_size, spec.mean, spec.std)
    infer_s = median_seconds(lambda: model.run(inputs, with_features=True), repeats)
    return {
        "model": label,
        "version": spec.version,
        "input": spec.input_size,
        "classes": len(spec.classes),
        "size_mb": (folder / "model.onnx").stat().st_size / 1e6,
        "provider": model.provider.replace("ExecutionProvider", ""),
        "load_ms": load_s * 1e3,
        "predict_cps": len(cells) / predict_s,
        "infer_cps": len(inputs) / infer_s,
        "gflop_per_cell": graph_gflops(folder / "model.onnx", spec.input_size),
        "cam": {True: "exact", False: "approx", None: "-"}[model.cam_exact]
        if spec.cam_weight
        else ("mean" if spec.features_output else "none"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=None, help="default: leukview's models/")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cells", type=int, default=64, help="cells per predict call")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    root = args.models_dir or models_dir()
    image, cells, source = field_and_cells(args.cells)
    folders = [(folder, folder.name) for folder in find_models(root)]
    scratch = None
    if not folders:
        from onnx_factory import make_tiny_classifier

        scratch = tempfile.TemporaryDirectory()
        tiny = make_tiny_classifier(
            Path(scratch.name) / "tiny", ["a", "b", "c"], input_size=64, channels=32
        )
        folders = [(tiny, "tiny (no model in " + str(root) + ")")]

    print(
        f"cells: {len(cells)} from {source}; batch {args.batch}; median of {args.repeats} after a warm-up"
    )
    print(f"intra-op threads: {physical_cores()} (physical cores)")
    from bench_explain import gemm_gflops

    gemm = gemm_gflops()
    print(f"float32 GEMM of this machine, same run: {gemm:.1f} GFLOP/s (numpy, 1024^3)")
    rows = [
        bench(folder, label, image, cells, args.batch, args.repeats) for folder, label in folders
    ]
    header = f"{'model':<28} {'version':>8} {'input':>5} {'K':>3} {'MB':>7} {'provider':>8} {'load ms':>8} {'predict cells/s':>16} {'infer cells/s':>14} {'GFLOP/cell':>10} {'of GEMM':>8} {'cam':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model'][:28]:<28} {r['version'][:8]:>8} {r['input']:>5} {r['classes']:>3} {r['size_mb']:>7.2f} "
            f"{r['provider']:>8} {r['load_ms']:>8.0f} {r['predict_cps']:>16.0f} {r['infer_cps']:>14.0f} {r['gflop_per_cell']:>10.3f} {r['infer_cps'] * r['gflop_per_cell'] / gemm:>8.2f} {r['cam']:>6}"
        )
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

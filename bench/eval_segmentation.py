"""Measure the classical segmentation on the visible, annotated data.

White-cell detection recall and precision per source (``bccd`` Pascal-VOC
boxes; ``txl/bcdd`` and ``txl/raabin`` YOLO boxes, class 0 = WBC), matching one
to one where the predicted centroid lies inside the truth box and the truth
box's centre inside the predicted box. Red cells and platelets the same way
(BCCD ``RBC`` / ``Platelets``; TXL class 1 = RBC, 2 = Platelets), with the
median per-image count ratio (found / annotated): BCCD's red-cell boxes are
incomplete, so recall and the ratio say more than precision there. Dice of
nucleus and whole cell on
``zheng2018`` dataset1 and dataset2 (the white cell nearest the image centre
against the mask: white = nucleus, grey = cytoplasm).

Usage::

    .venv/bin/python bench/eval_segmentation.py [--data ../shared/data] [--limit N]
        [--markdown] [--dump DIR]

Never run it on ``../shared/blind``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leukview.core.segment import Segmentation, segment  # noqa: E402

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


#: Our cell kinds and their names in BCCD's VOC files and TXL's YOLO class ids.
VOC_NAMES = {"wbc": "WBC", "rbc": "RBC", "platelet": "PLATELETS"}
YOLO_CLASSES = {"wbc": "0", "rbc": "1", "platelet": "2"}
SMALL_KINDS = ("rbc", "platelet")


def voc_wbc_boxes(xml_path: Path, kind: str = "wbc") -> list[Box]:
    """Boxes of one kind (default WBC) of a Pascal-VOC annotation (BCCD)."""
    root = ET.parse(xml_path).getroot()
    boxes = []
    for obj in root.iter("object"):
        if (obj.findtext("name") or "").strip().upper() != VOC_NAMES[kind]:
            continue
        bb = obj.find("bndbox")
        boxes.append(tuple(float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")))
    return boxes  # type: ignore[return-value]


def yolo_wbc_boxes(txt_path: Path, width: int, height: int, kind: str = "wbc") -> list[Box]:
    """Boxes of one kind (default class 0, WBC) of a YOLO label file, in pixels."""
    boxes = []
    if not txt_path.exists():
        return boxes
    for line in txt_path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[0] != YOLO_CLASSES[kind]:
            continue
        cx, cy, w, h = (float(v) for v in parts[1:])
        boxes.append(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    return boxes


def detection_sources(data: Path) -> dict[str, list[tuple[Path, object]]]:
    """Per source: (image path, truth locator) pairs, sorted by name."""
    out: dict[str, list[tuple[Path, object]]] = {}
    bccd = data / "bccd"
    out["bccd"] = [(p, bccd / "Annotations" / f"{p.stem}.xml") for p in sorted((bccd / "JPEGImages").glob("*.jpg"))]
    for name in ("bcdd", "raabin"):
        root = data / "txl" / name
        out[f"txl/{name}"] = [(p, root / "labels" / f"{p.stem}.txt") for p in sorted((root / "images").glob("*.jpg"))]
    return out


def truth_boxes(source: str, locator: object, width: int, height: int, kind: str = "wbc") -> list[Box]:
    if source == "bccd":
        return voc_wbc_boxes(Path(str(locator)), kind)
    return yolo_wbc_boxes(Path(str(locator)), width, height, kind)


REVIEW_FILE = Path(__file__).with_name("annotation_review.json")


def load_review(path: Path = REVIEW_FILE) -> dict[str, dict[str, dict]]:
    """Reviewed corrections of the white-cell boxes (see annotation_review.json)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def reviewed_boxes(truth: list[Box], fix: dict | None) -> list[Box]:
    """Truth boxes after a reviewer's corrections: wrong boxes removed, missing ones added."""
    if not fix:
        return truth
    out = []
    for box in truth:
        wrong = any(max(abs(a - b) for a, b in zip(box, r, strict=True)) <= 3 for r in fix.get("remove", []))
        if not wrong:
            out.append(box)
    out += [tuple(float(v) for v in b) for b in fix.get("add", [])]  # type: ignore[misc]
    return out


def match(pred_centroids: list[tuple[float, float]], pred_boxes: list[Box], truth: list[Box]) -> list[tuple[int, int]]:
    """One-to-one matches (pred index, truth index).

    A pair may match when the predicted centroid lies inside the truth box and
    the truth box's centre inside the predicted box; among those, the
    assignment minimising the total centre distance is taken.
    """
    if not pred_boxes or not truth:
        return []
    pc = np.asarray(pred_centroids, float)
    pb = np.asarray(pred_boxes, float)
    tb = np.asarray(truth, float)
    tc = np.stack([(tb[:, 0] + tb[:, 2]) / 2, (tb[:, 1] + tb[:, 3]) / 2], axis=1)
    inside_t = (
        (pc[:, None, 0] >= tb[None, :, 0]) & (pc[:, None, 0] <= tb[None, :, 2])
        & (pc[:, None, 1] >= tb[None, :, 1]) & (pc[:, None, 1] <= tb[None, :, 3])
    )
    inside_p = (
        (tc[None, :, 0] >= pb[:, None, 0]) & (tc[None, :, 0] <= pb[:, None, 2])
        & (tc[None, :, 1] >= pb[:, None, 1]) & (tc[None, :, 1] <= pb[:, None, 3])
    )
    ok = inside_t & inside_p
    if not ok.any():
        return []
    dist = np.hypot(pc[:, None, 0] - tc[None, :, 0], pc[:, None, 1] - tc[None, :, 1])
    cost = np.where(ok, dist, 1e9)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if ok[r, c]]


@dataclass
class Counts:
    """True positives, false positives and misses, with recall and precision."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")


@dataclass
class DetectionResult(Counts):
    images: int = 0
    seconds: float = 0.0
    failures: list[tuple[Path, int, int]] = field(default_factory=list)  # path, fp, fn
    reviewed: DetectionResult | None = None  # the same against the reviewed boxes
    # Red cells and platelets (published boxes only): counts, per-image found / annotated.
    kinds: dict[str, KindResult] = field(default_factory=dict)


@dataclass
class KindResult(Counts):
    """Detection of red cells or platelets against the published boxes."""

    ratios: list[float] = field(default_factory=list)  # found / annotated, images with boxes
    giant: int = 0  # images with a red cell larger than GIANT_RBC_AREA x d^2
    failures: list[tuple[Path, int, int]] = field(default_factory=list)  # path, found, annotated

    @property
    def ratio(self) -> float:
        return float(np.median(self.ratios)) if self.ratios else float("nan")


#: A red-cell object larger than this many d^2 covers several cells (d: the red-cell diameter).
GIANT_RBC_AREA = 4.0


def add_kind(res: KindResult, seg: Segmentation, truth: list[Box], kind: str, path: Path) -> None:
    cents, boxes = wbc_boxes(seg, kind)
    n = len(match(cents, boxes, truth))
    res.tp += n
    res.fp += len(boxes) - n
    res.fn += len(truth) - n
    if truth:
        res.ratios.append(len(boxes) / len(truth))
    if len(truth) - n > 0 or len(boxes) - n > 0:
        res.failures.append((path, len(boxes), len(truth)))
    if kind == "rbc":
        limit = GIANT_RBC_AREA * seg.rbc_diameter**2
        res.giant += any(c.measurements.get("area", 0.0) > limit for c in seg.cells if c.kind == "rbc")


def wbc_boxes(seg: Segmentation, kind: str = "wbc") -> tuple[list[tuple[float, float]], list[Box]]:
    cells = [c for c in seg.cells if c.kind == kind]
    return [c.centroid for c in cells], [tuple(float(v) for v in c.bbox) for c in cells]  # type: ignore[misc]


def evaluate_detection(
    source: str,
    items: list[tuple[Path, object]],
    dump: Path | None = None,
    review: dict[str, dict] | None = None,
) -> DetectionResult:
    """Detection counts against the published boxes (and the reviewed ones when given)."""
    res = DetectionResult()
    rev = DetectionResult() if review is not None else None
    res.reviewed = rev
    for path, locator in items:
        rgb = read_rgb(path)
        h, w = rgb.shape[:2]
        truth = truth_boxes(source, locator, w, h)
        t0 = time.perf_counter()
        seg = segment(rgb)
        res.seconds += time.perf_counter() - t0
        cents, boxes = wbc_boxes(seg)
        pairs = match(cents, boxes, truth)
        tp = len(pairs)
        fp, fn = len(boxes) - tp, len(truth) - tp
        res.tp += tp
        res.fp += fp
        res.fn += fn
        res.images += 1
        for kind in SMALL_KINDS:
            add_kind(res.kinds.setdefault(kind, KindResult()), seg, truth_boxes(source, locator, w, h, kind),
                     kind, path)
        if rev is not None:
            fixed = reviewed_boxes(truth, review.get(path.name) if review else None)
            n = len(match(cents, boxes, fixed))
            rev.tp += n
            rev.fp += len(boxes) - n
            rev.fn += len(fixed) - n
            rev.images += 1
        if fp or fn:
            res.failures.append((path, fp, fn))
            if dump is not None:
                write_overlay(dump / f"{source.replace('/', '_')}_{path.stem}.png", rgb, seg, truth)
    return res


def write_overlay(path: Path, rgb: np.ndarray, seg: Segmentation, truth: list[Box]) -> None:
    """Truth boxes in yellow, predicted white cells in green (nucleus magenta), red cells in blue."""
    out = rgb.copy()
    for c in seg.cells:
        colour = {"wbc": (0, 220, 0), "rbc": (60, 60, 255), "platelet": (0, 200, 200)}[c.kind]
        cv2.polylines(out, [c.contour.reshape(-1, 1, 2)], True, colour, 1)
        if c.nucleus_contour is not None:
            cv2.polylines(out, [c.nucleus_contour.reshape(-1, 1, 2)], True, (255, 0, 255), 1)
        if c.kind == "wbc":
            x0, y0, x1, y1 = c.bbox
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (0, 120, 0), 1)
    for x0, y0, x1, y1 in truth:
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1), int(y1)), (255, 255, 0), 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))


def zheng_items(data: Path, dataset: str) -> list[tuple[Path, Path]]:
    root = data / "zheng2018" / dataset
    return [(p, root / "masks" / p.name) for p in sorted((root / "images").glob("*.png"))]


def central_wbc_masks(seg: Segmentation, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell and nucleus masks of the white cell nearest the image centre (empty if none)."""
    h, w = shape
    cells = [c for c in seg.cells if c.kind == "wbc"]
    if not cells:
        return np.zeros(shape, bool), np.zeros(shape, bool)
    best = min(cells, key=lambda c: (c.centroid[0] - w / 2) ** 2 + (c.centroid[1] - h / 2) ** 2)
    cell = seg.labels == best.id
    return cell, seg.nucleus_mask & cell


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / s if s else 1.0


@dataclass
class DiceResult:
    nucleus: list[float] = field(default_factory=list)
    cell: list[float] = field(default_factory=list)
    seconds: float = 0.0
    worst: list[tuple[float, Path]] = field(default_factory=list)


def evaluate_dice(items: list[tuple[Path, Path]], dump: Path | None = None, tag: str = "") -> DiceResult:
    res = DiceResult()
    for img_path, mask_path in items:
        rgb = read_rgb(img_path)
        gt = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        gt_nuc, gt_cell = gt > 200, gt > 60
        t0 = time.perf_counter()
        seg = segment(rgb)
        res.seconds += time.perf_counter() - t0
        cell, nuc = central_wbc_masks(seg, gt.shape)
        dn, dc = dice(nuc, gt_nuc), dice(cell, gt_cell)
        res.nucleus.append(dn)
        res.cell.append(dc)
        res.worst.append((min(dn, dc), img_path))
        if dump is not None and min(dn, dc) < 0.8:
            out = rgb.copy()
            for m, col in ((gt_cell, (255, 255, 0)), (gt_nuc, (0, 255, 255))):
                cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(out, cs, -1, col, 1)
            for m, col in ((cell, (0, 200, 0)), (nuc, (255, 0, 255))):
                cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(out, cs, -1, col, 1)
            dump.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dump / f"zheng_{tag}_{img_path.stem}.png"), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    res.worst.sort()
    return res


def subset(items: list, limit: int | None) -> list:
    """An even spread of ``limit`` items (all when None)."""
    if limit is None or limit >= len(items):
        return items
    idx = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in idx]


def rows(
    data: Path, limit: int | None, dump: Path | None, only: str | None = None
) -> Iterator[dict[str, object]]:
    review = load_review()
    for source, items in detection_sources(data).items():
        if only and not source.startswith(only):
            continue
        r = evaluate_detection(source, subset(items, limit), dump, review.get(source, {}))
        rv = r.reviewed
        assert rv is not None
        yield {
            "source": source, "images": r.images, "truth": r.tp + r.fn, "found": r.tp + r.fp,
            "recall": r.recall, "precision": r.precision, "dice_nucleus": None, "dice_cell": None,
            "ms": 1000 * r.seconds / max(r.images, 1), "failures": r.failures,
            "rev_truth": rv.tp + rv.fn, "rev_recall": rv.recall, "rev_precision": rv.precision,
            "kinds": r.kinds,
        }
    for dataset in ("dataset1", "dataset2"):
        if only and not f"zheng2018/{dataset}".startswith(only):
            continue
        items = subset(zheng_items(data, dataset), limit)
        r = evaluate_dice(items, dump, dataset)
        yield {
            "source": f"zheng2018/{dataset}", "images": len(items), "truth": None, "found": None,
            "recall": None, "precision": None,
            "dice_nucleus": float(np.mean(r.nucleus)) if r.nucleus else float("nan"),
            "dice_cell": float(np.mean(r.cell)) if r.cell else float("nan"),
            "ms": 1000 * r.seconds / max(len(items), 1), "failures": r.worst[:5],
        }


def fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=None, help="an even spread of N images per source")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--dump", type=Path, default=None, help="write overlays of failures here")
    ap.add_argument("--verbose", action="store_true", help="list the failing images")
    ap.add_argument("--only", default=None, help="sources whose name starts with this (e.g. txl, bccd)")
    args = ap.parse_args(argv)
    if "blind" in args.data.parts:
        ap.error("the blind set is for independent evaluation only")
    cmd = "python bench/eval_segmentation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = []
    head = (
        f"{'source':20s} {'images':>6s} {'truth':>6s} {'found':>6s} {'recall':>7s} {'precis.':>7s} "
        f"{'rev.truth':>9s} {'rev.rec':>7s} {'rev.prec':>8s} {'Dice nuc':>8s} {'Dice cell':>9s} {'ms/img':>7s}"
    )
    print(head)
    for row in rows(args.data, args.limit, args.dump, args.only):
        table.append(row)
        print(
            f"{row['source']:20s} {fmt(row['images']):>6s} {fmt(row['truth']):>6s} {fmt(row['found']):>6s} "
            f"{fmt(row['recall']):>7s} {fmt(row['precision']):>7s} {fmt(row.get('rev_truth')):>9s} "
            f"{fmt(row.get('rev_recall')):>7s} {fmt(row.get('rev_precision')):>8s} "
            f"{fmt(row['dice_nucleus']):>8s} {fmt(row['dice_cell']):>9s} {fmt(row['ms'], 1):>7s}",
            flush=True,
        )
        if args.verbose:
            for f in row["failures"]:  # type: ignore[union-attr]
                print("    ", f)
    print(
        "\nrecall / precision: against the published boxes; rev.*: against the boxes after the\n"
        "review in bench/annotation_review.json (wrong or duplicate boxes removed, unboxed\n"
        "white cells added). ms/img: segmentation time per image on this machine."
    )
    small_head = (
        f"\n{'source':20s} {'kind':8s} {'boxes':>6s} {'found':>6s} {'recall':>7s} {'precis.':>7s} "
        f"{'count ratio':>11s} {'giant':>6s}"
    )
    print(small_head)
    for row in table:
        for kind, k in (row.get("kinds") or {}).items():  # type: ignore[union-attr]
            print(
                f"{row['source']:20s} {kind:8s} {k.tp + k.fn:6d} {k.tp + k.fp:6d} {fmt(k.recall):>7s} "
                f"{fmt(k.precision):>7s} {fmt(k.ratio, 2):>11s} {k.giant if kind == 'rbc' else '–':>6}"
            )
            if args.verbose:
                for f in k.failures[:15]:
                    print("    ", f)
    print(
        "\nred cells and platelets: published boxes, same matching; count ratio = median over\n"
        "images of found / annotated; giant = images with a red cell larger than "
        f"{GIANT_RBC_AREA:g} d^2.\nBCCD leaves many red cells unboxed: read its red-cell precision with care."
    )
    print(f"\ncommand: {cmd.strip()}")
    if args.markdown:
        print()
        print(
            "| source | images | WBC boxes | WBC found | recall | precision | reviewed boxes "
            "| reviewed recall | reviewed precision | Dice nucleus | Dice cell | ms / image |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in table:
            print(
                f"| {row['source']} | {fmt(row['images'])} | {fmt(row['truth'])} | {fmt(row['found'])} | "
                f"{fmt(row['recall'])} | {fmt(row['precision'])} | {fmt(row.get('rev_truth'))} | "
                f"{fmt(row.get('rev_recall'))} | {fmt(row.get('rev_precision'))} | "
                f"{fmt(row['dice_nucleus'])} | {fmt(row['dice_cell'])} | {fmt(row['ms'], 1)} |"
            )
        print()
        print(
            "| source | RBC boxes | RBC found | RBC recall | RBC precision | RBC count ratio "
            f"| images with an RBC > {GIANT_RBC_AREA:g} d² | platelet boxes | platelets found "
            "| platelet recall | platelet precision | platelet count ratio |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in table:
            kinds = row.get("kinds") or {}
            if not kinds:
                continue
            r, p = kinds["rbc"], kinds["platelet"]  # type: ignore[index]
            print(
                f"| {row['source']} | {r.tp + r.fn} | {r.tp + r.fp} | {fmt(r.recall)} | {fmt(r.precision)} | "
                f"{fmt(r.ratio, 2)} | {r.giant} / {row['images']} | {p.tp + p.fn} | {p.tp + p.fp} | "
                f"{fmt(p.recall)} | {fmt(p.precision)} | {fmt(p.ratio, 2)} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

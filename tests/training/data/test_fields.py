"""Loaders of smear fields: Taleqani, BCCD (VOC boxes), TXL-PBC (YOLO boxes)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training import data as tdata


def _voc(boxes: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in boxes
    )
    return f"<annotation><filename>x.jpg</filename>{objects}</annotation>"


def test_taleqani_fields_and_blocks(tmp_path: Path, write_image) -> None:
    for folder, numbers in (("Benign", [1, 2, 60]), ("Early", [3, 49, 50]), ("Pro", [7])):
        for n in numbers:
            write_image(tmp_path / folder / f"WBC-{folder}-{n:03d}.jpg")
    sources = tdata.taleqani_dataset(tmp_path)  # no Pre folder: the others still load
    assert Counter(s.label for s in sources) == {"normal": 3, "blast": 4}
    assert all(s.finder == "all" for s in sources)
    assert len({s.group for s in sources}) == len(sources)  # each field its own group
    blocks = {s.path.stem: s.group for s in tdata.taleqani_dataset(tmp_path, block=50)}
    # runs of 50 file numbers per folder share a group
    assert blocks["WBC-Benign-001"] == blocks["WBC-Benign-002"] == "Benign/block0000"
    assert blocks["WBC-Benign-060"] == "Benign/block0001"
    assert blocks["WBC-Early-049"] == "Early/block0000" != blocks["WBC-Early-050"]
    only = tdata.taleqani_dataset(tmp_path, label_map={"Pro": "pro"})
    assert [s.label for s in only] == ["pro"]


def test_read_voc_boxes(tmp_path: Path) -> None:
    xml = tmp_path / "a.xml"
    xml.write_text(_voc([("WBC", (10, 20, 59, 79)), ("RBC", (0, 0, 5, 5)), ("wbc", (1, 2, 3, 4))]))
    assert tdata.read_voc_boxes(xml) == [(10, 20, 60, 80), (1, 2, 4, 5)]  # half-open, any case
    assert tdata.read_voc_boxes(xml, "RBC") == [(0, 0, 6, 6)]
    (tmp_path / "bad.xml").write_text("<annotation>")
    with pytest.raises(tdata.DataError, match="VOC"):
        tdata.read_voc_boxes(tmp_path / "bad.xml")


def test_bccd_single_type_images_with_boxes(tmp_path: Path, write_image) -> None:
    rows = [
        ("BloodImage_00001.jpg", "NEUTROPHIL", [("WBC", (10, 10, 40, 40))]),
        ("BloodImage_00002.jpg", "lymphocyte, LYMPHOCYTE", [("WBC", (5, 5, 20, 20)), ("WBC", (30, 5, 50, 20))]),
        ("BloodImage_00003.jpg", "NEUTROPHIL, EOSINOPHIL", [("WBC", (1, 1, 9, 9))]),  # mixed: left out
        ("BloodImage_00250.jpg", "MONOCYTE", [("WBC", (2, 2, 12, 12))]),
        ("BloodImage_00251.jpg", "MONOCYTE", [("RBC", (2, 2, 12, 12))]),  # no white-cell box
        ("BloodImage_00252.jpg", "PLATELET", [("WBC", (2, 2, 12, 12))]),  # not a white-cell type
    ]
    with (tmp_path / "wbc_types.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "wbc_type"])
        for image, types, boxes in rows:
            writer.writerow([image, types])
            write_image(tmp_path / "JPEGImages" / image)
            (tmp_path / "Annotations").mkdir(exist_ok=True)
            (tmp_path / "Annotations" / image.replace(".jpg", ".xml")).write_text(_voc(boxes))
    sources = tdata.bccd_dataset(tmp_path)
    assert [(s.group, s.label, len(s.boxes)) for s in sources] == [
        ("BloodImage_00001", "neutrophil", 1), ("BloodImage_00002", "lymphocyte", 2),
        ("BloodImage_00250", "monocyte", 1),
    ]
    assert all(s.finder == "box" for s in sources)
    assert [s.group for s in tdata.bccd_dataset(tmp_path, half="first")] == ["BloodImage_00001", "BloodImage_00002"]
    assert [s.group for s in tdata.bccd_dataset(tmp_path, half="second")] == ["BloodImage_00250"]
    assert len(tdata.bccd_dataset(tmp_path, half="second", split_at=2)) == 2
    with pytest.raises(tdata.DataError, match="wbc_types.csv"):
        tdata.bccd_dataset(tmp_path / "JPEGImages")


def test_txl_reads_yolo_white_cell_boxes(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "images" / "a.jpg", np.zeros((100, 200, 3), np.uint8))
    write_image(tmp_path / "images" / "b.jpg", np.zeros((100, 200, 3), np.uint8))
    write_image(tmp_path / "images" / "c.jpg")  # no label file
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.1 0.1\n0 0.1 0.2 0.1 0.2\n")
    (tmp_path / "labels" / "b.txt").write_text("1 0.5 0.5 0.2 0.2\n")  # red cells only
    assert tdata.read_yolo_boxes(tmp_path / "labels" / "a.txt", 200, 100) == [(80, 30, 120, 70), (10, 10, 30, 30)]
    assert tdata.read_yolo_boxes(tmp_path / "labels" / "b.txt", 200, 100, cls=1) == [(80, 40, 120, 60)]
    sources = tdata.txl_dataset(tmp_path)
    assert [(s.path.name, s.label, s.finder, s.boxes) for s in sources] == [
        ("a.jpg", "wbc", "box", [(80, 30, 120, 70), (10, 10, 30, 30)]),
    ]
    with pytest.raises(tdata.DataError, match="images/ and labels/"):
        tdata.txl_dataset(tmp_path / "images")


@pytest.mark.real_data
def test_field_loaders_on_shared_data(data_dir: Path) -> None:
    tq = tdata.taleqani_dataset(data_dir / "taleqani", block=50)
    assert set(Counter(s.label for s in tq)) == {"blast", "normal"}
    assert all(s.finder == "all" for s in tq)
    assert len({s.group for s in tq}) < len(tq) / 20  # fields of a run of file numbers share a group
    bccd = tdata.bccd_dataset(data_dir / "bccd")
    assert all(s.boxes for s in bccd)
    assert {s.label for s in bccd} <= {"neutrophil", "eosinophil", "lymphocyte", "monocyte", "basophil"}
    with (data_dir / "bccd" / "wbc_types.csv").open() as handle:
        mixed = {r["image"] for r in csv.DictReader(handle) if len({t.strip() for t in r["wbc_type"].split(",")}) > 1}
    assert not mixed & {s.path.name for s in bccd}


@pytest.mark.real_data
def test_txl_loader_on_shared_data(data_dir: Path) -> None:
    sources = tdata.txl_dataset(data_dir / "txl" / "bcdd")
    labels = sorted((data_dir / "txl" / "bcdd" / "labels").glob("*.txt"))
    wbc_lines = sum(line.split()[0] == "0" for f in labels for line in f.read_text().splitlines() if line.strip())
    assert sum(len(s.boxes) for s in sources) == wbc_lines
    assert {s.label for s in sources} == {"wbc"} and all(s.finder == "box" for s in sources)
    # boxes in pixels, inside the 416 x 416 fields (a little slack for rounding)
    boxes = np.array([b for s in sources for b in s.boxes])
    assert boxes.min() >= -2 and boxes.max() <= 418 and (boxes[:, 2] > boxes[:, 0]).all()
    with pytest.raises(tdata.DataError, match="images/ and labels/"):
        tdata.txl_dataset(data_dir / "bccd")

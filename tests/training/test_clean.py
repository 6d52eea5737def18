"""training.clean: field labels become cell labels by a teacher and measurements; a table relabels crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.clean import CleanRule, apply_relabel, decide, read_relabel, summarise
from training.data import CropSet


@pytest.mark.parametrize(
    ("field", "teacher", "conf", "nc", "lobes", "size", "label"),
    [
        ("blast", "lymphocyte", 0.3, 3.0, 1, 1.0, "blast"),  # an unsure teacher is normal: it never saw a blast
        ("blast", "monocyte", 0.8, 1.5, 1, 1.2, "blast"),
        ("blast", "erythroblast", 0.6, 4.0, 1, 0.9, "blast"),
        ("blast", "lymphocyte", 0.9, 3.0, 3, 1.0, ""),  # several lobes: a clump of cells
        ("blast", "lymphocyte", 0.9, 0.5, 1, 1.0, ""),  # much cytoplasm: not lymphoid-looking
        ("blast", "lymphocyte", 0.9, 3.0, 1, 0.3, ""),  # a fragment
        ("blast", "lymphocyte", 0.9, 3.0, 1, 2.5, ""),  # a whole-field segmentation
        ("blast", "neutrophil", 0.95, 0.8, 3, 1.3, "neutrophil"),  # a normal granulocyte of an ALL field
        ("blast", "neutrophil", 0.95, 0.8, 1, 1.3, ""),  # "neutrophil" with one lobe: unsure
        ("blast", "neutrophil", 0.6, 0.8, 3, 1.3, ""),
        ("blast", "eosinophil", 0.92, 0.8, 2, 1.3, "eosinophil"),
        ("blast", "basophil", 0.99, 3.0, 1, 1.0, ""),  # the teacher's basophils here are mostly blasts
        ("blast", "ig", 0.99, 3.0, 1, 1.0, ""),
        ("blast", "platelet", 0.99, 3.0, 1, 1.0, ""),
        ("normal", "lymphocyte", 0.5, 3.0, 1, 1.0, "lymphocyte"),  # a hematogone: never a blast
        ("normal", "erythroblast", 0.5, 3.0, 1, 1.0, "lymphocyte"),
        ("normal", "neutrophil", 0.95, 0.8, 4, 1.3, "neutrophil"),
    ],
)
def test_decide(field: str, teacher: str, conf: float, nc: float, lobes: int, size: float, label: str) -> None:
    got, why = decide(field, teacher, conf, nc, lobes, size)
    assert got == label and why


def test_the_rule_is_the_thresholds_it_names() -> None:
    strict = CleanRule(min_nc=2.0, keep_conf=0.99)
    assert decide("blast", "lymphocyte", 0.5, 1.5, 1, 1.0)[0] == "blast"
    assert decide("blast", "lymphocyte", 0.5, 1.5, 1, 1.0, strict)[0] == ""
    assert decide("blast", "neutrophil", 0.95, 1.0, 3, 1.0, strict)[0] == ""


def _table(path: Path, rows: list[tuple]) -> Path:
    lines = ["# teacher test", "source,x0,y0,x1,y1,field,teacher,teacher_confidence,nc_ratio,lobe_count,size_ratio,label,rule"]
    lines += [",".join(str(v) for v in (src, *box, "blast", "lymphocyte", "0.5", "2", "1", "1", label, "r"))
              for src, box, label in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_table_relabels_drops_and_reports_unmatched_cells(tmp_path: Path) -> None:
    root = tmp_path / "taleqani"
    table = read_relabel(_table(tmp_path / "t.csv", [
        ("Pro/a.jpg", (10, 10, 40, 40), "blast"),
        ("Pro/a.jpg", (50, 50, 80, 80), ""),  # dropped by the table
        ("Benign/b.jpg", (0, 0, 30, 30), "lymphocyte"),
    ]))
    assert table[("Pro/a.jpg", 10, 10, 40, 40)] == "blast"
    n = 5
    crops = CropSet(
        np.zeros((n, 4, 4, 3), np.uint8),
        np.array(["blast", "blast", "normal", "blast", "normal"]),
        np.array(["g1"] * n),
        np.array([str(root / p) for p in ("Pro/a.jpg", "Pro/a.jpg", "Benign/b.jpg", "Pro/a.jpg", "Benign/c.jpg")]),
        np.array([[10, 10, 40, 40], [50, 50, 80, 80], [1, 0, 31, 29], [200, 200, 230, 230], [0, 0, 30, 30]], np.int32),
        np.array(["segmented"] * n),
    )
    kept, report = apply_relabel(crops, table, root)
    assert kept.labels.tolist() == ["blast", "lymphocyte"]  # the benign cell matched within a pixel
    assert kept.boxes.tolist() == [[10, 10, 40, 40], [1, 0, 31, 29]]
    assert report == {"kept": 2, "dropped": 1, "unmatched": 2, "relabelled": {"blast -> blast": 1,
                                                                             "normal -> lymphocyte": 1}}


def test_summarise_counts_by_field_label_and_rule() -> None:
    rows = [{"field": "blast", "teacher": "lymphocyte", "label": "blast", "rule": "blast"},
            {"field": "blast", "teacher": "ig", "label": "", "rule": "teacher ig"}]
    report = summarise(rows)
    assert report["cells"] == 2
    assert report["by_label"] == {"blast -> blast": 1, "blast -> dropped": 1}
    assert report["by_rule"]["blast: teacher ig"] == 1

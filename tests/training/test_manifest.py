"""training.manifest: class/patient folders -> path,label,group rows that the loader reads back."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.data import DataError, manifest_dataset
from training.manifest import scan, write_manifest


def test_manifest_from_class_patient_folders(tmp_path: Path) -> None:
    cell = np.full((32, 32, 3), 200, np.uint8)
    for cls in ("basophil", "eosinophil"):
        for i in range(4):
            target = tmp_path / "cells" / cls / f"patient{i % 2}" / f"{cls}_{i}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(target), cell)
    cv2.imwrite(str(tmp_path / "cells" / "basophil" / "loose.png"), cell)  # no patient folder
    (tmp_path / "cells" / "eosinophil" / "patient0" / "notes.txt").write_text("not an image")
    rows = scan(tmp_path / "cells")
    assert len(rows) == 9 and {r[2] for r in rows} == {"patient0", "patient1", "loose"}
    out = write_manifest(rows, tmp_path / "out" / "cells.csv", tmp_path / "cells")
    with out.open(newline="") as handle:
        assert next(csv.reader(handle))[:3] == ["path", "label", "group"]
    sources = manifest_dataset(out)
    assert all(s.path.is_file() for s in sources)
    assert Counter(s.label for s in sources) == {"basophil": 5, "eosinophil": 4}
    assert Counter(s.group for s in sources) == {"patient0": 4, "patient1": 4, "loose": 1}
    with pytest.raises(DataError, match="no images"):
        scan(tmp_path / "out")

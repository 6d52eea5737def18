"""Loaders of single-cell image sets: folder per class, C-NMC, Zheng 2018, manifests."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from training import data as tdata


def test_cnmc_official_and_kaggle_layouts(cnmc_tree: tuple[Path, dict[str, str]]) -> None:
    root, expected = cnmc_tree
    sources = tdata.cnmc_dataset(root)
    assert {s.path.name: s.group for s in sources} == expected
    assert all(s.label == ("normal" if s.group.startswith("H") else "blast") for s in sources)
    assert all(s.finder == "mask" for s in sources)
    only = tdata.cnmc_dataset(root, folds=[1])
    assert {s.group for s in only} == {"4", "H5"}
    relabelled = tdata.cnmc_dataset(root, label_map={"all": "ALL", "hem": "HEM"})
    assert {s.label for s in relabelled} == {"ALL", "HEM"}


def test_cnmc_bad_names_and_folders(tmp_path: Path) -> None:
    assert tdata.cnmc_subject("UID_h6_12_3_hem.bmp") == "H6"
    with pytest.raises(tdata.DataError, match="subject"):
        tdata.cnmc_subject("cell_12.bmp")
    with pytest.raises(tdata.DataError, match="no C-NMC cells"):
        tdata.cnmc_dataset(tmp_path)
    with pytest.raises(tdata.DataError, match="not found"):
        tdata.cnmc_dataset(tmp_path / "missing")


def test_folder_dataset(tmp_path: Path, write_image) -> None:
    for cls, n in (("basophil", 5), ("lymphocyte", 3), ("platelet", 2)):
        for i in range(n):
            write_image(tmp_path / cls / f"{cls[:3]}_{i}.jpg")
    (tmp_path / "basophil" / "notes.txt").write_text("not an image")
    every = tdata.folder_dataset(tmp_path)
    assert Counter(s.label for s in every) == {"basophil": 5, "lymphocyte": 3, "platelet": 2}
    assert len({s.group for s in every}) == len(every)  # no subject IDs: each image its own group
    assert [s.path.name for s in every[:2]] == ["bas_0.jpg", "bas_1.jpg"]
    normals = tdata.folder_dataset(tmp_path, classes=["basophil", "lymphocyte"], per_folder=2,
                                   label_map={"basophil": "normal", "lymphocyte": "normal"})
    assert Counter(s.label for s in normals) == {"normal": 4}
    assert Counter(s.group.split("/")[0] for s in normals) == {"basophil": 2, "lymphocyte": 2}
    assert tdata.folder_dataset(tmp_path, classes=["platelet"], finder="all")[0].finder == "all"
    with pytest.raises(tdata.DataError, match="class folder 'monocyte'"):
        tdata.folder_dataset(tmp_path, classes=["monocyte"])
    with pytest.raises(tdata.DataError, match="not found"):
        tdata.folder_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="finder"):
        tdata.folder_dataset(tmp_path, finder="nearest")


def test_zheng_dataset(tmp_path: Path, write_image) -> None:
    for k, rows in ((1, [("1", "1"), ("2", "3"), ("3", "9")]), (2, [("1", "5"), ("4", "2")])):
        for name, _ in rows:
            write_image(tmp_path / f"dataset{k}" / "images" / f"{int(name):03d}.png")
        table = "\ufeffimage,label\n" + "".join(f"{n},{lab}\n" for n, lab in rows)
        (tmp_path / f"dataset{k}_labels.csv").write_text(table, encoding="utf-8")
    (tmp_path / "dataset1" / "images" / "002.png").unlink()  # a listed image that is missing
    sources = tdata.zheng_dataset(tmp_path)
    # label 9 is unknown, image 2 of dataset1 is missing
    assert [(s.group, s.label) for s in sources] == [
        ("dataset1/001", "neutrophil"), ("dataset2/001", "basophil"), ("dataset2/004", "lymphocyte"),
    ]
    assert [s.group for s in tdata.zheng_dataset(tmp_path, subsets=[2])] == ["dataset2/001", "dataset2/004"]
    with pytest.raises(tdata.DataError, match="label table"):
        tdata.zheng_dataset(tmp_path, subsets=[3])


def test_manifest_dataset(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "cells" / "a.png")
    write_image(tmp_path / "fields" / "f.png")
    manifest = tmp_path / "cells.csv"
    manifest.write_text(
        "path,label,group,x0,y0,x1,y1\n"
        "cells/a.png,basophil,patient1,,,,\n"
        "fields/f.png,neutrophil,patient2,1,2,10,12\n"
        "fields/f.png,monocyte,patient2,12,2,20.0,12\n"
        f"{tmp_path / 'cells' / 'b.png'},basophil,,,,,\n"
    )
    rows = tdata.manifest_dataset(manifest)
    assert [r.finder for r in rows] == ["centre", "box", "centre"]
    assert [r.group for r in rows] == ["patient1", "patient2", "b"]  # empty group: the image
    assert rows[0].path == tmp_path / "cells" / "a.png"  # relative to the manifest's folder
    assert rows[1].boxes == [(1, 2, 10, 12), (12, 2, 20, 12)]
    assert rows[1].labels == ["neutrophil", "monocyte"]
    assert tdata.manifest_dataset(manifest, finder="all")[0].finder == "all"
    (tmp_path / "bad.csv").write_text("file,label\nx.png,a\n")
    with pytest.raises(tdata.DataError, match="path"):
        tdata.manifest_dataset(tmp_path / "bad.csv")
    (tmp_path / "nolabel.csv").write_text("path,label\nx.png,\n")
    with pytest.raises(tdata.DataError, match="line 2: empty label"):
        tdata.manifest_dataset(tmp_path / "nolabel.csv")
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(tdata.DataError, match="no rows"):
        tdata.manifest_dataset(tmp_path / "empty.csv")


@pytest.mark.real_data
def test_cnmc_loader_on_shared_data(data_dir: Path) -> None:
    sources = tdata.cnmc_dataset(data_dir / "cnmc")
    with (data_dir / "cnmc" / "labels.csv").open() as handle:
        table = {row["path"]: row for row in csv.DictReader(handle)}
    assert len(sources) == len(table)
    for s in sources:
        row = table[s.path.relative_to(data_dir / "cnmc").as_posix()]
        assert s.group == row["subject"].upper()
        assert s.label == {"all": "blast", "hem": "normal"}[row["label"]]
        assert s.finder == "mask"


@pytest.mark.real_data
def test_folder_dataset_on_pbc(data_dir: Path) -> None:
    pbc = tdata.folder_dataset(data_dir / "pbc", classes=["basophil", "platelet"])
    assert Counter(s.label for s in pbc) == {"basophil": 350, "platelet": 350}
    assert len({s.group for s in pbc}) == len(pbc)

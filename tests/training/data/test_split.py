"""Grouped, stratified splits with no group on two sides; split.json."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training import data as tdata


def _sides_disjoint(groups: list[str], index: dict[str, np.ndarray]) -> bool:
    sides = [{groups[i] for i in idx} for idx in index.values()]
    return all(not (a & b) for k, a in enumerate(sides) for b in sides[k + 1 :])


def test_subject_split_of_the_cnmc_tree(cnmc_tree: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = cnmc_tree
    sources = tdata.cnmc_dataset(root)
    labels = [s.label for s in sources]
    groups = [s.group for s in sources]
    split = tdata.grouped_split(labels, groups, val=0.2, test=0.3, seed=3)
    tdata.assert_disjoint(split)
    assert sorted(sum(split.values(), [])) == sorted(set(groups))
    assert split["test"] and split["train"]
    assert all(part == sorted(part) for part in split.values())
    assert tdata.grouped_split(labels, groups, val=0.2, test=0.3, seed=3) == split  # same seed, same split
    doc = tdata.save_split(tmp_path / "split.json", split, labels, groups, seed=3, note="tree")
    assert doc["overlap"] == 0 and doc["seed"] == 3 and doc["note"] == "tree"
    assert doc["n_groups"] == {k: len(v) for k, v in split.items()}
    assert sum(sum(c.values()) for c in doc["counts"].values()) == len(sources)
    assert json.loads((tmp_path / "split.json").read_text()) == doc
    assert tdata.load_split(tmp_path / "split.json") == split
    assert _sides_disjoint(groups, tdata.split_indices(groups, split))


def test_split_is_stratified_by_the_groups_majority_label() -> None:
    rng = np.random.default_rng(5)
    groups = [f"g{int(i)}" for i in rng.integers(0, 60, 800)]
    labels = [("a", "b", "c")[int(g[1:]) % 3] for g in groups]
    labels[0] = "c" if labels[0] != "c" else "a"  # one odd sample does not move its group's label
    split = tdata.grouped_split(labels, groups, val=0.15, test=0.25, seed=0)
    assert len(split["test"]) == pytest.approx(0.25 * 60, abs=2)
    assert len(split["val"]) == pytest.approx(0.15 * 60, abs=2)
    for part in ("val", "test"):
        assert len({int(g[1:]) % 3 for g in split[part]}) == 3  # every class on each side
    index = tdata.split_indices(groups, split)
    assert sum(len(i) for i in index.values()) == len(groups) and _sides_disjoint(groups, index)
    assert tdata.grouped_split(labels, groups, val=0.0, test=0.25, seed=0)["val"] == []
    nothing = tdata.grouped_split(labels, groups, val=0.0, test=0.0)
    assert nothing["train"] == sorted(set(groups)) and nothing["test"] == []
    with pytest.raises(ValueError, match="length"):
        tdata.grouped_split(labels[:-1], groups)


def test_split_indices_leave_out_unlisted_groups() -> None:
    index = tdata.split_indices(["a", "b", "a", "c"], {"train": ["a"], "test": ["c"]})
    assert index["train"].tolist() == [0, 2] and index["test"].tolist() == [3]


def test_split_with_leak_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"groups": {"train": ["1", "2"], "val": [], "test": ["2"]}}))
    with pytest.raises(tdata.DataError, match="leaks 1 group"):
        tdata.load_split(path)
    with pytest.raises(tdata.DataError, match="between train and val"):
        tdata.save_split(tmp_path / "s.json", {"train": ["x"], "val": ["x"]}, ["a"], ["x"], seed=0)
    with pytest.raises(tdata.DataError, match="cannot read split"):
        tdata.load_split(tmp_path / "missing.json")


@pytest.mark.real_data
def test_subject_split_on_real_cnmc(data_dir: Path) -> None:
    sources = tdata.cnmc_dataset(data_dir / "cnmc")
    labels, groups = [s.label for s in sources], [s.group for s in sources]
    split = tdata.grouped_split(labels, groups, val=0.2, test=0.3, seed=0)
    index = tdata.split_indices(groups, split)
    assert _sides_disjoint(groups, index)
    # stratified: both classes on the test side
    assert set(np.asarray(labels)[index["test"]]) == {"blast", "normal"}
    assert Counter(np.asarray(labels)[index["train"]].tolist()).keys() == {"blast", "normal"}
    # the same seed gives the same split
    assert tdata.grouped_split(labels, groups, val=0.2, test=0.3, seed=0) == split


def test_inherit_split_keeps_earlier_parts_and_splits_only_new_groups() -> None:
    from training.data import inherit_split

    labels = ["a"] * 20 + ["b"] * 20 + ["blast"] * 30
    groups = [f"pbc:a{i}" for i in range(20)] + [f"pbc:b{i}" for i in range(20)] + [f"tal:{i // 3}" for i in range(30)]
    earlier = {"train": [f"pbc:a{i}" for i in range(14)] + [f"pbc:b{i}" for i in range(14)] + ["gone:1"],
               "val": ["pbc:a14", "pbc:a15", "pbc:b14", "pbc:b15"],
               "test": [f"pbc:a{i}" for i in range(16, 20)] + [f"pbc:b{i}" for i in range(16, 20)]}
    split = inherit_split(labels, groups, [earlier], val=0.1, test=0.3, seed=0)
    for part in ("train", "val", "test"):
        assert {g for g in split[part] if g.startswith("pbc:")} == set(earlier[part]) - {"gone:1"}
    assert "gone:1" not in split["train"]  # a group no longer in the data is not carried over
    new = {g for part in split.values() for g in part if g.startswith("tal:")}
    assert new == {f"tal:{i}" for i in range(10)} and split["test"] and any(g.startswith("tal:") for g in split["test"])
    with pytest.raises(tdata.DataError, match="disagree"):
        inherit_split(labels, groups, [earlier, {"train": [], "val": [], "test": ["pbc:a0"]}])

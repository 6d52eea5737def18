"""training.atlas: which cells go into a default atlas, and the agreement figures."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_factory import make_tiny_classifier

from leukview.core.atlas import Atlas
from leukview.core.models import Classifier
from leukview.core.preprocess import CropRule
from training.atlas import (
    agreement_table,
    balanced_selection,
    build_atlas,
    evaluate_atlas,
    exclusions,
    main,
    redistributable,
)

SUBJECTS = {"blast": ["1", "2", "3"], "normal": ["H1", "H2", "H3"]}


def _write_cells(root: Path, per_subject: int, seed: int) -> None:
    """C-NMC-like cells on black: red discs are blasts, blue ones normal."""
    rng = np.random.default_rng(seed)
    for label, folder in (("blast", "all"), ("normal", "hem")):
        out = root / "fold_0" / folder
        out.mkdir(parents=True, exist_ok=True)
        for subject in SUBJECTS[label]:
            for i in range(per_subject):
                image = np.zeros((64, 64, 3), np.uint8)
                colour = (200, 60, 60) if label == "blast" else (60, 60, 200)
                radius = int(rng.integers(14, 22))
                cv2.circle(image, (32, 32), radius, colour, -1)
                noise = rng.integers(-25, 25, image.shape)
                image = np.where(image > 0, np.clip(image + noise, 20, 255), 0).astype(np.uint8)
                cv2.imwrite(str(out / f"UID_{subject}_{i}_1_{folder}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    _write_cells(data / "lab", 3, 0)
    _write_cells(data / "copyleft", 2, 1)
    _write_cells(data / "other", 2, 2)
    model = make_tiny_classifier(tmp_path / "tiny-blast", classes=("blast", "normal"),
                                 crop=CropRule(1.2, 16, "black"))
    config = {
        "name": "tiny-blast", "classes": ["blast", "normal"],
        "train_data": [
            {"name": "lab", "kind": "cnmc", "root": "lab", "licence": "CC BY 3.0", "citation": "Lab A 2020"},
            {"name": "copyleft", "kind": "cnmc", "root": "copyleft", "licence": "GPL-3.0"},
        ],
        "eval_data": [{"name": "other", "kind": "cnmc", "root": "other", "licence": "CC BY 4.0",
                       "citation": "Other lab"}],
    }
    (model / "training-config.json").write_text(json.dumps(config))
    train = [f"{name}:{s}" for name in ("lab", "copyleft") for s in ("1", "2", "H1", "H2")]
    test = [f"{name}:{s}" for name in ("lab", "copyleft") for s in ("3", "H3")]
    (model / "split.json").write_text(json.dumps({"groups": {"train": train, "val": [], "test": test}}))
    return model, data


def test_redistributable_licences() -> None:
    assert redistributable("CC BY 4.0") and redistributable("CC BY 3.0") and redistributable("MIT")
    assert not redistributable("GPL-3.0 (repository licence)")
    assert not redistributable("research use; the original licence is not confirmed")


def test_balanced_selection_spreads_over_sets_then_subtypes() -> None:
    labels = np.array(["a"] * 10 + ["b"] * 4)
    strata = np.array(["x/p"] * 2 + ["x/q"] * 2 + ["x/r"] * 4 + ["y/"] * 2 + ["x/p"] * 4)
    chosen = balanced_selection(labels, strata, 6, ["a", "b"])
    assert len(chosen) == 8 and len(set(chosen.tolist())) == 8  # the rarest class (4) sets the count
    assert sorted(labels[chosen].tolist()) == ["a"] * 4 + ["b"] * 4
    a_strata = strata[chosen][labels[chosen] == "a"]
    # data sets take turns (both y cells), then x's sub-types take turns
    assert sorted(a_strata.tolist()) == ["x/p", "x/q", "y/", "y/"]
    with pytest.raises(SystemExit, match="class c"):
        balanced_selection(labels, strata, 3, ["a", "b", "c"])


def test_build_ships_only_redistributable_train_cells(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = setup
    out = tmp_path / "atlas"
    atlas = build_atlas(model, out, data, per_class=5, include=["other"], cache_dir=None, thumbnail_size=32)
    classifier = Classifier.load(model)
    loaded = Atlas.load(out, classifier)
    assert len(loaded) == len(atlas) == 10
    assert loaded.info()["by_label"] == {"blast": 5, "normal": 5}
    assert set(loaded.info()["by_source"]) <= {"lab", "other"}  # never the GPL set
    for entry in loaded.entries:
        if entry.source == "lab":
            assert entry.group in {"1", "2", "H1", "H2"}  # never a held-out subject
            assert entry.licence == "CC BY 3.0" and entry.file.startswith("lab/fold_0/")
        assert loaded.thumbnail(entry.atlas_id).shape == (32, 32, 3)
    sources = loaded.info()["sources"]
    assert sources.get("lab", {}).get("attribution", "Lab A 2020") == "Lab A 2020"
    assert loaded.meta["build"]["per_class"] == 5


def test_build_refuses_an_unshippable_include(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = setup
    config = json.loads((model / "training-config.json").read_text())
    config["eval_data"][0]["licence"] = "research use only"
    (model / "training-config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="does not allow"):
        build_atlas(model, tmp_path / "atlas", data, include=["other"], cache_dir=None)
    with pytest.raises(SystemExit, match="no evaluation set named nope"):
        build_atlas(model, tmp_path / "atlas", data, include=["nope"], cache_dir=None)


def test_evaluate_reports_every_set(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = setup
    build_atlas(model, tmp_path / "atlas", data, per_class=4, include=["other"], cache_dir=None)
    rows = evaluate_atlas(model, tmp_path / "atlas", data, k=3, cache_dir=None)
    by_set = {r["set"]: r for r in rows}
    assert set(by_set) == {"lab held out", "copyleft held out", "other"}
    assert by_set["lab held out"]["n"] == 6 and by_set["other"]["n"] == 12
    for row in rows:
        for key in ("classifier_accuracy", "atlas_accuracy", "atlas_agrees_with_classifier"):
            assert 0.0 <= row[key] <= 1.0
        assert row["k"] == 3
    assert by_set["other"]["left_out"] and not by_set["lab held out"]["left_out"]
    table = agreement_table(rows, 3)
    assert table.count("\n") == len(rows) + 1 and "| other | 12 |" in table


def test_exclusions_leave_the_whole_group_out(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = setup
    atlas = build_atlas(model, tmp_path / "atlas", data, per_class=6, include=["other"], cache_dir=None)
    groups = atlas.ids_by_group()
    other_groups = {e.group for e in atlas.entries if e.source == "other"}
    assert other_groups
    subject = sorted(other_groups)[0]
    banned = exclusions(atlas, "other", [subject, "unknown"])
    assert banned[0] == {e.atlas_id for e in atlas.entries if e.source == "other" and e.group == subject}
    assert banned[0] <= set(groups[subject]) and banned[1] == set()
    assert exclusions(atlas, "lab held out", [subject]) == [set()]  # another set: nothing to leave out


def test_command_line(setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, data = setup
    out = tmp_path / "atlas"
    report = tmp_path / "agreement.json"
    assert main(["--model", str(model), "--out", str(out), "--data", str(data), "--cache", "",
                 "--per-class", "2", "--evaluate", "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "4 cells" in printed and "| lab held out | 6 |" in printed
    assert [r["set"] for r in json.loads(report.read_text())] == ["lab held out", "copyleft held out", "other"]
    assert "python -m training.atlas" in Atlas.load(out).meta["build"]["command"]


def test_exclusions_also_leave_out_the_same_image(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = setup
    atlas = build_atlas(model, tmp_path / "atlas", data, per_class=6, include=["other"], cache_dir=None)
    entry = next(e for e in atlas.entries if e.source == "other")
    # the same image listed under another set's name (as BCCD and its halves are)
    banned = exclusions(atlas, "other-half", ["no-such-group"], [entry.file])
    assert banned == [{entry.atlas_id}]


def test_evaluate_with_a_grown_atlas(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = setup
    build_atlas(model, tmp_path / "atlas", data, per_class=3, cache_dir=None)
    base = len(Atlas.load(tmp_path / "atlas"))
    rows = evaluate_atlas(model, tmp_path / "atlas", data, k=3, cache_dir=None, sets=["lab held out"],
                          grow=["other"])
    assert [r["set"] for r in rows] == ["lab held out"]
    assert rows[0]["atlas"] == {"count": base + 12, "grown_by": ["other"]}
    assert len(Atlas.load(tmp_path / "atlas")) == base  # the shipped atlas is untouched
    with pytest.raises(SystemExit, match="--grow"):
        evaluate_atlas(model, tmp_path / "atlas", data, cache_dir=None, grow=["nope"])


@pytest.mark.real_data
def test_shipped_wbc_atlas_agrees_on_held_out_pbc_cells(data_dir: Path) -> None:
    from leukview.core.atlas import load_default_atlas, majority_label
    from training.atlas import model_parts, run_crops
    from training.data import extract_crops

    model_dir = Path(__file__).resolve().parents[2] / "models" / "wbc-type"
    classifier = Classifier.load(model_dir)
    atlas = load_default_atlas(classifier)
    assert atlas is not None
    part = next(p for p in model_parts(model_dir, data_dir, "evaluate") if p.name == "pbc")
    picked = []
    for cls in classifier.spec.classes:  # 5 held-out cells per class
        picked += [s for s in part.sources if s.label == cls][:5]
    crops = extract_crops(picked, classifier.spec.crop, classifier.spec.input_size, cache_dir=None, progress=False)
    assert not {str(s) for s in crops.sources} & {str(data_dir / e.file) for e in atlas.entries}
    _, embeddings = run_crops(classifier, crops.crops)
    votes = [majority_label(n)[0] for n in atlas.search(embeddings, k=5)]
    agreement = np.mean(np.array(votes) == crops.labels)
    assert agreement >= 0.85, agreement  # docs/explain.md: 97.7% on all 558 held-out PBC cells

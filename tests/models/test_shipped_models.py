"""The models in ``models/``, run by the app's own pipeline, still earn their model cards' figures.

Each shipped model folder carries ``split.json`` (which groups training held
out). These tests segment the held-out images with today's
``leukview.core.segment``, classify with ``leukview.core.models`` exactly as
``leukview analyze`` does, and compare with what the card promises. They need
no torch: only the dataset listings of ``training.data``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leukview.core.analysis import analyze_image
from leukview.core.models import Classifier, read_sidecar

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted(p.parent for p in (ROOT / "models").glob("*/model.json"))

tdata = pytest.importorskip("training.data")
loader_args = pytest.importorskip("training.config").loader_args


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_shipped_model_folder_is_complete(model_dir: Path) -> None:
    spec = read_sidecar(model_dir / "model.json")
    classifier = Classifier.load(model_dir)  # checks the sha256, the graph and the CAM weights
    assert classifier.spec.classes == spec.classes
    assert spec.licence and all(d["licence"] for d in spec.training["data"])
    assert (model_dir / "model.onnx").stat().st_size <= 25 * 1024 * 1024
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert "Decision support, not a diagnosis" in card
    split = json.loads((model_dir / "split.json").read_text(encoding="utf-8"))
    assert split["overlap"] == 0
    tdata.assert_disjoint(split["groups"])
    config = json.loads((model_dir / "training-config.json").read_text(encoding="utf-8"))
    # a second stage is trained on every class and keeps the rows of its head it is asked about
    assert config.get("export", {}).get("classes", config["classes"]) == spec.classes
    assert spec.refines == config.get("export", {}).get("refines")


def test_the_shipped_models_make_one_call_per_cell() -> None:
    """One type model; any other model re-decides some of its classes; no flag model overrides a type."""
    specs = [read_sidecar(d / "model.json") for d in MODELS]
    roles = sorted(spec.role for spec in specs)
    assert roles.count("type") == 1 and "flag" not in roles
    primary = next(spec for spec in specs if spec.role == "type")
    for spec in specs:
        if spec.role == "refine":
            assert spec.refines and set(spec.refines) <= set(primary.classes)
            assert set(spec.refines) <= set(spec.classes) and "blast" in spec.classes
            assert spec.openset is not None  # the open-set score of every white cell comes from here


def _held_out(model_dir: Path, data_dir: Path, entry_name: str) -> tuple[list, dict]:
    """Sources of one training dataset whose groups the model's split held out."""
    config = json.loads((model_dir / "training-config.json").read_text(encoding="utf-8"))
    entry = next(e for e in config["train_data"] if e.get("name") == entry_name)
    split = json.loads((model_dir / "split.json").read_text(encoding="utf-8"))
    test_groups = {g.split(":", 1)[1] for g in split["groups"]["test"] if g.startswith(f"{entry_name}:")}
    sources = tdata.load_sources(loader_args(entry), data_dir)
    return [s for s in sources if s.group in test_groups], read_sidecar(model_dir / "model.json").metrics


def test_wbc_type_held_out_pbc_and_bccd(data_dir: Path) -> None:
    """PBC held-out images (centre white cell) and BCCD boxes, segmented and classified by the app."""
    model_dir = ROOT / "models" / "wbc-type"
    classifier = Classifier.load(model_dir)
    sources, metrics = _held_out(model_dir, data_dir, "pbc")
    assert len(sources) > 400
    right = found = 0
    for source in sources:
        image = tdata.read_rgb(source.path)
        analysis = analyze_image(image, [classifier])
        h, w = image.shape[:2]
        cell = tdata.nearest_to([c for c in analysis.cells if c.kind == "wbc"], ((w - 1) / 2, (h - 1) / 2))
        if cell is None:  # training cropped a centred box instead; the app cannot classify what it does not find
            continue
        found += 1
        right += cell.predictions["wbc-type"].label == source.label
    accuracy = right / found
    recorded = metrics["heldout"].get("by_dataset", {}).get("pbc", metrics["heldout"])["accuracy"]
    print(f"wbc-type PBC held-out: {accuracy:.4f} of {found} cells found in {len(sources)} images (card: {recorded:.4f})")
    assert found >= 0.98 * len(sources)
    assert accuracy >= 0.97 and abs(accuracy - recorded) <= 0.02


SOURCES = ROOT / "models" / "wbc-mononuclear" / "sources.json"


def _recorded(name: str) -> dict:
    return json.loads(SOURCES.read_text(encoding="utf-8"))[name]


def _measure(data_dir: Path, name: str) -> dict:
    sources = pytest.importorskip("training.sources")
    return sources.measure(ROOT / "models", data_dir, [name], say=print)[name]


def test_bccd_types_and_blast_false_alarms_of_the_pair(data_dir: Path) -> None:
    """BCCD's 256 annotated white cells (normal smears, another microscope): 4 types; every blast call is false."""
    got, card = _measure(data_dir, "bccd"), _recorded("bccd")
    print(f"BCCD: accuracy {got['accuracy']:.4f} (card {card['accuracy']:.4f}), blast calls {got['blast_calls']} "
          f"of {got['cells']}, atypical {got['atypical']}")
    assert got["cells"] >= 250 and abs(got["accuracy"] - card["accuracy"]) <= 0.02
    assert got["accuracy"] >= 0.80  # the target is 0.85: not met (the card says so); no worse may ship
    assert got["blast_fraction"] <= 0.02  # the target


@pytest.mark.parametrize("name", ["txl-bcdd", "txl-raabin"])
def test_blast_false_alarms_on_normal_donors_of_two_more_microscopes(data_dir: Path, name: str) -> None:
    got, card = _measure(data_dir, name), _recorded(name)
    print(f"{name}: blast calls {got['blast_calls']} of {got['cells']} (card {card['blast_calls']})")
    assert got["cells"] >= 150 and abs(got["blast_fraction"] - card["blast_fraction"]) <= 0.01
    # the target is <= 2 %: not met (bcdd 2.3 %, raabin 10.6 %; the card says so); no worse may ship
    assert got["blast_fraction"] <= card["blast_fraction"] + 0.01


@pytest.mark.slow
def test_taleqani_held_out_fields_and_cnmc_subjects(data_dir: Path) -> None:
    """B-ALL vs benign held-out fields (field call: >= half the white cells blast); C-NMC by subject."""
    got, card = _measure(data_dir, "taleqani"), _recorded("taleqani")
    print(f"Taleqani fields: {got['field_accuracy']:.4f} of {got['fields']} (card {card['field_accuracy']:.4f})")
    assert got["fields"] >= 400 and abs(got["field_accuracy"] - card["field_accuracy"]) <= 0.02
    assert got["field_accuracy"] >= 0.70  # the target is 0.95: not met (0.727; see the card)
    cnmc, card = _measure(data_dir, "cnmc"), _recorded("cnmc")
    assert cnmc["cells"] == card["cells"] and abs(cnmc["sensitivity"] - card["sensitivity"]) <= 0.05


def test_a_hundred_normal_bccd_fields_tiled_show_almost_no_blasts(data_dir: Path) -> None:
    """The viewer's differential of 100 normal BCCD fields tiled into one image (issue 14's first finding)."""
    got = _measure(data_dir, "bccd-tiled")
    print(f"100 BCCD fields: blasts {got['blast_count']} of {got['counted']} ({got['blast_percent']:.1f} %)")
    assert got["counted"] >= 80 and got["blast_percent"] <= 3.0

"""The laboratory's class list: the default list, lab files, validation, keys, mapping, palette."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from cell_factory import BLAST, TYPE, make_cell

from leukview.core import calls, classes
from leukview.core.analysis import ModelRun
from leukview.core.calls import (
    NON_LEUKOCYTE,
    class_colour,
    differential_count,
    differential_rows,
    display_name,
    review_classes,
)
from leukview.core.cells import ReviewState
from leukview.core.classes import (
    CLASS_KEY_SCHEME,
    ClassList,
    ClassListError,
    abbreviation,
    active_classes,
    class_list_problem,
    class_list_source,
    colour_distance,
    default_class_list,
    install_class_list,
    load_class_list,
    parse_class_list,
    remove_installed_class_list,
    set_active_classes,
)
from leukview.core.keymap import CLASS_KEYS, class_keys

LAB = """
name = "Haematology, St Elsewhere"

[[classes]]
name = "seg"
display = "segmented neutrophil"
abbreviation = "Seg"
colour = "#56B4E9"
aliases = ["neutrophil"]

[[classes]]
name = "lymphocyte"
colour = "#009E73"

[[classes]]
name = "smudge cell"
colour = "#BBBBBB"
counts_in_total = false

[[classes]]
name = "artefact"
colour = "#999999"
key = "0"
counts_in_total = false
"""


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty configuration folder and no $LEUKVIEW_CLASSES; the built-in list again afterwards."""
    monkeypatch.setenv(classes.CONFIG_DIR_ENV, str(tmp_path / "config"))
    monkeypatch.delenv(classes.CLASSES_ENV, raising=False)
    set_active_classes(None)
    yield tmp_path / "config"
    monkeypatch.undo()
    set_active_classes(None)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_list_has_what_a_reviewer_of_a_smear_needs(config: Path):
    lab = active_classes()
    assert lab.source == "built in" and len(lab) == 22
    needed = {
        "neutrophil", "band", "lymphocyte", "variant lymphocyte", "large granular lymphocyte", "plasma cell",
        "monocyte", "eosinophil", "basophil", "promyelocyte", "myelocyte", "metamyelocyte", "blast",
        "myeloblast", "lymphoblast", "smudge cell", "erythroblast", "giant platelet", "platelet clump", "artefact",
    }  # fmt: skip
    assert needed <= set(lab.names)
    assert [lab.get(n).lineage for n in ("myeloblast", "lymphoblast", "blast")] == ["myeloid", "lymphoid", "unspecified"]
    # smudge cells, NRBC, platelets and artefacts are counted apart; NRBC per 100 white cells
    assert {"smudge cell", "erythroblast", "giant platelet", "platelet clump", "platelet", "artefact"} == set(
        lab.not_counted()
    )
    assert lab.get("erythroblast").per_100_wbc and not lab.get("smudge cell").per_100_wbc
    # the first ten keys are the number row, the next ten Shift and the number row; no key twice
    keys = dict(lab.assign_keys())
    assert sorted(k for k in keys if k) == sorted(CLASS_KEY_SCHEME)
    assert {keys[k] for k in "1234567890"} >= {"neutrophil", "lymphocyte", "monocyte", "eosinophil", "blast", "artefact"}
    assert list(CLASS_KEYS) == list(CLASS_KEY_SCHEME) and CLASS_KEYS[10] == "Shift+1"
    # every class has its own abbreviation: never colour alone
    assert len({c.abbreviation.lower() for c in lab}) == len(lab)


def test_the_palette_is_colour_blind_safe(config: Path):
    # the seven classes of a normal differential stay apart under each dichromacy (CIE76 > 15)
    main = ["neutrophil", "band", "lymphocyte", "monocyte", "eosinophil", "basophil", "blast"]
    for kind in ("normal", "deuteranopia", "protanopia", "tritanopia"):
        for a, b in itertools.combinations(main, 2):
            assert colour_distance(class_colour(a), class_colour(b), kind) > 15, (kind, a, b)
    # the pair the old palette lost for red-green colour-blind readers
    assert colour_distance(class_colour("eosinophil"), class_colour("lymphocyte"), "deuteranopia") > 40
    assert colour_distance("#FF1744", "#00C853", "deuteranopia") < 12  # the old eosinophil red and lymphocyte green
    assert colour_distance("#123456", "#123456", "deuteranopia") == 0


def test_the_calls_read_the_active_list(config: Path):
    assert list(calls.CLINICAL_ORDER) == active_classes().names
    assert "smudge cell" in NON_LEUKOCYTE and "lymphocyte" not in NON_LEUKOCYTE and "artefact" in NON_LEUKOCYTE
    assert calls.CLASS_COLOURS["eosinophil"] == class_colour("eosinophil") == "#D55E00"
    assert display_name("erythroblast") == "erythroblast (NRBC)" and display_name("ig") == "IG"
    assert abbreviation("eosinophil") == "Eos" and abbreviation(None) == "?"
    # what the models do not know is offered all the same, in clinical order, artefact last
    offered = review_classes([TYPE, BLAST])
    assert offered[:3] == ["neutrophil", "band", "lymphocyte"] and offered[-1] == "artefact"
    assert {"smudge cell", "variant lymphocyte", "myeloblast"} <= set(offered)
    # an unknown model label is still shown, under its own name
    odd = ModelRun("odd", "1", "CPUExecutionProvider", ["neutrophil", "hairy cell"])
    assert "hairy cell" in review_classes([odd]) and display_name("hairy cell") == "hairy cell"
    assert abbreviation("hairy cell") == "Hc" and class_colour("hairy cell").startswith("#")


def test_a_lab_file_is_read_from_the_environment_or_the_configuration_folder(config: Path, tmp_path, monkeypatch):
    assert class_list_source() == (None, "built in")
    installed = write(config / "classes.toml", LAB)
    set_active_classes(None)
    assert class_list_source() == (installed, "the configuration folder")
    lab = active_classes()
    assert lab.name == "Haematology, St Elsewhere" and lab.names == ["seg", "lymphocyte", "smudge cell", "artefact"]
    assert lab.get("lymphocyte").display == "lymphocyte" and lab.get("lymphocyte").abbreviation == "Lymp"
    other = write(tmp_path / "other.json", json.dumps({"classes": [{"name": "cell", "colour": "#000000"}]}))
    monkeypatch.setenv(classes.CLASSES_ENV, str(other))
    set_active_classes(None)
    assert class_list_source()[1] == "$LEUKVIEW_CLASSES" and active_classes().names == ["cell"]


def test_model_labels_map_onto_the_labs_classes(config: Path):
    write(config / "classes.toml", LAB)
    set_active_classes(None)
    # wbc-type's "neutrophil" is the lab's "seg": one row, one colour, one name
    assert display_name("neutrophil") == "segmented neutrophil" and class_colour("neutrophil") == "#56B4E9"
    offered = review_classes([TYPE])
    assert "neutrophil" not in offered and offered[0] == "seg" and "basophil" in offered  # unknown: kept
    cells = [
        make_cell(1, wbc_type=("neutrophil", 0.9)),
        make_cell(2, wbc_type=("lymphocyte", 0.9)),
        make_cell(3, wbc_type=("neutrophil", 0.9)),
    ]
    cells[2].review = ReviewState("seg", "jdoe", "t")
    cells[1].review = ReviewState("smudge cell", "jdoe", "t")
    diff = differential_count(cells, [TYPE])
    counted, apart = differential_rows(diff)
    rows = {r.name: r for r in counted + apart}
    assert rows["seg"].count == 2 and rows["seg"].percent == pytest.approx(100.0)  # alias and class together
    assert rows["smudge cell"].count == 1 and not rows["smudge cell"].counted and rows["smudge cell"].percent is None
    assert diff.leukocytes == 2


def test_the_default_differential_lists_every_class_in_clinical_order_apart_what_is_not_counted(config: Path):
    cells = [make_cell(i, wbc_type=("neutrophil", 0.9)) for i in range(1, 5)]
    cells[0].review = ReviewState("erythroblast", "jdoe", "t")
    cells[1].review = ReviewState("smudge cell", "jdoe", "t")
    diff = differential_count(cells, [TYPE])
    counted, apart = differential_rows(diff)
    names = [r.name for r in counted]
    assert names[:6] == ["neutrophil", "band", "lymphocyte", "monocyte", "eosinophil", "basophil"]
    assert "smudge cell" not in names and [r.name for r in apart][-1] == "artefact"
    nrbc = next(r for r in apart if r.name == "erythroblast")
    assert nrbc.count == 1 and nrbc.percent is None and nrbc.per_100_wbc == pytest.approx(50.0)  # 1 per 2 WBC
    assert next(r for r in counted if r.name == "neutrophil").percent == pytest.approx(100.0)
    assert sum(r.percent or 0 for r in counted) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": "2"}, "key 2 is also the key of"),
        ({"name": "band"}, "'band' is already used by band"),
        ({"colour": "red"}, "colour 'red' is not #RRGGBB"),
        ({"colour": "#12345G"}, "is not #RRGGBB"),
        ({"key": "N"}, "key 'N' is not a class key"),
        ({"key": "Ctrl+1"}, "is not a class key"),
        ({"group": "fish"}, "group 'fish' is not one of"),
        ({"abbreviation": "Band"}, "abbreviation Band is also that of band"),
        ({"abbreviation": "toolong"}, "must be 1 to 5 characters"),
        ({"name": "Big Cell"}, "must be lower-case"),
        ({"counts_in_total": "yes"}, "'counts_in_total' must be true or false"),
        ({"per_100_wbc": True}, "cannot count in their total"),
        ({"aliases": ["neutrophil"]}, "'neutrophil' is already used by neutrophil"),
        ({"colr": "#000000"}, "unknown field(s) colr"),
    ],
)
def test_a_bad_entry_is_refused_with_a_clear_message(change: dict, message: str):
    entries = [
        {"name": "neutrophil", "colour": "#56B4E9", "key": "1"},
        {"name": "band", "colour": "#0072B2", "key": "2", "abbreviation": "Band"},
    ]
    entries.append({"name": "third", "colour": "#009E73", "abbreviation": "Thr", **change})
    with pytest.raises(ClassListError, match="lab.toml: class 3") as caught:
        parse_class_list({"classes": entries}, "lab.toml")
    assert message in str(caught.value)


def test_unreadable_files_are_refused_and_the_built_in_list_is_used_instead(config: Path, tmp_path: Path):
    with pytest.raises(ClassListError, match="not valid TOML"):
        load_class_list(write(tmp_path / "bad.toml", "[[classes]\nname ="))
    with pytest.raises(ClassListError, match="not valid JSON"):
        load_class_list(write(tmp_path / "bad.json", "{"))
    with pytest.raises(ClassListError, match="non-empty 'classes' list"):
        load_class_list(write(tmp_path / "empty.toml", "name = 'x'"))
    with pytest.raises(ClassListError, match="cannot read the class list"):
        load_class_list(tmp_path / "missing.toml")
    with pytest.raises(ClassListError, match="no class counts in the white-cell total"):
        parse_class_list({"classes": [{"name": "a", "colour": "#000000", "counts_in_total": False}]})
    write(config / "classes.toml", "[[classes]]\nname = 'x'\ncolour = 'blue'\n")
    set_active_classes(None)
    assert active_classes().source == "built in"  # never half-used
    problem = class_list_problem()
    assert problem is not None and "colour 'blue'" in problem and "built-in class list is used instead" in problem


def test_installing_a_lab_file_validates_it_first(config: Path, tmp_path: Path):
    bad = write(tmp_path / "bad.toml", "[[classes]]\nname = 'x'\ncolour = '#00000'\n")
    with pytest.raises(ClassListError):
        install_class_list(bad)
    assert not config.exists() or not list(config.iterdir())  # nothing written
    installed = install_class_list(write(tmp_path / "lab.toml", LAB))
    assert installed == config / "classes.toml" and active_classes().names[0] == "seg"
    remove_installed_class_list()
    assert active_classes().source == "built in"


def test_keys_beyond_ten_classes_follow_one_scheme(config: Path):
    many = ClassList([classes.CellClass(f"c{i}", f"c{i}", f"C{i}", "#000000") for i in range(23)])
    keys = [key for key, _ in many.assign_keys()]
    assert keys[:10] == list("1234567890") and keys[10:20] == [f"Shift+{d}" for d in "1234567890"]
    assert keys[20:] == [None, None, None]
    # a class's own key wins; the others take the keys left, in order
    own = ClassList([
        classes.CellClass("a", "a", "A", "#000000"),
        classes.CellClass("b", "b", "B", "#000000", key="1"),
        classes.CellClass("c", "c", "C", "#000000"),
    ])  # fmt: skip
    set_active_classes(own)
    assert class_keys(["a", "b", "c", "unknown"]) == [("2", "a"), ("1", "b"), ("3", "c"), ("4", "unknown")]
    assert own.to_dict()["classes"][1]["key"] == "1"
    assert parse_class_list(own.to_dict()).names == own.names  # the file form reads back


def test_the_default_list_reads_back_from_its_file_form():
    lab = default_class_list()
    again = parse_class_list(json.loads(json.dumps(lab.to_dict())))
    assert again.names == lab.names and [c.key for c in again] == [c.key for c in lab]
    assert [c.colour for c in again] == [c.colour for c in lab]

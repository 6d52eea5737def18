"""The training package: loaders, splits, weights, augmentation, train -> export -> onnxruntime."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from leukview.core.models import Classifier, read_sidecar  # noqa: E402
from leukview.core.preprocess import CropRule, crop_cell  # noqa: E402
from training import data as tdata  # noqa: E402
from training.augment import NO_AUGMENT, AugmentConfig, augment, hed_jitter  # noqa: E402
from training.config import config_from_dict  # noqa: E402
from training.evaluate import classification_metrics, expected_calibration_error, field_metrics  # noqa: E402
from training.models import build_model, imagenet_lite, load_by_order, static_padding  # noqa: E402

# ----------------------------------------------------------------------------
# loaders


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
    # every C-NMC cell is found on its black background, and crops like the app
    image = tdata.read_rgb(sources[0].path)
    cell = tdata.cell_on_black(image)
    assert cell is not None
    inside = image.max(axis=2) > 12
    assert abs(cell.measurements["area"] - inside.sum()) < 0.05 * inside.sum()
    crop = crop_cell(image, cell, CropRule(background="black"), 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8


def _official_tree(root: Path) -> dict[str, str]:
    """A small C-NMC tree in the official and the Kaggle layouts; returns file name -> subject."""
    rng = np.random.default_rng(1)
    expected = {}
    layouts = [
        ("C-NMC_training_data/fold_0", ["1", "2", "H3"]),
        ("C-NMC_training_data/fold_1", ["4", "H5"]),
        ("C-NMC_Leukemia/training_data/fold_2", ["6", "H7", "H8"]),
    ]
    for folder, subjects in layouts:
        for subject in subjects:
            kind = "hem" if subject.startswith("H") else "all"
            for n in range(3):
                image = np.zeros((90, 90, 3), np.uint8)
                centre = tuple(int(v) for v in rng.integers(35, 55, 2))
                cv2.circle(image, centre, int(rng.integers(15, 25)), (200, 120, 180), -1)
                name = f"UID_{subject}_{n + 1}_{n + 2}_{kind}.bmp"
                path = root / folder / kind / name
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), image)
                expected[name] = subject
    return expected


def test_cnmc_official_layout_generated(tmp_path: Path) -> None:
    expected = _official_tree(tmp_path)
    sources = tdata.cnmc_dataset(tmp_path)
    assert {s.path.name: s.group for s in sources} == expected
    assert all(s.label == ("normal" if s.group.startswith("H") else "blast") for s in sources)
    only = tdata.cnmc_dataset(tmp_path, folds=[1])
    assert {s.group for s in only} == {"4", "H5"}
    # cells found on black match the drawn discs
    for s in sources[:4]:
        cell = tdata.cell_on_black(tdata.read_rgb(s.path))
        assert cell is not None and 600 < cell.measurements["area"] < 2100
    # subject split: no subject on both sides, every subject somewhere
    labels = [s.label for s in sources]
    groups = [s.group for s in sources]
    split = tdata.grouped_split(labels, groups, val=0.2, test=0.3, seed=3)
    tdata.assert_disjoint(split)
    assert sorted(sum(split.values(), [])) == sorted(set(groups))
    assert split["test"] and split["train"]
    doc = tdata.save_split(tmp_path / "split.json", split, labels, groups, seed=3)
    assert doc["overlap"] == 0
    assert tdata.load_split(tmp_path / "split.json") == split
    index = tdata.split_indices(groups, split)
    for a in index:
        for b in index:
            if a != b:
                assert not {groups[i] for i in index[a]} & {groups[i] for i in index[b]}


def test_split_with_leak_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"groups": {"train": ["1", "2"], "val": [], "test": ["2"]}}))
    with pytest.raises(tdata.DataError, match="leaks"):
        tdata.load_split(path)


def test_cnmc_bad_names_and_folders(tmp_path: Path) -> None:
    with pytest.raises(tdata.DataError, match="subject"):
        tdata.cnmc_subject("cell_12.bmp")
    with pytest.raises(tdata.DataError, match="no C-NMC cells"):
        tdata.cnmc_dataset(tmp_path)
    with pytest.raises(tdata.DataError, match="not found"):
        tdata.cnmc_dataset(tmp_path / "missing")


def test_subject_split_on_real_cnmc(data_dir: Path) -> None:
    sources = tdata.cnmc_dataset(data_dir / "cnmc")
    labels, groups = [s.label for s in sources], [s.group for s in sources]
    split = tdata.grouped_split(labels, groups, val=0.2, test=0.3, seed=0)
    index = tdata.split_indices(groups, split)
    sides = [set(np.asarray(groups)[i]) for i in index.values()]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    # stratified: both classes on the test side
    assert set(np.asarray(labels)[index["test"]]) == {"blast", "normal"}
    # the same seed gives the same split
    assert tdata.grouped_split(labels, groups, val=0.2, test=0.3, seed=0) == split


def test_other_loaders(data_dir: Path, tmp_path: Path) -> None:
    pbc = tdata.folder_dataset(data_dir / "pbc", classes=["basophil", "platelet"])
    assert Counter(s.label for s in pbc) == {"basophil": 350, "platelet": 350}
    assert len({s.group for s in pbc}) == len(pbc)
    normals = tdata.folder_dataset(data_dir / "pbc", classes=["basophil", "lymphocyte"], per_folder=40,
                                   label_map={"basophil": "normal", "lymphocyte": "normal"})
    assert Counter(s.label for s in normals) == {"normal": 80}
    assert Counter(s.group.split("/")[0] for s in normals) == {"basophil": 40, "lymphocyte": 40}
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
    # a hospital manifest: relative paths, groups, optional boxes
    image = pbc[0].path
    manifest = tmp_path / "cells.csv"
    manifest.write_text(
        "path,label,group,x0,y0,x1,y1\n"
        f"{image},basophil,patient1,,,,\n"
        f"{bccd[0].path},neutrophil,patient2,{','.join(str(v) for v in bccd[0].boxes[0])}\n"
    )
    rows = tdata.manifest_dataset(manifest)
    assert [r.finder for r in rows] == ["centre", "box"]
    assert [r.group for r in rows] == ["patient1", "patient2"]
    (tmp_path / "bad.csv").write_text("file,label\nx.png,a\n")
    with pytest.raises(tdata.DataError, match="path"):
        tdata.manifest_dataset(tmp_path / "bad.csv")


def test_txl_loader_reads_yolo_white_cell_boxes(data_dir: Path) -> None:
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


def test_extract_crops_uses_the_app_crop(data_dir: Path, tmp_path: Path) -> None:
    sources = tdata.folder_dataset(data_dir / "pbc", classes=["neutrophil"])[:2]
    rule = CropRule(scale=1.5)
    crops = tdata.extract_crops(sources, rule, 48, cache_dir=tmp_path, name="t", progress=False)
    assert crops.crops.shape == (2, 48, 48, 3)
    assert crops.report["images"] == 2
    assert sum(crops.report["by_how"].values()) == 2
    # the same pixels as the app's crop_cell for the chosen cell
    from leukview.core.segment import segment

    image = tdata.read_rgb(sources[0].path)
    if crops.how[0] == "segmented":
        cells = [c for c in segment(image).cells if c.kind == "wbc"]
        cell = tdata.nearest_to(cells, ((image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2))
        assert np.array_equal(crops.crops[0], crop_cell(image, cell, rule, 48))
    # cached: a second call reads the file
    again = tdata.extract_crops(sources, rule, 48, cache_dir=tmp_path, name="t", progress=False)
    assert np.array_equal(again.crops, crops.crops)
    assert list((tmp_path / "crops").glob("t-*.npz"))


# ----------------------------------------------------------------------------
# models and weights


def test_pretrained_lite0_calls_chelsea_a_cat() -> None:
    from skimage.data import chelsea

    model = imagenet_lite("tf_efficientnet_lite0")
    image = chelsea()
    h, w = image.shape[:2]
    side = min(h, w)
    image = image[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(((image / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        top = int(model(x).argmax())
    assert 281 <= top <= 285  # ImageNet's domestic cats


def test_load_by_order_checks_shapes() -> None:
    model = build_model("effnet-lite0", 3, 64, weights=None)
    state = model.backbones[0].state_dict()
    bad = dict(state)
    first = next(iter(bad))
    bad[first] = torch.zeros(1)
    with pytest.raises(ValueError, match="do not fit"):
        load_by_order(model.backbones[0], bad)


def test_heads_and_static_padding() -> None:
    x = torch.randn(2, 3, 64, 64)
    model = build_model("effnet-lite0", 4, 64, weights=None).eval()
    padded = static_padding(model, 64)
    with torch.no_grad():
        (l1, f1), (l2, f2) = model(x), padded(x)
        assert torch.allclose(l1, l2) and torch.allclose(f1, f2)
        # linear head: the logits are the classifier on the averaged features (exact CAM)
        assert torch.allclose(l1, model.classifier(f1.mean(dim=(2, 3))), atol=1e-5)
    b3 = build_model("effnetb3-head", 2, 64, weights=None).eval()
    assert not b3.cam_exact
    with torch.no_grad():
        logits, features = b3(x)
    assert logits.shape == (2, 2) and features.shape[1] == 1536


# ----------------------------------------------------------------------------
# augmentation and metrics


def test_augment_keeps_crops_valid(data_dir: Path) -> None:
    image = tdata.read_rgb(next((data_dir / "pbc" / "eosinophil").iterdir()))
    crop = np.ascontiguousarray(image[100:228, 100:228])
    before = crop.copy()
    rng = np.random.default_rng(0)
    outs = [augment(crop, rng, AugmentConfig(blur=1.0, lowres=1.0, grayscale=1.0)) for _ in range(4)]
    assert np.array_equal(crop, before)
    assert all(o.shape == crop.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, crop) for o in outs)
    assert np.array_equal(augment(crop, rng, NO_AUGMENT), crop)
    same = hed_jitter(crop, np.ones(3), np.zeros(3))
    assert np.abs(same.astype(int) - crop.astype(int)).max() <= 2
    # more haematoxylin: darker, bluer nuclei
    stained = hed_jitter(crop, np.array([1.5, 1.0, 1.0]), np.zeros(3))
    assert stained.mean() < crop.mean()
    # eosin fading: the orange granules lose eosin, haematoxylin stays
    from skimage.color import rgb2hed

    only_fade = dataclasses.replace(NO_AUGMENT, eosin_fade=1.0, eosin_min=0.3)
    fade_rng = np.random.default_rng(1)
    faded = [rgb2hed(augment(crop, fade_rng, only_fade)).reshape(-1, 3).mean(0) for _ in range(20)]
    before_hed, after_hed = rgb2hed(crop).reshape(-1, 3).mean(0), np.mean(faded, axis=0)
    assert 0.5 * before_hed[1] < after_hed[1] < 0.8 * before_hed[1]  # E scaled by U(0.3, 1): 0.65 on average
    assert after_hed[0] == pytest.approx(before_hed[0], rel=0.02)
    # 4:2:0 JPEG: colour detail goes, brightness detail mostly stays
    from training.augment import jpeg_round_trip

    def detail(img: np.ndarray) -> np.ndarray:
        ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(float)
        return np.abs(ycc - cv2.GaussianBlur(ycc, (0, 0), 1.0)).reshape(-1, 3).mean(0)
    squeezed = jpeg_round_trip(crop, 90)
    assert squeezed.shape == crop.shape and squeezed.dtype == np.uint8
    assert detail(squeezed)[1:].mean() < 0.8 * detail(crop)[1:].mean()
    assert detail(squeezed)[0] > 0.8 * detail(crop)[0]


def test_amplitude_mix_takes_the_look_keeps_the_cell(data_dir: Path) -> None:
    from training.augment import amplitude_mix

    pbc = tdata.read_rgb(next((data_dir / "pbc" / "lymphocyte").iterdir()))
    field = tdata.read_rgb(sorted((data_dir / "txl" / "bcdd" / "images").iterdir())[0])
    crop = np.ascontiguousarray(pbc[116:244, 116:244])
    style = np.ascontiguousarray(field[100:228, 100:228])
    assert np.abs(amplitude_mix(crop, style, 0.0).astype(int) - crop).max() <= 1
    full = amplitude_mix(crop, style, 1.0)
    # the zero frequency is the mean colour: it becomes the style's (up to clipping)
    assert np.abs(full.reshape(-1, 3).mean(0) - style.reshape(-1, 3).mean(0)).max() < 6
    assert np.abs(crop.reshape(-1, 3).mean(0) - style.reshape(-1, 3).mean(0)).max() > 15
    # the phase keeps the cell where it was: the dark nucleus stays the darkest region
    def dark(img: np.ndarray) -> np.ndarray:
        grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (0, 0), 4).astype(float)
        return grey < np.percentile(grey, 20)
    assert (dark(full) & dark(crop)).sum() > 0.5 * dark(crop).sum()
    rng = np.random.default_rng(0)
    out = augment(crop, rng, AugmentConfig(style_mix=1.0, hed=0, hue=0, saturation=0, brightness=0, contrast=0,
                                           gamma=0, blur=0, lowres=0), styles=style[None])
    assert out.shape == crop.shape and not np.array_equal(out, crop)
    with pytest.raises(ValueError, match="shapes differ"):
        amplitude_mix(crop, style[:64], 0.5)


def test_metrics_on_known_cases() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 1, 1])
    m = classification_metrics(y, probs, ["blast", "normal"], positive="blast")
    assert m["accuracy"] == 0.75
    assert m["confusion"] == [[1, 0], [1, 2]]
    assert m["roc_auc"] == 1.0
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0.0
    # two fields: A all blasts (called blast), B normal with one of two cells called blast -> called blast
    f = field_metrics(["A", "A", "B", "B"], [0, 0, 1, 1], [0, 0, 0, 1], positive=0, fields_without_cells={"x": 1})
    assert f["n_fields"] == 2 and f["accuracy"] == 0.5 and f["accuracy_all_fields"] == pytest.approx(1 / 3)


def test_field_calls_count_only_field_datasets() -> None:
    """Single-cell images of a second training source (PBC normals) are not smear fields."""
    from training.train import _field_cells

    base = {"name": "x", "model": "effnet-lite0", "classes": ["blast", "normal"], "positive_class": "blast"}
    fields = {"name": "taleqani", "kind": "taleqani", "root": "taleqani", "fields": True}
    cells = {"name": "pbc-normal", "kind": "folder", "root": "pbc"}
    datasets = np.array(["taleqani", "pbc-normal", "taleqani"])
    both = config_from_dict({**base, "train_data": [fields, cells]})
    assert _field_cells(datasets, both).tolist() == [True, False, True]
    only = config_from_dict({**base, "train_data": [fields]})
    assert _field_cells(datasets[[0, 2]], only).all()


def test_config_errors() -> None:
    base = {"name": "x", "model": "effnet-lite0", "classes": ["a", "b"], "train_data": []}
    config_from_dict(base)
    with pytest.raises(tdata.DataError, match="unknown key"):
        config_from_dict({**base, "epochs": 3})
    with pytest.raises(tdata.DataError, match="unknown model"):
        config_from_dict({**base, "model": "resnet9000"})
    with pytest.raises(tdata.DataError, match="optimizer"):
        config_from_dict({**base, "train": {"optimizer": "lbfgs"}})
    with pytest.raises(tdata.DataError, match="style_data"):
        config_from_dict({**base, "augment": {"style_mix": 0.5}})
    styled = config_from_dict({**base, "augment": {"style_mix": 0.5},
                               "style_data": [{"name": "t", "kind": "txl", "root": "txl/bcdd"}]})
    assert styled.augment.style_mix == 0.5 and styled.style_data[0]["kind"] == "txl"


# ----------------------------------------------------------------------------
# end to end on real data, and the tree-head export


def tiny_cnmc_config(data_dir: Path, tmp_path: Path, name: str) -> dict:
    """A one-epoch, 64 px blast config on the real C-NMC cells (subject split)."""
    return {
        "name": name, "model": "effnet-lite0", "input_size": 64, "colour_norm": "instance",
        "classes": ["blast", "normal"], "positive_class": "blast",
        "data_root": str(data_dir), "cache_dir": str(tmp_path / "cache"),
        "crop": {"scale": 1.2, "background": "black"},
        "train_data": [{"name": "cnmc", "kind": "cnmc", "root": "cnmc", "licence": "CC BY 3.0"}],
        "split": {"val": 0.2, "test": 0.3, "seed": 0},
        "train": {"epochs": 1, "batch_size": 8, "freeze": 4},
    }


def test_tiny_train_export_onnxruntime(data_dir: Path, tmp_path: Path) -> None:
    """Real C-NMC cells, one epoch at 64 px, exported and run in onnxruntime like the app."""
    import onnxruntime as ort

    from training.export import export_run
    from training.train import run

    raw = tiny_cnmc_config(data_dir, tmp_path, "tiny-blast")
    raw["eval_data"] = [{"name": "taleqani", "kind": "taleqani", "root": "taleqani", "limit": 1, "fields": True}]
    result = run(config_from_dict(raw), tmp_path / "run", progress=False, command="test")
    assert result["metrics"]["heldout"]["n"] > 0
    assert "fields" in result["metrics"]["taleqani"]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    tdata.assert_disjoint(split["groups"])
    report = export_run(tmp_path / "run", tmp_path / "model")
    assert max(report["parity_max_abs_diff"].values()) <= 1e-4
    spec = read_sidecar(tmp_path / "model" / "model.json")
    assert spec.classes == ["blast", "normal"] and spec.positive_class == "blast"
    assert spec.crop.background == "black" and spec.input_size == 64
    assert spec.cam_weight == "classifier.weight" and spec.opset == 17
    assert spec.training["data"][0]["licence"] == "CC BY 3.0"
    sess = ort.InferenceSession(str(tmp_path / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, features = sess.run(["logits", "features"], {"input": np.zeros((3, 3, 64, 64), np.float32)})
    assert logits.shape == (3, 2) and features.ndim == 4 and features.shape[0] == 3
    classifier = Classifier.load(tmp_path / "model")
    assert classifier.cam_exact is True
    assert (tmp_path / "model" / "README.md").read_text().count("Decision support, not a diagnosis") == 1


def test_xgboost_head_becomes_one_onnx_graph(tmp_path: Path) -> None:
    """EfficientNet-B0 features -> XGBoost, exported as one graph that matches XGBoost."""
    xgb = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    import onnxruntime as ort

    from training.export import attach_xgboost, export_network

    model = build_model("effnetb0-xgboost", 3, 64, weights=None).eval()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (24, 3, 64, 64)).astype(np.float32)
    net = export_network(model, tmp_path / "net.onnx", 64, pooled=True)
    # the network part alone: torch and onnxruntime agree
    net_sess = ort.InferenceSession(str(net), providers=["CPUExecutionProvider"])
    logits, _features, pooled = net_sess.run(["logits", "features", "pooled"], {"input": x})
    with torch.no_grad():
        assert np.abs(logits - model(torch.from_numpy(x))[0].numpy()).max() <= 1e-4
    # random-init features are tiny: fit the trees on what the graph will feed them
    booster = xgb.XGBClassifier(n_estimators=8, max_depth=2, learning_rate=0.35).fit(pooled, np.arange(24) % 3)
    combined = attach_xgboost(net, booster, model.num_features, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(combined), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    probs, features = sess.run(["probabilities", "features"], {"input": x})
    assert features.shape[:2] == (24, model.num_features)
    assert np.abs(probs - booster.predict_proba(pooled)).max() <= 1e-4


def test_manifest_from_class_patient_folders(data_dir: Path, tmp_path: Path) -> None:
    """training.manifest: class/patient folders -> path,label,group rows that the loader reads back."""
    import shutil

    from training.manifest import scan, write_manifest

    pbc = data_dir / "pbc"
    for cls in ("basophil", "eosinophil"):
        for i, image in enumerate(sorted((pbc / cls).iterdir())[:4]):
            target = tmp_path / "cells" / cls / f"patient{i % 2}" / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, target)
    rows = scan(tmp_path / "cells")
    assert len(rows) == 8 and {r[2] for r in rows} == {"patient0", "patient1"}
    out = write_manifest(rows, tmp_path / "out" / "cells.csv", tmp_path / "cells")
    sources = tdata.manifest_dataset(out)
    assert all(s.path.is_file() for s in sources)
    assert Counter(s.label for s in sources) == {"basophil": 4, "eosinophil": 4}
    with pytest.raises(tdata.DataError, match="no images"):
        scan(tmp_path / "out")


def test_compare_trains_backbones_on_one_split(data_dir: Path, tmp_path: Path) -> None:
    """Two backbones on the same C-NMC subject split, one row each in the printed table."""
    from training.compare import compare

    raw = tiny_cnmc_config(data_dir, tmp_path, "tiny-compare")
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(raw))
    rows = compare(str(config_path), ["effnet-lite0", "mobilenetv3"], tmp_path / "cmp", epochs=1, steps=2)
    assert [r["model"] for r in rows] == ["effnet-lite0", "mobilenetv3"]
    # the second model trained on the first one's split, not a new one
    splits = [json.loads((tmp_path / "cmp" / m / "split.json").read_text())["groups"] for m in ("effnet-lite0", "mobilenetv3")]
    assert splits[0] == splits[1]
    assert rows[0]["weights"] == "imagenet" and rows[1]["weights"] == "random"
    assert rows[0]["parameters_m"] != rows[1]["parameters_m"]
    for row in rows:
        assert 0.0 <= row["heldout_accuracy"] <= 1.0 and row["cells_per_s"] > 0 and row["size_mb"] > 0
    table = (tmp_path / "cmp" / "compare.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| effnet-lite0 |")


# ----------------------------------------------------------------------------
# weight averaging (training.soup)


def test_average_state_dicts_is_the_parameter_mean() -> None:
    from leukview.core.errors import LeukViewError
    from training.soup import average_state_dicts

    torch.manual_seed(0)
    a = build_model("effnet-lite0", 3, 64, weights=None).state_dict()
    torch.manual_seed(1)
    b = build_model("effnet-lite0", 3, 64, weights=None).state_dict()
    soup = average_state_dicts([a, b])
    assert soup.keys() == a.keys()
    key = "classifier.weight"
    assert not torch.equal(a[key], b[key])
    assert torch.allclose(soup[key], (a[key] + b[key]) / 2, atol=1e-7)
    counter = next(k for k in a if k.endswith("num_batches_tracked"))
    assert soup[counter].dtype == a[counter].dtype
    assert all(torch.equal(average_state_dicts([a, a])[k], a[k]) for k in a)
    with pytest.raises(LeukViewError, match="architecture"):
        average_state_dicts([a, build_model("mobilenetv3", 3, 64, weights=None).state_dict()])
    with pytest.raises(LeukViewError, match="shape"):
        average_state_dicts([a, build_model("effnet-lite0", 4, 64, weights=None).state_dict()])


def test_fit_temperature_undoes_over_and_underconfidence() -> None:
    from training.evaluate import fit_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in probs])  # labels drawn from the calibrated probabilities
    assert fit_temperature(3 * logits, labels) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(logits / 2, labels) == pytest.approx(0.5, rel=0.1)


def test_greedy_soup_keeps_only_ingredients_that_help() -> None:
    from training.soup import greedy_soup

    states = {"a": {"w": torch.tensor(1.0)}, "b": {"w": torch.tensor(3.0)}, "c": {"w": torch.tensor(-5.0)}}
    chosen, steps = greedy_soup(states, lambda s: {"score": -float((s["w"] - 2.0) ** 2)})
    # a and b alone score -1 each, their mean (w = 2) is best; adding c (w = -1/3) would make it worse
    assert chosen == ["a", "b"]
    assert [(s["ingredient"], s["kept"]) for s in steps] == [("a", True), ("b", True), ("c", False)]
    assert steps[1]["scores"]["score"] == 0.0


def test_tiny_soup_trains_averages_and_exports(data_dir: Path, tmp_path: Path) -> None:
    """Three one-epoch C-NMC runs on one split, greedily averaged, exported with its card."""
    from leukview.core.errors import LeukViewError
    from training.export import export_run
    from training.soup import average_state_dicts, make_soup
    from training.train import apply_logit_bias

    raw = tiny_cnmc_config(data_dir, tmp_path, "tiny-soup")
    raw["logit_bias"] = {"normal": -1.0}
    raw["soup"] = {"greedy": True, "select_on": ["val"], "ingredients": [
        {"name": "no-flip", "augment": {"flip": False, "rot90": False}},
        {"name": "slow", "train": {"lr": 1e-4}},
    ]}
    config_path = tmp_path / "tiny-soup.json"
    config_path.write_text(json.dumps(raw))
    result = make_soup(str(config_path), tmp_path / "soup", progress=False, command="test")
    folders = {n: tmp_path / "soup" / "ingredients" / n for n in ("base", "no-flip", "slow")}
    splits = [json.loads((f / "split.json").read_text())["groups"] for f in folders.values()]
    assert splits[0] == splits[1] == splits[2]
    soup = result["soup"]
    assert soup["method"] == "greedy" and set(soup["chosen"]) <= set(folders) and soup["chosen"]
    assert [s["ingredient"] for s in soup["steps"]][0] == soup["chosen"][0]
    states = [torch.load(folders[n] / "best.pt", weights_only=False)["model"] for n in soup["chosen"]]
    saved = torch.load(tmp_path / "soup" / "best.pt", weights_only=False)["model"]
    expected = average_state_dicts(states)
    t = soup["calibration"]["temperature"]
    assert 0.05 <= t <= 20
    assert all(torch.equal(saved[k], expected[k]) for k in expected if not k.startswith("classifier."))
    # the temperature divides the final logits, prior correction included: no call changes
    config = config_from_dict(raw)
    nets = []
    for state in (expected, saved):
        net = build_model("effnet-lite0", 2, 64, weights=None, colour_norm="instance")
        net.load_state_dict(state)
        apply_logit_bias(net, config)
        nets.append(net.eval())
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (16, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        plain, scaled = (net(x)[0] for net in nets)
    assert torch.allclose(scaled, plain / t, atol=1e-4)
    assert result["metrics"]["heldout"]["n"] > 0
    # a second call reuses the finished ingredients instead of training them again
    stamp = (folders["slow"] / "best.pt").stat().st_mtime_ns
    make_soup(str(config_path), tmp_path / "soup", progress=False, command="test")
    assert (folders["slow"] / "best.pt").stat().st_mtime_ns == stamp
    report = export_run(tmp_path / "soup", tmp_path / "model")
    assert max(report["parity_max_abs_diff"].values()) <= 1e-4
    spec = read_sidecar(tmp_path / "model" / "model.json")
    assert spec.training["soup"]["chosen"] == soup["chosen"]
    assert "## Weight averaging (model soup)" in (tmp_path / "model" / "README.md").read_text()
    # only augmentation and schedule may differ between ingredients
    raw["soup"]["ingredients"].append({"name": "bigger", "input_size": 96})
    config_path.write_text(json.dumps(raw))
    with pytest.raises(LeukViewError, match="may only change"):
        make_soup(str(config_path), tmp_path / "soup2", progress=False)


def test_shipped_wbc_soup_config_differs_only_in_augmentation_and_schedule() -> None:
    """The shipped wbc-type config's ingredients parse, and each changes only [augment] or [train]."""
    from training.soup import ingredient_configs

    config, ingredients = ingredient_configs(str(Path(__file__).parents[1] / "training/configs/wbc-type.toml"))
    assert ingredients[0][0] == "base" and len(ingredients) >= 3
    assert set(config.soup["select_on"]) <= {"val", *(e["name"] for e in config.eval_data)}
    for name, ingredient in ingredients:
        assert (ingredient.model, ingredient.input_size, ingredient.crop) == (config.model, config.input_size, config.crop)
        assert ingredient.split == config.split and ingredient.train_data == config.train_data
        assert not ingredient.soup, name
    assert len({json.dumps(i.raw, sort_keys=True) for _, i in ingredients}) == len(ingredients)

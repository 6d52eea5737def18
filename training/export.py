"""Export a trained run to the app's model folder: ``python -m training.export RUN_DIR --out models/NAME``.

Writes ``model.onnx`` (input ``input`` (N, 3, S, S) with a dynamic batch;
outputs ``logits`` (N, K) and ``features`` (N, C, h, w), the last feature map
for class-activation maps), its sidecar ``model.json`` written with
:class:`leukview.core.models.ModelSpec`, and a model card ``README.md``.

- The EfficientNet-B0 + XGBoost hybrid becomes one graph: the network's
  pooled features feed the trees converted by onnxmltools, so the app needs no
  XGBoost; its scores output is ``probabilities``.
- Parity: the exported graph is run in onnxruntime on held-out crops and
  compared with torch (max abs difference of the logits and the features,
  required <= 1e-4).
- ``--int8``: static INT8 quantisation (onnxruntime.quantization, calibrated
  on training crops) written as ``model.int8.onnx`` beside the run, with its
  accuracy change and speed reported; the shipped model stays float32.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from leukview.core.errors import LeukViewError
from leukview.core.models import ModelSpec, read_sidecar
from leukview.core.preprocess import normalize

from .config import Config, config_from_dict, dataset_name
from .models import CellNet, static_padding

log = logging.getLogger("training.export")

OPSET = 17
PARITY_TOLERANCE = 1e-4


class _Graph(nn.Module):
    """What is exported: logits and features (pooled features for a tree head; the open-set score)."""

    def __init__(self, model: CellNet, pooled: bool = False, openset: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.with_pooled = pooled
        self.openset = openset

    def forward(self, x: torch.Tensor):
        logits, features = self.model(x)
        out = [logits, features]
        if self.with_pooled:
            out.append(self.model.pooled(features))
        if self.openset is not None:
            out.append(self.openset(self.model.pooled(features)))
        return tuple(out)


def export_network(model: CellNet, path: str | os.PathLike[str], input_size: int, pooled: bool = False,
                   opset: int = OPSET, openset: nn.Module | None = None) -> Path:
    """Export a :class:`CellNet` to ONNX with a dynamic batch.

    Parameters
    ----------
    model : CellNet
    path : path
    input_size : int
        The fixed crop side; TF 'same' padding becomes static for it.
    pooled : bool
        Add a third output ``pooled`` (N, C): the averaged features.
    opset : int
    openset : nn.Module, optional
        Pooled features (N, C) -> one score per cell (:class:`training.openset.OpenSetHead`),
        exported as the output ``atypicality`` (N,).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _Graph(static_padding(model, input_size), pooled, openset).eval()
    names = ["logits", "features"] + (["pooled"] if pooled else []) + (["atypicality"] if openset is not None else [])
    dummy = torch.zeros(2, 3, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, (dummy,), str(path), input_names=["input"], output_names=names, opset_version=opset,
            dynamic_axes={n: {0: "batch"} for n in ["input", *names]}, dynamo=False,
            do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    # the sidecar's cam.weight names the classifier weight (K, C) plainly
    _rename_initializer(proto, "model.classifier.weight", "classifier.weight")
    _rename_initializer(proto, "model.classifier.bias", "classifier.bias")
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def _rename_initializer(proto: onnx.ModelProto, old: str, new: str) -> None:
    if any(i.name == new for i in proto.graph.initializer):
        return
    for init in proto.graph.initializer:
        if init.name == old:
            init.name = new
            for node in proto.graph.node:
                node.input[:] = [new if n == old else n for n in node.input]


def attach_xgboost(network_path: Path, booster: Any, num_features: int, out_path: Path) -> Path:
    """One graph: network (``pooled`` output) -> XGBoost trees -> ``probabilities``."""
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    net = onnx.load(str(network_path))
    trees = convert_xgboost(booster, initial_types=[("pooled", FloatTensorType([None, num_features]))])
    trees.ir_version = net.ir_version
    prefixed = onnx.compose.add_prefix(trees, "xgb_")
    merged = onnx.compose.merge_models(
        net, prefixed, io_map=[("pooled", "xgb_pooled")],
        outputs=["xgb_probabilities", "features"],
    )
    # plain output names for the sidecar
    for out in merged.graph.output:
        if out.name == "xgb_probabilities":
            _rename_value(merged, "xgb_probabilities", "probabilities")
            break
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out_path))
    return out_path


def _rename_value(proto: onnx.ModelProto, old: str, new: str) -> None:
    for node in proto.graph.node:
        node.output[:] = [new if n == old else n for n in node.output]
        node.input[:] = [new if n == old else n for n in node.input]
    for out in proto.graph.output:
        if out.name == old:
            out.name = new


def session(path: str | os.PathLike[str], threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity(model: CellNet, onnx_path: Path, batch: np.ndarray) -> dict[str, float]:
    """Max abs difference between torch and onnxruntime on a normalised batch.

    Returns
    -------
    diffs : dict
        'logits' and 'features' max abs differences (for a tree head, only
        'features' compares the network).
    """
    sess = session(onnx_path)
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(None, {"input": batch}), strict=True))
    model.eval()
    # torch's native CPU kernels: oneDNN's convolutions round differently from both
    # onnxruntime and float64, by up to ~1e-4 on features of magnitude 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about TF32 on Intel GPUs when toggling oneDNN
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
            logits, features = model(torch.from_numpy(batch))
    diffs = {"features": float(np.abs(outputs["features"] - features.numpy()).max())}
    if "logits" in outputs:
        diffs["logits"] = float(np.abs(outputs["logits"] - logits.numpy()).max())
    return diffs


def parity_float64(model: CellNet, onnx_path: Path, batch: np.ndarray) -> dict[str, float]:
    """Max abs difference between onnxruntime (float32) and torch in float64 (the exact result)."""
    sess = session(onnx_path)
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(None, {"input": batch}), strict=True))
    exact = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        logits, features = exact(torch.from_numpy(batch).double())
    diffs = {"features": float(np.abs(outputs["features"] - features.numpy()).max())}
    if "logits" in outputs:
        diffs["logits"] = float(np.abs(outputs["logits"] - logits.numpy()).max())
    return diffs


def speed(onnx_path: Path, input_size: int, batch: int = 32, repeats: int = 5, threads: int = 0) -> float:
    """Cells per second in onnxruntime on the CPU at a given batch (best of ``repeats``)."""
    sess = session(onnx_path, threads)
    x = np.random.default_rng(0).normal(0, 1, (batch, 3, input_size, input_size)).astype(np.float32)
    sess.run(None, {"input": x})
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {"input": x})
        best = max(best, batch / (time.perf_counter() - start))
    return best


def onnx_scores(path: Path, crops: np.ndarray, spec_mean: list[float], spec_std: list[float],
                scores: str, batch: int = 64) -> np.ndarray:
    """Scores output of an ONNX model on uint8 crops (app preprocessing)."""
    sess = session(path)
    out = []
    for start in range(0, len(crops), batch):
        x = normalize(crops[start : start + batch], spec_mean, spec_std)
        out.append(sess.run([scores], {"input": x})[0])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def quantize_int8(src: Path, dst: Path, calibration: np.ndarray) -> Path:
    """Static INT8 quantisation (QDQ, per-channel) calibrated on normalised crops."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calibration[i : i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self):
            return next(self.batches, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantiser logs a line per rescaled channel
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return dst


def openset_parity(model: CellNet, head: nn.Module, onnx_path: Path, batch: np.ndarray) -> float:
    """Largest relative difference of the ONNX open-set score from torch's (float64 network)."""
    got = session(onnx_path).run(["atypicality"], {"input": batch})[0].reshape(-1)
    exact = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        _, features = exact(torch.from_numpy(batch).double())
        want = copy.deepcopy(head).double()(exact.pooled(features)).numpy().reshape(-1)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-6)))


def write_json_file(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------
# from a run folder


def load_run(run_dir: Path) -> tuple[Config, CellNet, Any, dict[str, Any]]:
    """Config, best model, XGBoost booster (or None) and result of a finished run."""
    try:
        raw = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LeukViewError(f"not a finished training run ({exc})", run_dir) from exc
    if "metrics" not in result:
        raise LeukViewError("the run has not finished (result.json has no metrics)", run_dir)
    config = config_from_dict(raw, source=str(run_dir / "config.json"))
    from .train import model_from_state

    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    model = model_from_state(config, state["model"])
    booster = None
    if model.info.xgboost:
        import xgboost as xgb

        booster = xgb.XGBClassifier()
        booster.load_model(run_dir / "xgboost.json")
    return config, model, booster, result


def head_classes(config: Config) -> list[str]:
    """The classes the exported graph scores: ``[export] classes``, else all of the config's."""
    return list(config.export.get("classes", config.classes))


def keep_head_rows(model: CellNet, config: Config) -> CellNet:
    """A copy of the model whose classifier keeps only the rows of :func:`head_classes`, in that order.

    A second-stage model trained on every class (so that it learns what a
    granulocyte is) but asked only among some of them: the softmax over the
    kept rows is the probability among those classes.
    """
    keep = head_classes(config)
    if keep == list(config.classes):
        return model
    rows = torch.tensor([config.classes.index(name) for name in keep])
    sliced = copy.deepcopy(model)
    old = model.classifier
    sliced.classifier = nn.Linear(old.in_features, len(keep))
    with torch.no_grad():
        sliced.classifier.weight.copy_(old.weight[rows])
        sliced.classifier.bias.copy_(old.bias[rows])
    return sliced.eval()


def data_entries(config: Config) -> list[dict[str, Any]]:
    """Data sources and licences for the sidecar."""
    out = []
    for role, entries in (("train", config.train_data), ("test", config.eval_data),
                          ("style (unlabelled; appearance only)", config.style_data)):
        for e in entries:
            out.append({
                "name": dataset_name(e), "role": role, "kind": e.get("kind", "folder"),
                "licence": e.get("licence", ""), "citation": e.get("citation", ""), "note": e.get("note", ""),
            })
    return out


def export_run(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], int8: bool = False,
               command: str = "", check: bool = True) -> dict[str, Any]:
    """Export a finished run to ``out_dir`` (model.onnx, model.json, README.md).

    Returns
    -------
    report : dict
        parity, size_mb, cells_per_s (batch 32), int8 (when asked).

    Raises
    ------
    LeukViewError
        When the run is unfinished or the parity check fails.
    """
    from .train import prepare

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config, model, booster, result = load_run(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    tree_head = booster is not None
    prepared = prepare(config, run_dir, progress=False)
    head = openset_block = None
    if config.openset:
        from .openset import OpenSetHead, fit_openset

        fit, openset_block = fit_openset(model, config, prepared)
        head = OpenSetHead(fit).eval()
        write_json_file(run_dir / "openset.json", openset_block)
    model = keep_head_rows(model, config)  # after the open-set fit, which reads every class's cells
    with tempfile.TemporaryDirectory() as tmp:
        net_path = export_network(model, Path(tmp) / "net.onnx" if tree_head else onnx_path, config.input_size,
                                  pooled=tree_head, openset=head)
        if tree_head:
            attach_xgboost(net_path, booster, model.num_features, onnx_path)
    test = prepared.index["test"]
    pick = test if len(test) else prepared.index["train"]
    sample = prepared.crops.crops[pick[:64]]
    batch = normalize(sample, config.mean, config.std)
    report: dict[str, Any] = {}
    if check:
        diffs = parity(model, onnx_path, batch)
        report["parity_max_abs_diff"] = diffs
        report["parity_vs_float64"] = parity_float64(model, onnx_path, batch)
        exact = report["parity_vs_float64"]
        # Above 1e-4 the export is still sound when onnxruntime stays as close to the exact (float64)
        # result as the tolerance allows: large feature maps round by more than 1e-4 in any float32 engine.
        failed = {k: v for k, v in diffs.items() if v > PARITY_TOLERANCE and exact.get(k, v) > PARITY_TOLERANCE}
        if failed:
            raise LeukViewError(f"ONNX and torch disagree (max abs diff {diffs}, from float64 {exact}) > "
                                f"{PARITY_TOLERANCE}", onnx_path)
        if head is not None:  # the open-set score: relative difference, the scores are about 1 to 100
            report["parity_max_abs_diff"]["atypicality"] = openset_parity(model, head, onnx_path, batch)
            if report["parity_max_abs_diff"]["atypicality"] > 1e-3:
                raise LeukViewError(f"ONNX and torch disagree on the open-set score ({report['parity_max_abs_diff']})",
                                    onnx_path)
        if tree_head:  # trees: compare probabilities with XGBoost itself
            from .train import scores_of

            got = onnx_scores(onnx_path, sample, config.mean, config.std, "probabilities")
            want = scores_of(model, booster, sample, config)
            report["parity_max_abs_diff"]["probabilities"] = float(np.abs(got - want).max())
    report["size_mb"] = round(onnx_path.stat().st_size / 1e6, 2)
    report["cells_per_s_batch32"] = round(speed(onnx_path, config.input_size), 1)
    if int8:
        report["int8"] = int8_report(onnx_path, run_dir, config, prepared, "probabilities" if tree_head else "logits")
    spec = make_spec(config, model, result, report, onnx_path, tree_head, command)
    spec.openset = openset_block
    (out_dir / "model.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")
    read_sidecar(out_dir / "model.json")  # what the app will read
    # the resolved configuration this model was trained with (the file in training/configs may move on)
    (out_dir / "training-config.json").write_text(json.dumps(config.raw, indent=2) + "\n", encoding="utf-8")
    # which groups were held out: an auditor (and tests/test_shipped_models.py) can re-measure the card's figures
    shutil.copyfile(Path(run_dir) / "split.json", out_dir / "split.json")
    (out_dir / "README.md").write_text(model_card(spec, config, result, report, run_dir), encoding="utf-8")
    log.info("exported %s: %s", out_dir, report)
    return report


def int8_report(onnx_path: Path, run_dir: Path, config: Config, prepared: Any, scores: str) -> dict[str, Any]:
    """Quantise, then compare accuracy (held-out split) and speed with the float model."""
    rng = np.random.default_rng(0)
    train = prepared.index["train"]
    calib = normalize(prepared.crops.crops[rng.choice(train, min(256, len(train)), replace=False)], config.mean,
                      config.std)
    q_path = quantize_int8(onnx_path, run_dir / "model.int8.onnx", calib)
    test = prepared.index["test"]
    crops, y = prepared.crops.crops[test], prepared.y[test]
    fp = onnx_scores(onnx_path, crops, config.mean, config.std, scores)
    q = onnx_scores(q_path, crops, config.mean, config.std, scores)
    out = {
        "path": str(q_path),
        "size_mb": round(q_path.stat().st_size / 1e6, 2),
        "heldout_accuracy_fp32": float((fp.argmax(1) == y).mean()),
        "heldout_accuracy_int8": float((q.argmax(1) == y).mean()),
        "agreement": float((fp.argmax(1) == q.argmax(1)).mean()),
        "cells_per_s_fp32": round(speed(onnx_path, config.input_size), 1),
        "cells_per_s_int8": round(speed(q_path, config.input_size), 1),
    }
    for name, (cs, ey, _entry) in prepared.eval_sets.items():
        fp = onnx_scores(onnx_path, cs.crops, config.mean, config.std, scores)
        q = onnx_scores(q_path, cs.crops, config.mean, config.std, scores)
        out[f"{name}_accuracy_fp32"] = float((fp.argmax(1) == ey).mean())
        out[f"{name}_accuracy_int8"] = float((q.argmax(1) == ey).mean())
    return out


def make_spec(config: Config, model: CellNet, result: dict[str, Any], report: dict[str, Any], onnx_path: Path,
              tree_head: bool, command: str) -> ModelSpec:
    """The sidecar of an exported run."""
    training = {
        "data": data_entries(config),
        "split": result.get("split", {}),
        "command": result.get("command", ""),
        "export_command": command,
        "wall_time_s": result.get("wall_time_s"),
        "machine": result.get("machine", ""),
        "best_epoch": result.get("best_epoch"),
        "model": config.model,
        "weights": config.weights or "random initialisation",
        "augment": config.augment.to_dict(),
        "train": {k: v for k, v in vars(config.train).items()},
        "colour_norm": config.colour_norm,
        "logit_bias": dict(config.logit_bias),
    }
    if "soup" in result:  # the augmentation above is the first ingredient's; each one's changes follow
        training["soup"] = {k: result["soup"].get(k) for k in ("method", "select_on", "chosen", "calibration",
                                                                     "ingredients")}
    metrics = {k: _brief(v) for k, v in result.get("metrics", {}).items()}
    metrics["export"] = {k: v for k, v in report.items() if k != "int8"}
    if "int8" in report:
        metrics["int8"] = {k: v for k, v in report["int8"].items() if k != "path"}
    return ModelSpec(
        name=config.name,
        version=config.version,
        classes=head_classes(config),
        input_size=config.input_size,
        mean=[float(v) for v in config.mean],
        std=[float(v) for v in config.std],
        crop=config.crop,
        input_name="input",
        scores_output="probabilities" if tree_head else "logits",
        scores_kind="probabilities" if tree_head else "logits",
        features_output="features",
        cam_weight="classifier.weight" if (model.cam_exact and not tree_head) else None,
        applies_to=list(config.applies_to),
        positive_class=config.positive_class,
        refines=list(config.export["refines"]) if config.export.get("refines") else None,
        architecture=f"{config.model} ({', '.join(model.info.backbones)})",
        description=config.description,
        licence=config.licence,
        sha256=sha256_file(onnx_path),
        opset=OPSET,
        training=training,
        metrics=metrics,
    )


def _brief(m: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "accuracy", "weighted_f1", "macro_f1", "ece", "roc_auc", "accuracy_among_present_classes",
            "confusion", "classes", "fields", "by_source", "by_dataset")
    out = {k: m[k] for k in keep if k in m}
    if "per_class" in m:
        out["recall"] = {c: round(v["recall"], 4) for c, v in m["per_class"].items()}
        out["precision"] = {c: round(v["precision"], 4) for c, v in m["per_class"].items()}
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(spec: ModelSpec, config: Config, result: dict[str, Any], report: dict[str, Any],
               run_dir: Path) -> str:
    """The model card: purpose, limits, data, split, figures, command, time, machine."""
    # hand-written notes beside the original config (e.g. training/configs/wbc-type.card.md)
    source = result.get("config_source") or Path(__file__).parent / "configs" / f"{config.name}.toml"
    notes_path = Path(source).with_suffix(".card.md") if source else None
    notes = notes_path.read_text(encoding="utf-8") if notes_path and notes_path.is_file() else ""
    lines = [
        f"# {spec.name} {spec.version}",
        "",
        spec.description,
        "",
        "**Decision support, not a diagnosis.** Every call is for a trained person to check; the model was "
        "evaluated on public data sets only and has not been validated clinically.",
        "",
    ]
    if notes:
        lines += [notes.strip(), ""]
    lines += [
        "## Model",
        "",
        f"- Architecture: `{spec.architecture}`, {result.get('parameters', 0) / 1e6:.2f} M parameters; "
        f"starting weights: {config.weights or 'random initialisation'}.",
        f"- Input: {spec.input_size} x {spec.input_size} RGB crop from `leukview.core.preprocess.crop_cell` "
        f"(crop rule {spec.crop.to_dict()}), normalised with mean {spec.mean}, std {spec.std}.",
        f"- Classes: {', '.join(spec.classes)}" + (f"; positive class `{spec.positive_class}`." if spec.positive_class else "."),
        f"- Outputs: `{spec.scores_output}` ({spec.scores_kind}), `{spec.features_output}` (last feature map); "
        + (f"class-activation maps exact with `{spec.cam_weight}`." if spec.cam_weight else "no linear head: CAM is the channel mean."),
        f"- ONNX opset {spec.opset}, {report.get('size_mb')} MB, {report.get('cells_per_s_batch32')} cells/s at batch 32 "
        "in onnxruntime on the training machine's CPU (below).",
        f"- Parity, max abs difference of onnxruntime from torch float32: {report.get('parity_max_abs_diff')}; "
        f"from torch float64: {report.get('parity_vs_float64')}.",
        "",
        "## Data and licences",
        "",
    ]
    for d in data_entries(config):
        lines.append(f"- **{d['name']}** ({d['role']}): {d['licence'] or 'licence not stated'}. {d['citation']} {d['note']}".rstrip())
    split = result.get("split", {})
    lines += [
        "",
        "## Split",
        "",
        f"Grouped and stratified, seed {split.get('seed')}: {split.get('note', '')}",
        "",
        "| part | groups | cells per class |",
        "|---|---|---|",
    ]
    for part in ("train", "val", "test"):
        lines.append(f"| {part} | {split.get('n_groups', {}).get(part)} | {split.get('counts', {}).get(part)} |")
    lines += ["", "Zero groups are shared between the parts (asserted when the split is made and read).", "",
              "## Figures (the shipped weights, on cells never used for training)", ""]
    lines += ["| test set | cells | accuracy | weighted F1 | ECE | ROC-AUC | field accuracy |", "|---|---|---|---|---|---|---|"]
    for name, m in result.get("metrics", {}).items():
        fields = m.get("fields", {})
        field_text = (f"{fields['accuracy']:.4f} ({fields['n_fields']} fields; {fields['accuracy_all_fields']:.4f} "
                      f"counting {fields['fields_without_cells']} fields without cells as errors)") if fields else ""
        lines.append(f"| {name} | {m.get('n')} | {_fmt(m.get('accuracy'))} | {_fmt(m.get('weighted_f1'))} | "
                     f"{_fmt(m.get('ece'))} | {_fmt(m.get('roc_auc', ''))} | {field_text} |")
    for name, m in result.get("metrics", {}).items():
        for dataset, d in m.get("by_dataset", {}).items():
            lines.append(f"\n{name}, {dataset} cells only: accuracy {d['accuracy']:.4f} (n = {d['n']}).")
        if "accuracy_among_present_classes" in m:
            lines.append(f"\n{name}: accuracy when the choice is restricted to the classes this set contains: "
                         f"{m['accuracy_among_present_classes']:.4f}.")
    for name, m in result.get("metrics", {}).items():
        lines += ["", f"### {name}: per class", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for cls, v in m.get("per_class", {}).items():
            if v["support"] or v["precision"]:
                lines.append(f"| {cls} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
        lines += ["", f"Confusion matrix (rows true, columns predicted; classes {m.get('classes')}): `{m.get('confusion')}`"]
    if spec.openset:
        o = spec.openset
        lines += [
            "", "## Atypical cells (open-set score)", "",
            f"The graph's output `{o['output']}` is the {o['score']} score of each cell: {o['fitted_on']}. "
            f"Threshold {o['threshold']:.4f} ({o['threshold_on']}); over it the app flags the cell `atypical`, "
            "sends it to the reviewer first and counts it as \"unclassified (review)\" until someone decides.",
            "", "| cells | flagged atypical |", "|---|---|",
        ]
        for name, value in o.get("flagged_fraction", {}).items():
            lines.append(f"| {name} | {value:.1%} |")
    if "int8" in report:
        q = report["int8"]
        lines += [
            "", "## INT8 (measured, not shipped)", "",
            f"Static INT8 quantisation (onnxruntime, calibrated on training crops): {q['size_mb']} MB, "
            f"{q['cells_per_s_int8']} vs {q['cells_per_s_fp32']} cells/s at batch 32, held-out accuracy "
            f"{q['heldout_accuracy_int8']:.4f} vs {q['heldout_accuracy_fp32']:.4f}; it changes the call on "
            f"{1 - q['agreement']:.1%} of held-out cells, which is why the float model is what ships.",
            "", "```", json.dumps({k: v for k, v in q.items() if k != "path"}, indent=1), "```",
        ]
    if "soup" in result:
        lines += soup_section(result["soup"])
        timing = (f"Wall time {result.get('wall_time_s')} s, the training of all "
                  f"{len(result['soup']['ingredients'])} ingredients and the averaging,")
    else:
        timing = f"Training wall time {result.get('wall_time_s')} s (best epoch {result.get('best_epoch')})"
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        result.get("command", ""),
        f"python -m training.export {run_dir} --out models/{spec.name}",
        "```",
        "",
        f"{timing} on: {result.get('machine')}.",
        "",
        "## Exact training configuration",
        "",
        "The configuration this model was trained with, resolved, is `training-config.json` beside this card; "
        "the config of the same name in `training/configs/` may have moved on since (it is the starting point "
        "for the next version).",
        "",
    ]
    return "\n".join(lines)


def soup_section(soup: dict[str, Any]) -> list[str]:
    """Model-card lines for a weight-averaged model (``training.soup``)."""
    chosen = soup.get("chosen", [])
    select = " + ".join(soup.get("select_on", []))
    how = (f"greedy soup: ingredients ranked by their own mean accuracy on {select}, each kept only if the "
           "soup's did not fall" if soup.get("method") == "greedy" else "uniform soup: every ingredient averaged")
    sets = list(dict.fromkeys(k for i in soup.get("ingredients", []) for k in i.get("accuracy", {})))
    lines = ["", "## Weight averaging (model soup)", "",
             f"This network is the parameter-wise mean of {len(chosen)} fine-tuned runs ({', '.join(chosen)}) "
             f"that share the pretrained start, the split and the crops and differ only in augmentation or "
             f"schedule (Wortsman et al., Model soups, ICML 2022; {how}). One network: the size and speed of "
             "each run.", ""]
    if soup.get("note"):
        lines += [soup["note"], ""]
    cal = soup.get("calibration") or {}
    if cal:
        lines += [f"An average of networks is less confident than each of them, so the classifier's weight and bias "
                  f"are divided by a temperature of {cal['temperature']:.3f}, fitted on the validation cells "
                  f"(Guo et al. 2017; calls unchanged): validation ECE {cal['val_ece_before']:.4f} -> "
                  f"{cal['val_ece_after']:.4f}.", ""]
    lines += ["| ingredient | changes from the config | best epoch | train s | " + " | ".join(sets) + " | in the soup |",
              "|---|---|---|---|" + "---|" * len(sets) + "---|"]
    for i in soup.get("ingredients", []):
        changes = json.dumps(i["overrides"], sort_keys=True) if i.get("overrides") else "none"
        lines.append(f"| {i['name']} | `{changes}` | {i.get('best_epoch')} | {i.get('wall_time_s') or 0:.0f} | "
                     + " | ".join(_fmt(i.get("accuracy", {}).get(k)) for k in sets)
                     + f" | {'yes' if i['name'] in chosen else 'no'} |")
    if soup.get("method") == "greedy":
        lines += ["", f"Greedy steps (accuracy on {select}):", ""]
        for step in soup.get("steps", []):
            scores = ", ".join(f"{k} {v:.4f}" for k, v in step["scores"].items())
            lines.append(f"- {step['ingredient']}: {scores} -> {'kept' if step['kept'] else 'dropped'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished training run (runs/<name>)")
    parser.add_argument("--out", required=True, help="model folder to write (e.g. models/wbc-type)")
    parser.add_argument("--int8", action="store_true", help="also report static INT8 quantisation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from .train import command_line

    command = command_line("training.export", argv)
    try:
        report = export_run(args.run_dir, args.out, args.int8, command)
    except LeukViewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train and evaluate a cell classifier: ``python -m training.train CONFIG``.

Steps: find and crop the cells of the training datasets with the app's
preprocessing (cached), split them by group (subject, field block or image)
with a fixed seed, fine-tune the model with augmentation, early stopping and
the best checkpoint kept, then evaluate the best checkpoint on the held-out
split and on every other-source test set. Everything lands in
``runs/<name>/``: ``train.log``, ``split.json``, ``best.pt``, ``last.pt``
(resume point), ``metrics.json``, ``confusion_*.png``, ``result.json``.

Rerunning the same command resumes an interrupted run from ``last.pt``
(``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leukview.core.errors import LeukViewError
from leukview.core.preprocess import normalize

from .augment import NO_AUGMENT, AugmentConfig, augment
from .config import Config, dataset_name, load_config, loader_args
from .data import (
    CropSet,
    extract_crops,
    grouped_split,
    inherit_split,
    load_sources,
    load_split,
    repo_path,
    save_split,
    split_indices,
)
from .evaluate import (
    classification_metrics,
    confusion_png,
    field_metrics,
    softmax,
    summary_line,
    write_json,
)
from .models import CellNet, _mark_frozen, build_model, count_parameters, freeze, set_train_mode

log = logging.getLogger("training")


# ----------------------------------------------------------------------------
# data


@dataclass
class Prepared:
    """Crops of the training datasets, their split, and the other-source test sets."""

    crops: CropSet
    y: np.ndarray
    index: dict[str, np.ndarray]
    split_doc: dict[str, Any]
    eval_sets: dict[str, tuple[CropSet, np.ndarray, dict[str, Any]]]
    reports: dict[str, Any]
    styles: np.ndarray | None = None
    # WBCAtt attribute indices per crop (N, A), -1 where unknown, and each attribute's values
    attributes: np.ndarray | None = None
    attribute_values: dict[str, list[str]] | None = None


def _concat(sets: list[CropSet], names: list[str]) -> CropSet:
    if len(sets) == 1:
        only = sets[0]
        return CropSet(only.crops, only.labels, np.char.add(f"{names[0]}:", only.groups), only.sources,
                       only.boxes, only.how, {names[0]: only.report})
    return CropSet(
        np.concatenate([s.crops for s in sets]),
        np.concatenate([s.labels for s in sets]),
        np.concatenate([np.char.add(f"{n}:", s.groups) for s, n in zip(sets, names, strict=True)]),
        np.concatenate([s.sources for s in sets]),
        np.concatenate([s.boxes for s in sets]),
        np.concatenate([s.how for s in sets]),
        {n: s.report for s, n in zip(sets, names, strict=True)},
    )


def _crops_for(config: Config, entry: dict[str, Any], progress: bool, pinned: dict[str, str]) -> CropSet:
    """Crops of one dataset: the run's own cached crops when it has them, else extracted (and cached).

    An entry with ``relabel = FILE`` (a decision table of :mod:`training.clean`) has its cells relabelled
    or dropped by that table after extraction.
    """
    name = dataset_name(entry)
    if name in pinned and Path(pinned[name]).is_file():
        # a run keeps its crops even when the segmentation code changes later
        crops = CropSet.load(pinned[name])
    else:
        sources = load_sources(loader_args(entry), config.resolved_data_root())
        crops = extract_crops(
            sources, config.crop, config.input_size, cache_dir=config.cache_dir, name=name,
            fallback=config.fallback, progress=progress, reuse_segmentation=config.reuse_segmentation,
        )
        if "cache_file" in crops.report:
            pinned[name] = crops.report["cache_file"]
    if entry.get("relabel"):
        from .clean import apply_relabel, read_relabel

        table = read_relabel(repo_path(entry["relabel"]))
        root = (config.resolved_data_root() / str(entry["root"])).resolve()
        crops, report = apply_relabel(crops, table, root)
        crops.report["relabel"] = report
        log.info("data %s relabelled by %s: %s", name, entry["relabel"], report)
    return crops


def _encode(labels: np.ndarray, classes: list[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Class indices, and a mask of the labels the model knows (others are reported and left out)."""
    lookup = {c: i for i, c in enumerate(classes)}
    known = np.array([lab in lookup for lab in labels], bool)
    if not known.all():
        log.warning("%s: %d cell(s) with labels outside the classes left out: %s", where, int((~known).sum()),
                    dict(Counter(labels[~known].tolist())))
    y = np.array([lookup.get(lab, -1) for lab in labels], int)
    return y, known


def prepare(config: Config, run_dir: Path, progress: bool = True) -> Prepared:
    """Crops, the grouped split (made once, then read back) and the test sets."""
    names = [dataset_name(e) for e in config.train_data]
    pinned_file = run_dir / "data.json"
    pinned: dict[str, str] = json.loads(pinned_file.read_text()) if pinned_file.is_file() else {}
    sets = [_crops_for(config, e, progress, pinned) for e in config.train_data]
    reports = {n: s.report for n, s in zip(names, sets, strict=True)}
    for n, s in zip(names, sets, strict=True):
        log.info("data %s: %d cells from %d images; %s", n, len(s), s.report.get("images"),
                 {k: v for k, v in s.report.items() if k not in ("images", "cells", "segmenter")})
    crops = _concat(sets, names)
    y, known = _encode(crops.labels, config.classes, "training data")
    crops, y = crops.subset(np.flatnonzero(known)), y[known]
    split_path = run_dir / "split.json"
    if split_path.is_file():
        split = load_split(split_path)
        split_doc = json.loads(split_path.read_text(encoding="utf-8"))
        log.info("split read from %s", split_path)
    else:
        s = config.split
        inherited = [load_split(repo_path(p)) for p in s.get("inherit", []) if repo_path(p).is_file()]
        if len(inherited) < len(s.get("inherit", [])):
            log.warning("split: %d of the inherited split files are missing",
                        len(s.get("inherit", [])) - len(inherited))
        if inherited:
            split = inherit_split(crops.labels, crops.groups, inherited, float(s.get("val", 0.1)),
                                  float(s.get("test", 0.2)), int(s.get("seed", 0)))
        else:
            split = grouped_split(crops.labels, crops.groups, float(s.get("val", 0.1)), float(s.get("test", 0.2)),
                                  int(s.get("seed", 0)))
        split_doc = save_split(split_path, split, crops.labels, crops.groups, int(s.get("seed", 0)),
                               str(s.get("note", "")))
    index = split_indices(crops.groups, split)
    for part in ("train", "val", "test"):
        log.info("split %s: %d groups, %d cells %s", part, len(split[part]), len(index[part]),
                 dict(Counter(crops.labels[index[part]].tolist())))
    if len(index["train"]) == 0:
        raise LeukViewError("the training split is empty")
    eval_sets = {}
    for entry in config.eval_data:
        name = dataset_name(entry)
        cs = _crops_for(config, entry, progress, pinned)
        ey, eknown = _encode(cs.labels, config.classes, name)
        eval_sets[name] = (cs.subset(np.flatnonzero(eknown)), ey[eknown], entry)
        reports[name] = cs.report
        log.info("test set %s: %d cells %s; %s", name, int(eknown.sum()), dict(Counter(cs.labels[eknown].tolist())),
                 {k: v for k, v in cs.report.items() if k not in ("segmenter",)})
    styles = None
    if config.style_data:
        style_sets = [_crops_for(config, e, progress, pinned) for e in config.style_data]
        styles = np.concatenate([cs.crops for cs in style_sets])
        for e, cs in zip(config.style_data, style_sets, strict=True):
            name = dataset_name(e)
            reports[name] = cs.report
            log.info("style set %s: %d unlabelled cells (appearance only)", name, len(cs))
    write_json(pinned_file, pinned)
    attributes = values = None
    if config.attributes:
        from .attributes import attribute_targets

        datasets = np.array([str(g).split(":", 1)[0] for g in crops.groups])
        attributes, values = attribute_targets(crops.sources, datasets, config.attributes,
                                               config.resolved_data_root())
        known = attributes[index["train"]] >= 0
        log.info("attributes %s: %d of %d training cells labelled", list(values), int(known.all(axis=1).sum()),
                 len(index["train"]))
    return Prepared(crops, y, index, split_doc, eval_sets, reports, styles, attributes, values)


class CropDataset(torch.utils.data.Dataset):
    """Cached uint8 crops -> augment (training only) -> the app's normalize."""

    def __init__(self, crops: np.ndarray, y: np.ndarray, mean: list[float], std: list[float],
                 augment_config: AugmentConfig, seed: int, styles: np.ndarray | None = None) -> None:
        self.crops, self.y, self.mean, self.std = crops, y, mean, std
        self.styles = styles
        self.augment_config = augment_config
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        crop = self.crops[i]
        if self.augment_config != NO_AUGMENT:
            crop = augment(crop, self.rng, self.augment_config, self.styles)
        return torch.from_numpy(normalize(crop, self.mean, self.std)[0]), int(self.y[i])


# ----------------------------------------------------------------------------
# model pieces


def make_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamax":
        return torch.optim.Adamax(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True)


def make_scheduler(optimizer: torch.optim.Optimizer, config: Config) -> Any:
    t = config.train
    if t.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t.epochs)
    if t.schedule == "plateau":
        mode = "min" if t.monitor == "val_loss" else "max"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.3, patience=1)
    return None


def predict(model: CellNet, crops: np.ndarray, mean: list[float], std: list[float], batch_size: int = 64,
            pooled: bool = False) -> np.ndarray:
    """Logits (N, K) of the model on crops (no augmentation), or pooled features (N, C)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch_size):
            x = torch.from_numpy(normalize(crops[start : start + batch_size], mean, std))
            logits, features = model(x)
            out.append((model.pooled(features) if pooled else logits).numpy())
    width = model.num_features if pooled else model.classifier.out_features
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


def machine() -> str:
    """One line: CPU model, logical cores, OS, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}, torch {torch.__version__}, no GPU"


# ----------------------------------------------------------------------------
# training


def _class_weights(y: np.ndarray, k: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=k).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def _epoch_indices(y: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    """Training order of one epoch (undersampled or re-weighted when asked)."""
    t = config.train
    n = len(y)
    if t.balance == "undersample":
        smallest = min(np.bincount(y)[np.bincount(y) > 0])
        idx = np.concatenate([rng.choice(np.flatnonzero(y == c), smallest, replace=False) for c in np.unique(y)])
    elif t.balance == "sampler":
        w = 1.0 / np.bincount(y)[y]
        idx = rng.choice(n, n, replace=True, p=w / w.sum())
    else:
        idx = np.arange(n)
    idx = rng.permutation(idx)
    if t.steps_per_epoch:
        idx = idx[: t.steps_per_epoch * t.batch_size]
    return idx


def fit(config: Config, run_dir: Path, prepared: Prepared, fresh: bool = False, progress: bool = True) -> CellNet:
    """Train with early stopping; returns the model with the best checkpoint loaded."""
    t = config.train
    k = len(config.classes)
    torch.manual_seed(t.seed)
    random.seed(t.seed)
    model = build_model(config.model, k, config.input_size, config.weights, log.info, config.colour_norm)
    spec = model.info.freeze_default if t.freeze == "default" else t.freeze
    if config.init:
        from .warmstart import load_exported

        if t.batchnorm != "frozen":
            raise LeukViewError("init (an exported model's folded weights) needs [train] batchnorm = 'frozen'")
        load_exported(model, repo_path(config.init), config.classes)
    n_frozen = freeze(model, spec)
    if t.batchnorm == "frozen":  # every BatchNorm keeps its statistics (ImageNet's, or the exported model's)
        model.apply(_mark_frozen)
    log.info("model %s: %.2f M parameters, %.2f M frozen (freeze=%s), colour_norm=%s, batchnorm=%s", config.model,
             count_parameters(model) / 1e6, n_frozen / 1e6, spec, config.colour_norm, t.batchnorm)
    aux = None
    if prepared.attributes is not None and prepared.attribute_values:
        from .attributes import AttributeHead

        aux = AttributeHead(model.num_features, prepared.attribute_values)
        aux_targets = torch.from_numpy(prepared.attributes[prepared.index["train"]])
        aux_weight = float(config.attributes.get("weight", 0.3))
    optimizer = make_optimizer(model if aux is None else nn.ModuleList([model, aux]), config)
    scheduler = make_scheduler(optimizer, config)
    train_idx, val_idx = prepared.index["train"], prepared.index["val"]
    y_train = prepared.y[train_idx]
    weight = _class_weights(y_train, k) if t.balance == "weighted-loss" else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=t.label_smoothing)
    eval_loss = nn.CrossEntropyLoss(weight=weight)
    dataset = CropDataset(prepared.crops.crops[train_idx], y_train, config.mean, config.std, config.augment, t.seed,
                          prepared.styles)
    rng = np.random.default_rng(t.seed + 1)
    state = {"epoch": 0, "best": None, "bad_epochs": 0, "history": []}
    last = run_dir / "last.pt"
    if last.is_file() and not fresh:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        if aux is not None and ckpt.get("aux"):
            aux.load_state_dict(ckpt["aux"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        state = ckpt["state"]
        rng.bit_generator.state = ckpt["rng"]
        dataset.rng.bit_generator.state = ckpt["aug_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resuming after epoch %d (best %s so far)", state["epoch"], state["best"])
    better = (lambda a, b: a < b) if t.monitor == "val_loss" else (lambda a, b: a > b)
    while state["epoch"] < t.epochs and state["bad_epochs"] < t.patience:
        epoch = state["epoch"] + 1
        started = time.time()
        set_train_mode(model, True)
        if aux is not None:
            aux.train()
        order = _epoch_indices(y_train, config, rng)
        batches = [order[i : i + t.batch_size] for i in range(0, len(order), t.batch_size)]
        batches = [b for b in batches if len(b) > 1]  # BatchNorm needs two samples
        total, seen, correct = 0.0, 0, 0
        bar = batches
        if progress:
            from tqdm import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch}/{t.epochs}", mininterval=20.0, leave=False)
        for batch in bar:
            items = [dataset[i] for i in batch]
            x = torch.stack([it[0] for it in items])
            target = torch.tensor([it[1] for it in items])
            logits, features = model(x)
            loss = loss_fn(logits, target)
            if aux is not None:
                loss = loss + aux_weight * aux.loss(model.pooled(features), aux_targets[torch.as_tensor(batch)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            seen += len(batch)
            correct += int((logits.argmax(1) == target).sum())
        val_logits = predict(model, prepared.crops.crops[val_idx], config.mean, config.std, t.eval_batch_size)
        y_val = prepared.y[val_idx]
        if len(val_idx):
            val_loss = float(eval_loss(torch.from_numpy(val_logits), torch.from_numpy(y_val)))
            val_acc = float((val_logits.argmax(1) == y_val).mean())
        else:  # no validation part: monitor the training loss
            val_loss, val_acc = total / max(seen, 1), correct / max(seen, 1)
        score = val_loss if t.monitor == "val_loss" else val_acc
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            else:
                scheduler.step()
        improved = state["best"] is None or better(score, state["best"])
        if improved:
            state["best"], state["bad_epochs"] = score, 0
            torch.save({"model": model.state_dict(), "epoch": epoch}, run_dir / "best.pt")
        else:
            state["bad_epochs"] += 1
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": val_loss, "val_accuracy": val_acc, "lr": lr, "seconds": time.time() - started,
               "best": improved}
        state["history"].append(row)
        state["epoch"] = epoch
        log.info("epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %.2e | %.0fs%s", epoch,
                 row["train_loss"], row["train_accuracy"], val_loss, val_acc, lr, row["seconds"],
                 " *" if improved else "")
        torch.save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "aux": aux.state_dict() if aux is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None, "state": state,
            "rng": rng.bit_generator.state, "aug_rng": dataset.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }, last)
    if state["bad_epochs"] >= t.patience:
        log.info("early stop: no improvement of %s for %d epochs", t.monitor, t.patience)
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(best["model"])
    model.eval()
    model.history = state["history"]  # type: ignore[attr-defined]
    model.best_epoch = best["epoch"]  # type: ignore[attr-defined]
    return model


def apply_logit_bias(model: CellNet, config: Config) -> None:
    """Add the config's per-class offsets to the classifier's bias (in place).

    A prior correction: the training classes are balanced, but among the
    objects the app's segmentation calls white cells some classes (platelets)
    are rare; lowering their logit moves ambiguous cells to the other classes.
    The class-activation maps, built from the weights, are unchanged.
    """
    if not config.logit_bias:
        return
    with torch.no_grad():
        model.classifier.bias += torch.as_tensor(logit_offsets(config), dtype=model.classifier.bias.dtype)
    log.info("logit bias applied: %s", config.logit_bias)


def logit_offsets(config: Config) -> np.ndarray:
    """The config's ``logit_bias`` as one offset per class, shape (K,), zeros elsewhere."""
    offsets = np.zeros(len(config.classes))
    for name, offset in config.logit_bias.items():
        offsets[config.classes.index(name)] = float(offset)
    return offsets


def model_from_state(config: Config, state: dict[str, torch.Tensor], logit_bias: bool = True) -> CellNet:
    """The config's network with these weights, in eval mode; the logit bias added unless told not to."""
    model = build_model(config.model, len(config.classes), config.input_size, None, lambda _: None,
                        config.colour_norm)
    model.load_state_dict(state)
    model.eval()
    if logit_bias:
        apply_logit_bias(model, config)
    return model


def fit_xgboost(model: CellNet, config: Config, prepared: Prepared, run_dir: Path) -> Any:
    """XGBoost on the fine-tuned network's pooled features (Somu et al.: eta 0.35)."""
    import xgboost as xgb

    params = {"eta": 0.35, "n_estimators": 300, "max_depth": 4, "early_stopping_rounds": 20, "subsample": 0.9,
              "colsample_bytree": 0.5, "n_jobs": config.train.threads}
    params.update(config.xgboost)
    eta = params.pop("eta")
    crops, y = prepared.crops.crops, prepared.y
    tr, va = prepared.index["train"], prepared.index["val"]
    f_train = predict(model, crops[tr], config.mean, config.std, pooled=True)
    f_val = predict(model, crops[va], config.mean, config.std, pooled=True)
    k = len(config.classes)
    booster = xgb.XGBClassifier(learning_rate=eta, objective="multi:softprob" if k > 2 else "binary:logistic",
                                random_state=config.train.seed, **params)
    if len(va) == 0:
        booster.set_params(early_stopping_rounds=None)
    booster.fit(f_train, y[tr], eval_set=[(f_val, y[va])] if len(va) else None, verbose=False)
    booster.save_model(run_dir / "xgboost.json")
    log.info("xgboost: eta %.2f, %d trees kept", eta, booster.get_booster().num_boosted_rounds())
    return booster


def scores_of(model: CellNet, booster: Any, crops: np.ndarray, config: Config) -> np.ndarray:
    """Class probabilities (N, K) of the network, or of XGBoost on its features."""
    if booster is not None:
        feats = predict(model, crops, config.mean, config.std, pooled=True)
        probs = booster.predict_proba(feats)
        return probs if probs.shape[1] == len(config.classes) else np.column_stack([1 - probs[:, 0], probs[:, 0]])
    return softmax(predict(model, crops, config.mean, config.std, config.train.eval_batch_size))


def evaluate_all(model: CellNet, booster: Any, config: Config, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
    """Metrics on the held-out split and each other-source set; confusion PNGs."""
    metrics: dict[str, Any] = {}
    # the field call counts blasts: a flag model's positive class, or a type model's own `blast` class
    blast = config.positive_class or ("blast" if "blast" in config.classes else None)
    positive = config.classes.index(blast) if blast else None
    test = prepared.index["test"]
    sets = []
    if len(test):
        sets.append(("heldout", prepared.crops.subset(test), prepared.y[test], {"fields": config.split.get("fields")}))
    sets += [(name, cs, y, entry) for name, (cs, y, entry) in prepared.eval_sets.items()]
    for name, cs, y, entry in sets:
        probs = scores_of(model, booster, cs.crops, config)
        m = classification_metrics(y, probs, config.classes, config.positive_class)
        m["by_source"] = {}
        for how in np.unique(cs.how):
            sel = cs.how == how
            m["by_source"][str(how)] = {"n": int(sel.sum()), "accuracy": float((probs[sel].argmax(1) == y[sel]).mean())}
        datasets = np.array([str(g).split(":", 1)[0] if ":" in str(g) else "" for g in cs.groups])
        if name == "heldout" and len(set(datasets)) > 1:
            # one figure per training source: a pooled figure hides a weak source
            m["by_dataset"] = {
                str(d): {"n": int((datasets == d).sum()),
                         "accuracy": float((probs[datasets == d].argmax(1) == y[datasets == d]).mean())}
                for d in np.unique(datasets)
            }
        if entry.get("fields") and positive is not None:
            # fields are whole smear images: single-cell images of another training source are not fields
            in_fields = _field_cells(datasets, config) if name == "heldout" else np.ones(len(y), bool)
            m["fields"] = field_metrics(cs.sources[in_fields], y[in_fields], probs.argmax(1)[in_fields], positive,
                                        _missing_fields(cs, name, prepared, config))
        # classes present: accuracy over the classes this set can show (e.g. BCCD has 4-5)
        present = np.unique(y)
        if len(present) < len(config.classes):
            sub = probs[:, present]
            m["accuracy_among_present_classes"] = float((present[sub.argmax(1)] == y).mean())
        metrics[name] = m
        confusion_png(m["confusion"], config.classes, run_dir / f"confusion_{name}.png", f"{config.name}: {name}")
        log.info(summary_line(name, m) + (f" | fields {m['fields']['accuracy']:.4f} of {m['fields']['n_fields']}"
                                           if "fields" in m else ""))
    return metrics


def _field_datasets(config: Config) -> set[str]:
    """Training datasets made of smear fields: those marked ``fields = true``, or the only one."""
    if len(config.train_data) == 1:
        return {dataset_name(config.train_data[0])}
    return {dataset_name(e) for e in config.train_data if e.get("fields")}


def _field_cells(datasets: np.ndarray, config: Config) -> np.ndarray:
    """Mask of held-out cells that come from field datasets."""
    return np.isin(datasets, sorted(_field_datasets(config)))


def _missing_fields(cs: CropSet, name: str, prepared: Prepared, config: Config) -> dict[str, int]:
    """Fields of a test set in which no white cell was found (they cannot be called)."""
    if name != "heldout":
        return dict(cs.report.get("images_without_cell", {}))
    test_groups = {str(g) for g in prepared.split_doc["groups"]["test"]}
    field_sets = _field_datasets(config)
    missing: Counter[str] = Counter()
    for prefix, report in prepared.crops.report.items():  # one report per training dataset
        if prefix not in field_sets:
            continue
        for _path, label, group in report.get("sources_without_cell", []):
            if f"{prefix}:{group}" in test_groups:
                missing[label] += 1
    return dict(missing)


def setup_logging(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    file_handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    file_handler.setFormatter(fmt)
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(fmt)
    root.addHandler(file_handler)
    root.addHandler(stream)


def run(config: Config, run_dir: Path | None = None, fresh: bool = False, progress: bool = True,
        command: str = "") -> dict[str, Any]:
    """Prepare, train, evaluate; returns and writes ``result.json``."""
    started = time.time()
    run_dir = Path(run_dir or Path(config.runs_dir) / config.name)
    if fresh:
        for name in ("last.pt", "best.pt", "split.json", "data.json"):
            (run_dir / name).unlink(missing_ok=True)
    setup_logging(run_dir)
    torch.set_num_threads(max(1, config.train.threads))
    log.info("config %s -> %s on %s", config.source or "(dict)", run_dir, machine())
    previous = run_dir / "result.json"
    spent = 0.0
    if previous.is_file() and not fresh:  # a resumed run adds up its wall time
        before = json.loads(previous.read_text())
        spent = float(before.get("wall_time_s_partial", before.get("wall_time_s", 0.0)))
    write_json(run_dir / "config.json", config.raw)
    prepared = prepare(config, run_dir, progress)
    write_json(previous, {"wall_time_s_partial": spent + time.time() - started})
    model = fit(config, run_dir, prepared, fresh=fresh, progress=progress)
    apply_logit_bias(model, config)
    booster = fit_xgboost(model, config, prepared, run_dir) if model.info.xgboost else None
    metrics = evaluate_all(model, booster, config, prepared, run_dir)
    write_json(run_dir / "metrics.json", metrics)
    result = {
        "name": config.name,
        "model": config.model,
        "command": command,
        "config_source": config.source,
        "machine": machine(),
        "wall_time_s": round(spent + time.time() - started, 1),
        "best_epoch": model.best_epoch,  # type: ignore[attr-defined]
        "history": model.history,  # type: ignore[attr-defined]
        "parameters": count_parameters(model),
        "split": {k: v for k, v in prepared.split_doc.items() if k != "groups"},
        "data_reports": prepared.reports,
        "metrics": metrics,
    }
    write_json(previous, result)
    log.info("done in %.0f s; results in %s", result["wall_time_s"], run_dir)
    return result


def command_line(module: str, argv: list[str] | None) -> str:
    """The command as typed (``argv``, or the process's arguments), for a model card's Reproduce section."""
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))


def manifest_overrides(manifest: str) -> dict[str, Any]:
    """Config overrides that train on a hospital's manifest: its data, its classes, no other test sets."""
    from .data import manifest_dataset

    path = Path(manifest).resolve()
    labels = sorted({s.label for s in manifest_dataset(path)})
    if len(labels) < 2:
        raise LeukViewError("the manifest needs at least two labels", path)
    return {
        "train_data": [{"name": path.stem, "kind": "manifest", "root": str(path), "licence": "the hospital's own data"}],
        "classes": labels,
        "eval_data": [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="TOML or JSON training config")
    parser.add_argument("--run-dir", help="output folder (default: runs/<name>)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    parser.add_argument("--weights", help="backbone checkpoint to start from (overrides the config)")
    parser.add_argument("--epochs", type=int, help="override [train] epochs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--manifest", help="train on a CSV manifest (path,label,group) instead of the config's "
                        "data; the classes become the manifest's labels and the config's test sets are dropped")
    parser.add_argument("--name", help="model name (default: the config's)")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.manifest:
        try:
            overrides.update(manifest_overrides(args.manifest))
            base = load_config(args.config)
            if base.positive_class not in overrides["classes"]:
                overrides["positive_class"] = None
        except LeukViewError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.name:
        overrides["name"] = args.name
    if args.weights:
        overrides["weights"] = args.weights
    if args.epochs:
        overrides["train"] = {"epochs": args.epochs}
    command = command_line("training.train", argv)
    try:
        config = load_config(args.config, overrides)
        run(config, Path(args.run_dir) if args.run_dir else None, args.fresh, not args.no_progress, command)
    except LeukViewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

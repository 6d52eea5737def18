"""Metrics of a classifier on held-out cells, and field-level calls.

:func:`classification_metrics` gives accuracy, per-class precision/recall/F1,
weighted F1, the confusion matrix, ROC-AUC for two classes and the expected
calibration error; :func:`field_metrics` calls a field malignant when at least
half of its white cells are called positive (blasts) and compares that with
the field's label; :func:`confusion_png` draws the matrix without matplotlib.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) scores, float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature that makes ``softmax(logits / T)`` fit the labels best (Guo et al. 2017).

    Parameters
    ----------
    logits : ndarray of float, shape (N, K)
    y_true : ndarray of int, shape (N,)

    Returns
    -------
    temperature : float
        The minimiser of the negative log-likelihood in [0.05, 20]; above 1
        softens an overconfident model, below 1 sharpens an underconfident one
        (an average of networks, for example). The argmax never changes.
    """
    from scipy.optimize import minimize_scalar

    z0 = np.asarray(logits, np.float64)
    y = np.asarray(y_true)
    if len(y) == 0:
        raise ValueError("fitting a temperature needs at least one labelled cell")

    def nll(t: float) -> float:
        z = z0 / t
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-4}).x)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class confidence in equal-width bins (Guo et al. 2017).

    Parameters
    ----------
    probs : ndarray of float, shape (N, K)
    y_true : ndarray of int, shape (N,)
    bins : int

    Returns
    -------
    ece : float
        Sum over bins of |accuracy - confidence| weighted by the bin's share.
    """
    if len(y_true) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str], positive: str | None = None
) -> dict[str, Any]:
    """Held-out metrics of one model on one set of cells.

    Parameters
    ----------
    y_true : sequence of int, length N
        True class index of each cell.
    probs : ndarray of float, shape (N, K)
        Predicted probabilities.
    classes : sequence of str, length K
    positive : str, optional
        Positive class for ROC-AUC (the second class when None and K == 2).

    Returns
    -------
    metrics : dict
        n, accuracy, weighted_f1, macro_f1, per_class {precision, recall, f1,
        support}, confusion (rows true, columns predicted), ece, roc_auc (two
        classes only).
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

    y_true = np.asarray(y_true, int)
    probs = np.asarray(probs, np.float64)
    k = len(classes)
    if len(y_true) == 0:
        return {"n": 0}
    y_pred = probs.argmax(axis=1)
    labels = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (y_true, y_pred), 1)
    result: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {
                "precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion": confusion.tolist(),
        "classes": list(classes),
        "ece": expected_calibration_error(probs, y_true),
    }
    if k == 2:
        pos = list(classes).index(positive) if positive else 1
        if len(np.unique(y_true)) == 2:
            result["roc_auc"] = float(roc_auc_score(y_true == pos, probs[:, pos]))
    return result


def field_metrics(
    fields: Sequence[str], y_true: Sequence[int], y_pred: Sequence[int], positive: int,
    fields_without_cells: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Field-level calls: a field is positive when >= half of its white cells are.

    Parameters
    ----------
    fields : sequence of str, length N
        Field (source image) of each cell.
    y_true : sequence of int, length N
        True class of each cell (the field's label).
    y_pred : sequence of int, length N
    positive : int
        Index of the positive class (blast).
    fields_without_cells : dict, optional
        Label -> number of fields of the same set where no white cell was
        found; they cannot be called and count as errors in
        ``accuracy_all_fields``.

    Returns
    -------
    metrics : dict
        n_fields, accuracy (fields with cells), accuracy_all_fields,
        sensitivity and specificity of the field call, confusion.
    """
    fields = np.asarray(fields, dtype=str)
    y_true = np.asarray(y_true, int)
    y_pred = np.asarray(y_pred, int)
    truth, call = [], []
    for name in np.unique(fields):
        mask = fields == name
        truth.append(bool((y_true[mask] == positive).mean() >= 0.5))
        call.append(bool((y_pred[mask] == positive).mean() >= 0.5))
    truth_a, call_a = np.array(truth), np.array(call)
    n = len(truth_a)
    missing = sum((fields_without_cells or {}).values())
    tp = int((truth_a & call_a).sum())
    tn = int((~truth_a & ~call_a).sum())
    result = {
        "n_fields": n,
        "fields_without_cells": int(missing),
        "accuracy": float((truth_a == call_a).mean()) if n else float("nan"),
        "accuracy_all_fields": float((tp + tn) / (n + missing)) if n + missing else float("nan"),
        "sensitivity": float(tp / truth_a.sum()) if truth_a.sum() else float("nan"),
        "specificity": float(tn / (~truth_a).sum()) if (~truth_a).sum() else float("nan"),
        "confusion": [[tn, int((~truth_a & call_a).sum())], [int((truth_a & ~call_a).sum()), tp]],
        "confusion_rows": "true [negative, positive] x called [negative, positive]",
    }
    return result


def confusion_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike[str],
                  title: str = "") -> None:
    """Draw a confusion matrix (rows true, columns predicted) as a PNG with OpenCV."""
    m = np.asarray(matrix, float)
    k = len(classes)
    cell, left, top = 64, 130, 60 + (18 if title else 0)
    image = np.full((top + k * cell + 20, left + k * cell + 20, 3), 255, np.uint8)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    if title:
        cv2.putText(image, title, (8, 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "predicted ->", (left, top - 40), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(k):
        for j in range(k):
            shade = int(255 - 200 * share[i, j])
            colour = (255, shade, shade) if i != j else (shade, 255, shade)
            x0, y0 = left + j * cell, top + i * cell
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), colour, -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (160, 160, 160), 1)
            cv2.putText(image, str(int(m[i, j])), (x0 + 8, y0 + cell // 2 + 5), font, 0.5, (0, 0, 0), 1,
                        cv2.LINE_AA)
        cv2.putText(image, classes[i][:14], (6, top + i * cell + cell // 2 + 5), font, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cv2.putText(image, classes[i][:8], (left + i * cell + 2, top - 8), font, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False), encoding="utf-8")


def summary_line(name: str, metrics: dict[str, Any]) -> str:
    """One human line: accuracy, weighted F1, ECE (and AUC)."""
    if not metrics.get("n"):
        return f"{name}: no cells"
    text = f"{name}: n={metrics['n']} accuracy={metrics['accuracy']:.4f} weighted-F1={metrics['weighted_f1']:.4f}"
    text += f" ECE={metrics['ece']:.4f}"
    if "roc_auc" in metrics:
        text += f" ROC-AUC={metrics['roc_auc']:.4f}"
    return text

"""An open-set ("atypical") score inside the exported graph: Mahalanobis distance to the nearest class.

Lee et al. (NeurIPS 2018): fit the class means of a network's pooled
features on its training cells and one covariance shared by the classes; a
cell far from every class mean, in that metric, is unlike what the network
was trained on, whatever its softmax says. Here the covariance is shrunk
(Ledoit-Wolf: 1280 dimensions from a few thousand cells) and the score is
the squared distance to the nearest class mean divided by the number of
dimensions (about 1 for a typical training cell):

    score(f) = min_k || (f - mu_k) L ||^2 / C,   with  L L^T = Sigma^-1

:class:`OpenSetHead` computes it in torch, so it exports into the same ONNX
graph as the classifier (output ``atypicality``, one value per cell) and the
model file's sha256 covers it. The threshold is the ``quantile`` of the
scores of the validation cells (about 2 % flagged there); the fraction
flagged on the held-out test cells and on every other source is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger("training.openset")

OUTPUT = "atypicality"


@dataclass
class Mahalanobis:
    """Class means and the whitening of a shared covariance.

    Attributes
    ----------
    means : ndarray of float64, shape (K, C)
    whitening : ndarray of float64, shape (C, C)
        ``L`` with ``L @ L.T`` the inverse of the shrunk shared covariance.
    shrinkage : float
        Ledoit-Wolf's shrinkage coefficient.
    counts : ndarray of int, shape (K,)
        Training cells per class.
    """

    means: np.ndarray
    whitening: np.ndarray
    shrinkage: float
    counts: np.ndarray

    def scores(self, features: np.ndarray, batch: int = 512) -> np.ndarray:
        """The score of each row of ``features`` (N, C), float64 (N,)."""
        out = []
        centres = self.means @ self.whitening
        for start in range(0, len(features), batch):
            z = np.asarray(features[start : start + batch], np.float64) @ self.whitening
            d = ((z[:, None, :] - centres[None]) ** 2).mean(axis=2)
            out.append(d.min(axis=1))
        return np.concatenate(out) if out else np.zeros(0)


def fit_mahalanobis(features: np.ndarray, y: np.ndarray, k: int) -> Mahalanobis:
    """Class means and a shrunk shared covariance of pooled features.

    Parameters
    ----------
    features : ndarray of float, shape (N, C)
    y : ndarray of int, shape (N,)
        Class index of each row; classes without rows get the overall mean
        (they can never be the nearest by accident: no class is empty in practice).
    k : int

    Returns
    -------
    Mahalanobis
    """
    from sklearn.covariance import LedoitWolf

    x = np.asarray(features, np.float64)
    y = np.asarray(y, int)
    overall = x.mean(axis=0)
    means = np.stack([x[y == c].mean(axis=0) if (y == c).any() else overall for c in range(k)])
    residuals = x - means[y]
    lw = LedoitWolf(assume_centered=True).fit(residuals)
    precision = np.linalg.inv(lw.covariance_)
    precision = (precision + precision.T) / 2.0
    whitening = np.linalg.cholesky(precision)
    return Mahalanobis(means, whitening, float(lw.shrinkage_), np.bincount(y, minlength=k))


class OpenSetHead(nn.Module):
    """Pooled features (N, C) -> the Mahalanobis score (N,) of :class:`Mahalanobis`, in float32."""

    def __init__(self, fit: Mahalanobis) -> None:
        super().__init__()
        whitening = torch.as_tensor(fit.whitening, dtype=torch.float32)
        self.register_buffer("whitening", whitening)
        self.register_buffer("centres", torch.as_tensor(fit.means @ fit.whitening, dtype=torch.float32))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        z = pooled @ self.whitening
        d = (z.unsqueeze(1) - self.centres.unsqueeze(0)).pow(2).mean(dim=2)
        return d.min(dim=1).values


def flagged(scores: np.ndarray, threshold: float) -> float:
    """Fraction of scores over the threshold (nan for none)."""
    return float((np.asarray(scores) > threshold).mean()) if len(scores) else float("nan")


def fit_openset(model: Any, config: Any, prepared: Any) -> tuple[Mahalanobis, dict[str, Any]]:
    """Fit the score on the training cells, fix its threshold on validation, measure it everywhere else.

    Parameters
    ----------
    model : CellNet
        The final network (the logit bias does not matter: the score reads features).
    config : Config
        Its ``openset`` section: ``quantile`` (default 0.98).
    prepared : Prepared
        The run's crops, split and other-source sets (:func:`training.train.prepare`).

    Returns
    -------
    fit : Mahalanobis
    block : dict
        The sidecar's ``openset`` entry: score, output, threshold, fitted_on,
        threshold_on, flagged_fraction_heldout, flagged_fraction (per source
        and per held-out dataset), shrinkage.
    """
    from .train import predict

    quantile = float(config.openset.get("quantile", 0.98))
    index = prepared.index
    crops, y = prepared.crops.crops, prepared.y

    def pooled(x: np.ndarray) -> np.ndarray:
        return predict(model, x, config.mean, config.std, config.train.eval_batch_size, pooled=True)

    # at most `per_class` training cells of each class (seed 0): Taleqani's blasts would otherwise set the
    # shared covariance alone, and the features of 7,000 cells cost minutes on this CPU
    per_class = int(config.openset.get("per_class", 600))
    rng = np.random.default_rng(0)
    train = np.sort(np.concatenate([
        rng.permutation(np.flatnonzero(y[index["train"]] == c))[:per_class] for c in range(len(config.classes))
    ]).astype(int))
    train = index["train"][train]
    fit_crops = crops[train]
    augmented = config.openset.get("fit_on", "augmented") == "augmented"
    if augmented:
        # the cells as training saw them (style mixing with other microscopes' cells, stain, optics): the
        # covariance then holds a stain's and a microscope's variation, and a normal cell of another
        # microscope is not "unlike the training cells" for its colour alone (on this model, BCCD's dev half:
        # 52 % of normal cells flagged with the plain cells, 18 % with augmented ones, at 2 % of validation)
        from .augment import augment_batch

        fit_crops = augment_batch(fit_crops, np.random.default_rng(1), config.augment, prepared.styles)
    fit = fit_mahalanobis(pooled(fit_crops), y[train], len(config.classes))
    val_scores = fit.scores(pooled(crops[index["val"]]))
    threshold = float(np.quantile(val_scores, quantile))
    fractions: dict[str, Any] = {"val": flagged(val_scores, threshold)}
    test = index["test"]
    test_scores = fit.scores(pooled(crops[test]))
    fractions["heldout"] = flagged(test_scores, threshold)
    datasets = np.array([str(g).split(":", 1)[0] for g in prepared.crops.groups[test]])
    for name in np.unique(datasets):
        fractions[f"heldout:{name}"] = flagged(test_scores[datasets == name], threshold)
    test_labels = prepared.crops.labels[test]
    for name in np.unique(test_labels):
        fractions[f"heldout:class:{name}"] = flagged(test_scores[test_labels == name], threshold)
    for name, (cs, _ey, _entry) in prepared.eval_sets.items():
        fractions[name] = flagged(fit.scores(pooled(cs.crops)), threshold)
    for name, cs in getattr(prepared, "extra_sets", {}).items():
        fractions[name] = flagged(fit.scores(pooled(cs.crops)), threshold)
    block = {
        "score": "mahalanobis",
        "output": OUTPUT,
        "threshold": threshold,
        "fitted_on": (f"{len(train)} training cells of the split{', augmented as in training' if augmented else ''} "
                      f"(at most {per_class} per class; "
                      f"{', '.join(sorted({str(g).split(':', 1)[0] for g in prepared.crops.groups[train]}))}): "
                      f"class means and one shared covariance of the pooled features, Ledoit-Wolf shrinkage "
                      f"{fit.shrinkage:.3f}; score = squared distance to the nearest class mean / {fit.means.shape[1]}"),
        "threshold_on": f"quantile {quantile} of the {len(val_scores)} validation cells",
        "flagged_fraction_heldout": fractions["heldout"],
        "flagged_fraction": {k: round(v, 4) for k, v in fractions.items()},
        "shrinkage": fit.shrinkage,
    }
    log.info("open-set threshold %.4f (validation quantile %.2f); flagged: %s", threshold, quantile,
             {k: round(v, 3) for k, v in fractions.items()})
    return fit, block

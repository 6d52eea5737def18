"""WBCAtt morphological attributes as an auxiliary training target (Tsutsui et al., NeurIPS 2023).

WBCAtt labels 1,750 of the PBC images with 11 attributes (cell size and
shape, nucleus shape, N:C ratio, chromatin density, cytoplasm vacuoles,
texture and colour, granule type and colour, granularity). Predicting them
from the same pooled features as the cell type asks the network to encode
what a haematologist looks at (granules, nucleus shape), not only what
separates PBC's classes on one microscope (colour). The attribute head is a
training aid only: it is not exported, the app never sees it.

Config (top level)::

    [attributes]
    root = "wbcatt"                       # under data_root
    weight = 0.3                          # loss = type loss + weight x mean attribute loss
    exclude = ["granule_colour", "cytoplasm_colour"]
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ATTRIBUTES = ("cell_size", "cell_shape", "nucleus_shape", "nuclear_cytoplasmic_ratio", "chromatin_density",
              "cytoplasm_vacuole", "cytoplasm_texture", "cytoplasm_colour", "granule_type", "granule_colour",
              "granularity")


def read_attributes(root: str | Path, names: tuple[str, ...]) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """WBCAtt's rows by image file name, and the sorted values of each attribute.

    Every split file of the authors is read: their split is not ours (the
    grouped split of the run decides which images train).
    """
    rows: dict[str, dict[str, str]] = {}
    for path in sorted(Path(root).glob("pbc_attr_v1_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows[row["img_name"]] = {k: row[k] for k in names}
    values = {k: sorted({r[k] for r in rows.values()}) for k in names}
    return rows, values


def attribute_targets(sources: np.ndarray, datasets: np.ndarray, config: dict[str, Any], data_root: Path,
                      dataset: str = "pbc") -> tuple[np.ndarray, dict[str, list[str]]]:
    """Per-crop attribute indices (N, A), -1 where a crop has no WBCAtt row (other sources, uncovered images).

    Parameters
    ----------
    sources : ndarray of str, shape (N,)
        Each crop's source image path.
    datasets : ndarray of str, shape (N,)
        Each crop's training dataset name; only ``dataset``'s crops are looked up.
    config : dict
        The ``[attributes]`` section.
    data_root : Path
    """
    names = tuple(a for a in ATTRIBUTES if a not in set(config.get("exclude", [])))
    rows, values = read_attributes(data_root / str(config.get("root", "wbcatt")), names)
    targets = np.full((len(sources), len(names)), -1, np.int64)
    for i, (path, name) in enumerate(zip(sources, datasets, strict=True)):
        row = rows.get(Path(str(path)).name) if name == dataset else None
        if row is not None:
            targets[i] = [values[a].index(row[a]) for a in names]
    return targets, values


class AttributeHead(nn.Module):
    """Pooled features (N, C) -> one set of logits per attribute."""

    def __init__(self, channels: int, values: dict[str, list[str]]) -> None:
        super().__init__()
        self.names = list(values)
        self.sizes = [len(values[n]) for n in self.names]
        self.linear = nn.Linear(channels, sum(self.sizes))
        self.drop = nn.Dropout(0.2)

    def loss(self, pooled: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the attributes of the cells that have them (0 when none has)."""
        logits = self.linear(self.drop(pooled))
        total = pooled.new_zeros(())
        count = 0
        start = 0
        for a, size in enumerate(self.sizes):
            target = targets[:, a]
            known = target >= 0
            if known.any():
                total = total + nn.functional.cross_entropy(logits[known, start : start + size], target[known])
                count += 1
            start += size
        return total / max(count, 1)

    def accuracy(self, pooled: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Per-attribute accuracy on cells with labels."""
        logits = self.linear(pooled)
        out, start = {}, 0
        for a, (name, size) in enumerate(zip(self.names, self.sizes, strict=True)):
            known = targets[:, a] >= 0
            if known.any():
                pred = logits[known, start : start + size].argmax(1)
                out[name] = float((pred == targets[known, a]).float().mean())
            start += size
        return out

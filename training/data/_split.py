"""Grouped splits: no group (subject, field or source image) on two sides; ``split.json``."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._source import DataError, write_json

log = logging.getLogger("training.data")


def grouped_split(
    labels: Sequence[str], groups: Sequence[str], val: float = 0.1, test: float = 0.2, seed: int = 0
) -> dict[str, list[str]]:
    """Split groups into train/val/test, stratified by label, with no group on two sides.

    Parameters
    ----------
    labels, groups : sequence of str, length N
        Label and group of each sample. A group's label for stratification is
        its most frequent one.
    val, test : float
        Fractions of the groups (0 leaves that part empty).
    seed : int

    Returns
    -------
    split : dict
        'train', 'val', 'test' -> sorted group names.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    label_of = np.asarray(labels, dtype=str)
    group_of = np.asarray(groups, dtype=str)
    if len(label_of) != len(group_of):
        raise ValueError("labels and groups differ in length")
    names = np.unique(group_of)
    group_label = {}
    for g in names:
        values, counts = np.unique(label_of[group_of == g], return_counts=True)
        group_label[g] = values[np.argmax(counts)]
    glabels = np.array([group_label[g] for g in names])

    def carve(pool: np.ndarray, fraction: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0 or len(pool) < 2:
            return pool, pool[:0]
        n_splits = max(2, int(round(1.0 / fraction)))
        smallest = min(Counter(glabels[np.isin(names, pool)]).values())
        n_splits = min(n_splits, len(pool))
        if smallest < n_splits:  # too few groups of a class to stratify that finely
            log.warning("a class has only %d group(s); stratification is approximate", smallest)
        index = np.flatnonzero(np.isin(names, pool))
        kfold = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + salt)
        keep, take = next(kfold.split(np.zeros(len(index)), glabels[index], names[index]))
        return names[index[keep]], names[index[take]]

    rest, test_groups = carve(names, test, 0)
    train_groups, val_groups = carve(rest, val / max(1e-9, 1.0 - test), 1)
    split = {"train": sorted(train_groups), "val": sorted(val_groups), "test": sorted(test_groups)}
    assert_disjoint(split)
    return split


def inherit_split(
    labels: Sequence[str], groups: Sequence[str], inherited: Sequence[Mapping[str, Sequence[str]]],
    val: float = 0.1, test: float = 0.2, seed: int = 0,
) -> dict[str, list[str]]:
    """A grouped split that keeps the parts of earlier splits for the groups they hold.

    A group named in one of ``inherited`` (the ``groups`` of an earlier
    ``split.json``) stays in that part, so a new model is tested on the same
    held-out groups as the one it replaces; groups named in none are split by
    :func:`grouped_split`. Earlier splits must not disagree about a group.

    Parameters
    ----------
    labels, groups : sequence of str, length N
    inherited : sequence of dict
        'train', 'val', 'test' -> group names.
    val, test : float
        Fractions for the groups no earlier split names.
    seed : int

    Returns
    -------
    split : dict
        'train', 'val', 'test' -> sorted group names (only groups of ``groups``).
    """
    present = set(np.asarray(groups, dtype=str).tolist())
    part_of: dict[str, str] = {}
    for earlier in inherited:
        for part, names in earlier.items():
            for name in names:
                if name in present and part_of.setdefault(name, part) != part:
                    raise DataError(f"earlier splits disagree about group {name!r}")
    split: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for name, part in part_of.items():
        split.setdefault(part, set()).add(name)
    label_of = np.asarray(labels, dtype=str)
    group_of = np.asarray(groups, dtype=str)
    fresh = np.array([g not in part_of for g in group_of], bool)
    if fresh.any():
        new = grouped_split(label_of[fresh], group_of[fresh], val, test, seed)
        for part, names in new.items():
            split[part].update(names)
    log.info("split: %d groups inherited, %d split afresh", len(part_of), len(set(group_of[fresh].tolist())))
    result = {part: sorted(names) for part, names in split.items()}
    assert_disjoint(result)
    return result


def assert_disjoint(split: Mapping[str, Sequence[str]]) -> None:
    """Raise DataError when a group is on two sides of a split."""
    parts = list(split)
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            shared = set(split[a]) & set(split[b])
            if shared:
                raise DataError(
                    f"split leaks {len(shared)} group(s) between {a} and {b}, e.g. {sorted(shared)[:3]}"
                )


def split_indices(groups: Sequence[str], split: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Sample indices of each part of a split (samples whose group is in no part are left out)."""
    group_of = np.asarray(groups, dtype=str)
    return {part: np.flatnonzero(np.isin(group_of, list(names))) for part, names in split.items()}


def save_split(
    path: str | os.PathLike[str], split: Mapping[str, Sequence[str]], labels: Sequence[str],
    groups: Sequence[str], seed: int, note: str = "",
) -> dict[str, Any]:
    """Write a split and its per-class counts as JSON; returns the document."""
    assert_disjoint(split)
    label_of = np.asarray(labels, dtype=str)
    index = split_indices(groups, split)
    doc = {
        "seed": seed,
        "note": note,
        "groups": {k: list(v) for k, v in split.items()},
        "counts": {k: dict(Counter(label_of[i].tolist())) for k, i in index.items()},
        "n_groups": {k: len(v) for k, v in split.items()},
        "overlap": 0,
    }
    write_json(Path(path), doc)
    return doc


def load_split(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a split written by :func:`save_split` (its zero overlap is re-checked)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read split ({exc})", path) from exc
    split = {k: list(v) for k, v in doc["groups"].items()}
    assert_disjoint(split)
    return split

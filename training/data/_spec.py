"""Sources from a config entry: the loader named by its ``kind``, and a per-label limit."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._cell_images import cnmc_dataset, folder_dataset, manifest_dataset, zheng_dataset
from ._fields import bccd_dataset, taleqani_dataset, txl_dataset
from ._source import DataError, Source


def load_sources(spec: dict[str, Any], data_root: str | os.PathLike[str] | None = None) -> list[Source]:
    """Sources from one config entry.

    Parameters
    ----------
    spec : dict
        ``{"kind": "folder"|"cnmc"|"taleqani"|"bccd"|"zheng"|"txl"|"manifest", "root": PATH, ...}``
        plus the loader's keyword arguments (``classes``, ``label_map``,
        ``block``, ``folds``, ``finder``); ``limit`` keeps the first n
        images per label (for quick runs and tests).
    data_root : path, optional
        Relative roots are resolved against it (default: the current folder).

    Returns
    -------
    sources : list of Source
    """
    spec = dict(spec)
    kind = spec.pop("kind", "folder")
    root = Path(os.path.expandvars(str(spec.pop("root"))))
    if not root.is_absolute() and data_root is not None:
        root = Path(data_root) / root
    root = root.resolve()  # one spelling per file, so caches match however the root was given
    limit = spec.pop("limit", None)
    spec.pop("name", None)
    loaders: dict[str, Callable[..., list[Source]]] = {
        "folder": folder_dataset,
        "cnmc": cnmc_dataset,
        "taleqani": taleqani_dataset,
        "bccd": bccd_dataset,
        "manifest": manifest_dataset,
        "zheng": zheng_dataset,
        "txl": txl_dataset,
    }
    if kind not in loaders:
        raise DataError(f"unknown dataset kind {kind!r}; choose one of {', '.join(loaders)}")
    sources = loaders[kind](root, **spec)
    if limit:
        taken: Counter[str] = Counter()
        kept = []
        for s in sources:
            if taken[s.label] < int(limit):
                kept.append(s)
                taken[s.label] += 1
        sources = kept
    return sources

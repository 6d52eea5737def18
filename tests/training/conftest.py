"""Fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def tiny_cnmc_config(data_dir: Path, tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    """``make(name)``: a one-epoch, 64 px blast config on the real C-NMC cells (subject split)."""

    def make(name: str) -> dict[str, Any]:
        return {
            "name": name, "model": "effnet-lite0", "input_size": 64, "colour_norm": "instance",
            "classes": ["blast", "normal"], "positive_class": "blast",
            "data_root": str(data_dir), "cache_dir": str(tmp_path / "cache"),
            "crop": {"scale": 1.2, "background": "black"},
            "train_data": [{"name": "cnmc", "kind": "cnmc", "root": "cnmc", "licence": "CC BY 3.0"}],
            "split": {"val": 0.2, "test": 0.3, "seed": 0},
            "train": {"epochs": 1, "batch_size": 8, "freeze": 4},
        }

    return make

"""Where LeukView finds its bundled models and resources, installed or not."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _install_root() -> Path:
    # In a PyInstaller bundle the data sit beside the executable's libraries.
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parents[2]


def models_dir() -> Path:
    """Folder of installed models.

    ``$LEUKVIEW_MODELS`` when set; in a bundle, the ``models/`` folder beside the executable
    (where IT adds or replaces a model by copying its folder); else the shipped ``models/``.
    """
    env = os.environ.get("LEUKVIEW_MODELS")
    if env:
        return Path(env)
    if getattr(sys, "frozen", False):
        beside = Path(sys.executable).resolve().parent / "models"
        if beside.is_dir():
            return beside
    return _install_root() / "models"


def resources_dir() -> Path:
    """Folder of bundled resources (sample images, icons, attribution)."""
    return _install_root() / "resources"


def sample_image() -> Path:
    """The bundled BCCD sample the viewer opens by default."""
    return resources_dir() / "samples" / "BloodImage_00214.jpg"

"""Where a teaching quiz's cells come from: an installed model's reference atlas, or a quiz file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leukview.core.atlas import ATLAS_FILE, Atlas, AtlasError, default_atlas_dir
from leukview.core.models import ModelEntry, ModelRegistry, load_entry
from leukview.core.quiz import AtlasQuizSource, FileQuizSource, Quiz, QuizError
from leukview.core.runs import ROLES

if TYPE_CHECKING:
    from leukview.core.models import Classifier

__all__ = ["AtlasChoice", "atlas_source", "file_source", "model_loader"]


@dataclass
class AtlasChoice:
    """The atlas a quiz draws from, and the installed model whose maps the feedback shows.

    Attributes
    ----------
    source : AtlasQuizSource
    atlas : Atlas
    entry : ModelEntry or None
        The installed model of the same name; its map is shown only when it is
        the version the atlas was made with (:func:`model_loader`).
    """

    source: AtlasQuizSource
    atlas: Atlas
    entry: ModelEntry | None


def _entries(models_dir: str | os.PathLike[str] | None) -> list[ModelEntry]:
    entries = [e for e in ModelRegistry(models_dir).entries() if e.ok and e.spec is not None]
    return sorted(entries, key=lambda e: ROLES.index(e.spec.role) if e.spec else 0)  # the type model first


def atlas_source(
    models_dir: str | os.PathLike[str] | None = None, atlas_dir: str | os.PathLike[str] | None = None
) -> AtlasChoice:
    """The quiz source of ``leukview --teach`` without a quiz file.

    Parameters
    ----------
    models_dir : path, optional
        The installed models (default: the shipped ``models/``).
    atlas_dir : path, optional
        An atlas folder (e.g. the lab's); default: the atlas shipped with the
        installed type model (a model without a positive class first).

    Raises
    ------
    QuizError
        No atlas found, or it cannot be read.
    """
    entries = _entries(models_dir)
    try:
        if atlas_dir is not None:
            atlas = Atlas.load(atlas_dir)
            name = atlas.meta["model"].get("name")
            entry = next((e for e in entries if e.spec is not None and e.spec.name == name), None)
            return AtlasChoice(AtlasQuizSource(atlas), atlas, entry)
        for entry in entries:
            folder = default_atlas_dir(entry.folder)
            if (folder / ATLAS_FILE).is_file():
                atlas = Atlas.load(folder)
                return AtlasChoice(AtlasQuizSource(atlas), atlas, entry)
    except AtlasError as exc:
        raise QuizError(f"the reference atlas cannot be used: {exc.reason}", exc.path) from exc
    raise QuizError("no reference atlas is installed with the models: open a quiz file (leukview --teach QUIZ)")


def model_loader(entry: ModelEntry | None, sha256: str | None = None) -> Callable[[], Classifier | None]:
    """Loads the model for the feedback's maps, once, when first needed; None when it does not fit.

    ``sha256``: the model the cells were embedded with (an atlas's); another
    version gives no map rather than a misleading one.
    """

    def load() -> Classifier | None:
        if entry is None or entry.spec is None or not entry.spec.features_output:
            return None
        if sha256 is not None and (entry.spec.sha256 or "").strip().lower() != sha256:
            return None
        return load_entry(entry)

    return load


def file_source(
    path: str | os.PathLike[str], models_dir: str | os.PathLike[str] | None = None
) -> tuple[FileQuizSource, Callable[[], Classifier | None]]:
    """A trainer's quiz file, and a loader of the installed model it names (for cells without a map).

    Raises
    ------
    QuizError
        The file cannot be read or is not a quiz.
    """
    quiz = Quiz.load(Path(path))
    name = (quiz.origin.get("model") or {}).get("name")
    entry = next((e for e in _entries(models_dir) if e.spec is not None and e.spec.name == name), None)
    return FileQuizSource(quiz), model_loader(entry)
